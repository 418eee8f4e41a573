"""Helpers for the operator API tests (not a test module).

- `running_api`: an in-process CSMS (real SQLite file, OCPP and HTTP on loopback ports) with
  an httpx client per scope (`read`, `operate`, `admin` keys made through the store).
- `ScriptedCharger`: a 1.6 charge point over a real WebSocket that answers each
  CSMS-initiated action as told: a payload, a CALLERROR, or silence (for timeouts).
- `sse_events`: read a live event stream over HTTP.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio
from support.charger import messages
from trio_websocket import WebSocketConnection, open_websocket_url

from csms.api.keys import key_hash, key_label, new_key
from csms.runtime.server import Csms, run_csms
from csms.storage.sqlite import sqlite_path
from csms.storage.sqlite_api import ApiStore

SILENT = object()


@dataclass
class Api:
    csms: Csms
    base_url: str
    clients: dict[str, httpx.AsyncClient]
    keys: dict[str, str]

    @property
    def admin(self) -> httpx.AsyncClient:
        return self.clients["admin"]

    @property
    def operate(self) -> httpx.AsyncClient:
        return self.clients["operate"]

    @property
    def read(self) -> httpx.AsyncClient:
        return self.clients["read"]

    @property
    def anonymous(self) -> httpx.AsyncClient:
        return self.clients["anonymous"]

    @property
    def ocpp_port(self) -> int:
        return self.csms.ocpp_port


def make_keys(database_url: str) -> dict[str, str]:
    store = ApiStore(sqlite_path(database_url))
    try:
        keys = {}
        for scope in ("read", "operate", "admin"):
            key = new_key()
            store.create_api_key(
                f"{scope}-key", scope, key_hash(key), key_label(key), datetime.now(UTC)
            )
            keys[scope] = key
        return keys
    finally:
        store.close()


@asynccontextmanager
async def running_api(settings: Any) -> AsyncIterator[Api]:
    keys = make_keys(settings.database_url)
    async with trio.open_nursery() as nursery:
        csms: Csms = await nursery.start(run_csms, settings)
        base = f"http://127.0.0.1:{csms.http_port}"
        clients = {
            scope: httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=20
            )
            for scope, key in keys.items()
        }
        clients["anonymous"] = httpx.AsyncClient(base_url=base, timeout=20)
        try:
            yield Api(csms, base, clients, keys)
        finally:
            for client in clients.values():
                await client.aclose()
            nursery.cancel_scope.cancel()


@dataclass
class ScriptedCharger:
    ws: WebSocketConnection
    #: Action -> answer payload, an `("error", code, description)` tuple, or SILENT.
    answers: dict[str, Any] = field(default_factory=dict)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _replies: Any = None
    _inbox: Any = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        await self.ws.send_message(
            orjson.dumps([2, f"c{next(self._ids)}", action, payload]).decode()
        )
        with trio.fail_after(10):
            frame: list[Any] = await self._inbox.receive()
        return frame

    async def result(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        frame = await self.call(action, payload)
        assert frame[0] == 3, frame
        answer: dict[str, Any] = frame[2]
        return answer

    async def boot(self) -> dict[str, Any]:
        return await self.result(
            "BootNotification",
            {"chargePointVendor": "Acme", "chargePointModel": "AC-22", "firmwareVersion": "1.2.3"},
        )

    async def status(self, connector: int, status: str, error_code: str = "NoError") -> None:
        await self.result(
            "StatusNotification",
            {"connectorId": connector, "status": status, "errorCode": error_code},
        )

    async def _pump(self) -> None:
        async for text in messages(self.ws):
            frame = orjson.loads(text)
            if frame[0] != 2:
                await self._replies.send(frame)
                continue
            _, message_id, action, payload = frame
            self.received.append((action, payload))
            answer = self.answers.get(action, {"status": "Accepted"})
            if answer is SILENT:
                continue
            if isinstance(answer, tuple):
                reply = [4, message_id, answer[1], answer[2], {}]
            else:
                reply = [3, message_id, answer]
            await self.ws.send_message(orjson.dumps(reply).decode())


@asynccontextmanager
async def scripted_charger(
    port: int,
    station_id: str,
    answers: dict[str, Any] | None = None,
    *,
    boot: bool = True,
    subprotocol: str = "ocpp1.6",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> AsyncIterator[ScriptedCharger]:
    """A scripted charger connected (with `headers`, e.g. Basic credentials) and, for 1.6
    when `boot`, booted."""
    url = f"ws://127.0.0.1:{port}/ocpp/{station_id}"
    async with open_websocket_url(url, subprotocols=[subprotocol], extra_headers=headers) as ws:
        charger = ScriptedCharger(ws, answers or {})
        charger._replies, charger._inbox = trio.open_memory_channel[list[Any]](16)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(charger._pump)
            if boot:
                assert (await charger.boot())["status"] == "Accepted"
            yield charger
            nursery.cancel_scope.cancel()


async def wait_for(probe: Callable[[], Any], *, timeout: float = 10.0, every: float = 0.05) -> Any:
    """Await `probe()` until it returns something truthy; fail after `timeout` seconds."""
    with trio.fail_after(timeout):
        while True:
            value = await probe()
            if value:
                return value
            await trio.sleep(every)


@asynccontextmanager
async def sse_events(
    client: httpx.AsyncClient, path: str = "/api/events"
) -> AsyncIterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
    """The events of a live stream as dicts, read in the background."""
    send, receive = trio.open_memory_channel[dict[str, Any]](1000)
    connected = trio.Event()

    async def read() -> None:
        async with client.stream("GET", path, timeout=None) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith(": connected"):  # sent once the server has subscribed
                    connected.set()
                elif line.startswith("data: "):
                    await send.send(orjson.loads(line[len("data: ") :]))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        with trio.fail_after(10):
            await connected.wait()
        yield receive
        nursery.cancel_scope.cancel()


async def next_event(
    events: trio.MemoryReceiveChannel[dict[str, Any]], kind: str, timeout: float = 10
) -> dict[str, Any]:
    with trio.fail_after(timeout):
        async for event in events:
            if event["kind"] == kind:
                return event
    raise AssertionError(f"stream ended before a {kind} event")


def files_of(database_url: str) -> Path:
    db = Path(sqlite_path(database_url))
    return db.with_name(f"{db.stem}-files")
