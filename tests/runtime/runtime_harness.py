"""Helpers shared by the runtime tests (not a test module).

- `running_csms`: the real server (`run_csms`) on loopback with chosen settings.
- `RawCharger`: a charge point driven frame by frame, for tests that must control exactly
  what is sent and when (CALLERRORs, silent chargers, slow answers).
- `memory_csms`: the server's parts (ledger actor, registry, keepalive watch) without a
  listener; connections are in-memory stream pairs, so tests can run on `autojump_clock`
  (commits inline, as `run_csms(virtual_time=True)` does).
- `WsprotoPeer`: a WebSocket client on a raw stream, frame by frame, for what a
  well-behaved client library will not do (stop reading, fragment, send binary).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
import trio
import trio.testing
from trio_websocket import WebSocketConnection, open_websocket_url, wrap_client_stream
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Event, Request, TextMessage

from csms.config import Settings
from csms.runtime.registry import ConnectionRegistry
from csms.runtime.server import Csms, run_csms
from csms.storage.sqlite import SqliteStore, sqlite_path

BOOT = {"chargePointVendor": "TestVendor", "chargePointModel": "T1"}


@asynccontextmanager
async def running_csms(settings: Settings) -> AsyncIterator[Csms]:
    """The real CSMS on a loopback port, torn down on exit."""
    async with trio.open_nursery() as nursery:
        server: Csms = await nursery.start(run_csms, settings)
        yield server
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[SqliteStore]:
    """A second connection to the server's database file, as the CLI opens one."""
    store = SqliteStore(sqlite_path(settings.database_url))
    try:
        yield store
    finally:
        store.close()


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `predicate` until it holds; fail the test after `timeout` seconds."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.005)


class RawCharger:
    """A charge point whose every frame the test sends and reads itself."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self._ids = 0

    async def send(self, frame: list[Any]) -> None:
        await self.ws.send_message(orjson.dumps(frame).decode())

    async def receive(self, timeout: float = 10.0) -> list[Any]:
        with trio.fail_after(timeout):
            frame = orjson.loads(await self.ws.get_message())
        assert isinstance(frame, list)
        return frame

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Send a CALL and return the next frame (its answer: nothing else is in flight)."""
        self._ids += 1
        await self.send([2, f"c{self._ids}", action, payload])
        return await self.receive()

    async def boot(self) -> list[Any]:
        return await self.call("BootNotification", BOOT)


@asynccontextmanager
async def connect_raw(
    port: int, station_id: str, *, path: str = "/ocpp/", subprotocols: list[str] | None = None
) -> AsyncIterator[RawCharger]:
    url = f"ws://127.0.0.1:{port}{path}{station_id}"
    async with open_websocket_url(url, subprotocols=subprotocols or ["ocpp1.6"]) as ws:
        yield RawCharger(ws)


@dataclass
class MemoryCsms:
    """The CSMS's parts wired to in-memory connections instead of a listener."""

    csms: Csms
    store: SqliteStore
    nursery: trio.Nursery

    @property
    def registry(self) -> ConnectionRegistry:
        return self.csms.registry

    async def connect(
        self, station_id: str, subprotocols: list[str] | None = None
    ) -> WebSocketConnection:
        """Open a WebSocket to the CSMS over an in-memory stream; return the client side."""
        client_stream, server_stream = trio.testing.memory_stream_pair()
        await self.serve(server_stream)
        return await wrap_client_stream(
            self.nursery,
            client_stream,  # type: ignore[arg-type]
            "localhost",
            f"/ocpp/{station_id}",
            subprotocols=subprotocols or ["ocpp1.6"],
        )

    async def serve(self, server_stream: trio.abc.Stream) -> None:
        """Run the server side of one connection on `server_stream` in the background."""
        self.nursery.start_soon(self.csms.handle_stream, server_stream, "memory")


@asynccontextmanager
async def memory_csms(settings: Settings) -> AsyncIterator[MemoryCsms]:
    """The real CSMS (`run_csms`) on virtual time, with no listener: connections are
    in-memory stream pairs, so tests can run on `autojump_clock`. Commits run inline there
    (`virtual_time=True`): on a worker thread the idle loop would let the clock jump ahead.
    """
    store = SqliteStore(sqlite_path(settings.database_url))
    try:
        async with trio.open_nursery() as nursery:
            csms: Csms = await nursery.start(
                partial(run_csms, settings, store=store, virtual_time=True, listen=False)
            )
            assert csms.background is not None
            yield MemoryCsms(csms, store, csms.background)
            nursery.cancel_scope.cancel()
    finally:
        store.close()


class WsprotoPeer:
    """A WebSocket client on a raw stream, driven frame by frame with wsproto."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self._ids = 0

    @classmethod
    async def connect(cls, server: MemoryCsms) -> WsprotoPeer:
        client_stream, server_stream = trio.testing.memory_stream_pair()
        await server.serve(server_stream)
        return cls(client_stream)

    def request(self, station_id: str, subprotocols: list[str] | None = None) -> bytes:
        return self.ws.send(
            Request(
                host="localhost",
                target=f"/ocpp/{station_id}",
                subprotocols=subprotocols or ["ocpp1.6"],
            )
        )

    def text(self, frame: list[Any] | str, *, finished: bool = True) -> bytes:
        data = frame if isinstance(frame, str) else orjson.dumps(frame).decode()
        return self.ws.send(TextMessage(data=data, message_finished=finished))

    async def open(self, station_id: str) -> None:
        await self.stream.send_all(self.request(station_id))
        await self.next_event(AcceptConnection)

    async def next_event(self, kind: type[Event], timeout: float = 60.0) -> Any:
        """Read until an event of `kind` arrives (others are skipped); fail if the stream
        ends first or nothing comes within `timeout`."""
        with trio.fail_after(timeout):
            while True:
                for event in self.ws.events():
                    if isinstance(event, kind):
                        return event
                data = await self.stream.receive_some(65536)
                assert data, f"the stream ended before a {kind.__name__}"
                self.ws.receive_data(bytes(data))

    async def next_frame(self) -> list[Any]:
        message = await self.next_event(TextMessage)
        frame: list[Any] = orjson.loads(message.data)
        return frame

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        self._ids += 1
        await self.stream.send_all(self.text([2, f"w{self._ids}", action, payload]))
        return await self.next_frame()
