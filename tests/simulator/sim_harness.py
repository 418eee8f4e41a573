"""Helpers for the simulator tests (not a test module).

- `memory_connector`: a charger's `Connector` to an in-memory CSMS (`memory_csms`), through
  the real WebSocket framing on a memory stream pair, so tests run on `autojump_clock`.
- `virtual_clock`: wall-clock time that follows trio's (mock) clock.
- `running`: a charger's `run()` for the body of a block.
- `HttpFileServer`: a tiny HTTP/1.1 server on loopback (h11), the far end of diagnostics
  uploads and firmware downloads; it records every request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

import h11
import trio
import trio.testing
from runtime.runtime_harness import MemoryCsms

from simulator.chargepoint import VirtualChargePoint
from simulator.physics import ChargingCurve, Vehicle
from simulator.records import MessageRecord
from simulator.transport import Connector, MessageTransport, connect_stream

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def memory_connector(server: MemoryCsms, station_id: str) -> Connector:
    async def connect(nursery: trio.Nursery) -> MessageTransport:
        client_stream, server_stream = trio.testing.memory_stream_pair()
        await server.serve(server_stream)
        return await connect_stream(client_stream, station_id)

    return connect


def virtual_clock(start: datetime = START) -> Callable[[], datetime]:
    origin = trio.current_time()
    return lambda: start + timedelta(seconds=trio.current_time() - origin)


@asynccontextmanager
async def running(*chargers: VirtualChargePoint) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        for charger in chargers:
            await nursery.start(charger.run)
        yield
        nursery.cancel_scope.cancel()


def ev(soc: float = 0.2, capacity_wh: float = 60_000.0, max_power_w: float = 11_000.0) -> Vehicle:
    return Vehicle(capacity_wh, soc, max_power_w, ChargingCurve.typical_ac())


def sent_calls(charger: VirtualChargePoint, action: str) -> list[MessageRecord]:
    return [
        m
        for m in charger.messages
        if m.direction == "sent" and m.kind == "CALL" and m.action == action
    ]


def received_calls(charger: VirtualChargePoint, action: str) -> list[MessageRecord]:
    return [
        m
        for m in charger.messages
        if m.direction == "received" and m.kind == "CALL" and m.action == action
    ]


@dataclass
class HttpFileServer:
    """Answers GET with `files[path]` (404 if absent) and PUT/POST with `status`."""

    files: dict[str, bytes] = field(default_factory=dict)
    status: int = 201
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(our_role=h11.SERVER)
        method, target, body = "", "", b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(65536)))
            elif isinstance(event, h11.Request):
                method, target = event.method.decode(), event.target.decode()
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        self.requests.append((method, target, body))
        if method == "GET":
            content = self.files.get(target)
            status, content = (200, content) if content is not None else (404, b"not found")
        else:
            status, content = self.status, b""
        headers = [("Content-Length", str(len(content))), ("Connection", "close")]
        data = conn.send(h11.Response(status_code=status, headers=headers))
        data += conn.send(h11.Data(data=content)) + conn.send(h11.EndOfMessage())
        await stream.send_all(data)
        await stream.aclose()


@asynccontextmanager
async def http_file_server(server: HttpFileServer) -> AsyncIterator[HttpFileServer]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel()
