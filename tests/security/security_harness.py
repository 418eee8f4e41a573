"""Helpers of the hostile-input suite (not a test module).

- `ServerThread`: the real CSMS (`run_csms`, loopback, a SQLite file) on a thread of its own,
  so that synchronous Hypothesis tests can throw thousands of examples at one server; a
  server-side crash is kept in `error` and fails the next check.
- `SyncPeer`: a blocking WebSocket client on a raw socket (wsproto), able to send what no
  client library will: text frames that are not UTF-8, exactly the bytes given.
- `row_counts`: every table's row count, read from the database file directly.
- `FIGURES`: the suite's counts (frames fuzzed, mutants, attacks), printed at the end of the
  run by this folder's conftest.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from csms.config import Settings
from csms.runtime.server import Csms, run_csms

BOOT = {"chargePointVendor": "Hostile", "chargePointModel": "H1"}

#: name -> figure; printed in the terminal summary of a run that includes tests/security.
FIGURES: dict[str, Any] = {}


def add_figure(name: str, amount: int = 1) -> None:
    FIGURES[name] = FIGURES.get(name, 0) + amount


def row_counts(database: Path) -> dict[str, int]:
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        tables = [
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not row[0].startswith("sqlite_")
        ]
        return {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}


def count_events(database: Path, station_id: str, kind: str) -> int:
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        row = db.execute(
            "SELECT COUNT(*) FROM events WHERE station_id = ? AND kind = ?", (station_id, kind)
        ).fetchone()
        return int(row[0])


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `predicate` (from the test's thread) until it holds; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.002)


class ServerThread:
    """`run_csms` under its own `trio.run` on a daemon thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.csms: Csms | None = None
        self.error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="csms", daemon=True)

    @property
    def port(self) -> int:
        assert self.csms is not None
        return self.csms.ocpp_port

    @property
    def database(self) -> Path:
        return Path(self.settings.database_url.removeprefix("sqlite:///"))

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(30) or self.csms is None:
            raise RuntimeError(f"the CSMS did not start: {self.error!r}")
        return self

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # kept for the test thread to fail on
            self.error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            self._token = trio.lowlevel.current_trio_token()
            self.csms = await nursery.start(run_csms, self.settings)
            self._ready.set()

    def check_alive(self) -> None:
        assert self.error is None, f"the server crashed: {self.error!r}"
        assert self._thread.is_alive(), "the server stopped"

    def registered(self, station_id: str) -> bool:
        assert self.csms is not None and self._token is not None
        registry = self.csms.registry
        return bool(
            trio.from_thread.run_sync(lambda: station_id in registry, trio_token=self._token)
        )

    def command_soon(
        self, station_id: str, action: str, payload: dict[str, Any]
    ) -> Future[dict[str, Any]]:
        """Start a CSMS command to the station; its answer (or error) comes in the future."""
        assert self.csms is not None and self.csms.background is not None
        registry, nursery = self.csms.registry, self.csms.background
        future: Future[dict[str, Any]] = Future()

        async def send() -> None:
            try:
                with trio.fail_after(10):
                    future.set_result(await registry.send_command(station_id, action, payload))
            except Exception as exc:
                future.set_exception(exc)

        trio.from_thread.run_sync(nursery.start_soon, send, trio_token=self._token)
        return future

    def stop(self) -> None:
        if self._scope is not None and self._token is not None and self._thread.is_alive():
            scope = self._scope
            trio.from_thread.run_sync(scope.cancel, trio_token=self._token)
        self._thread.join(30)


class Closed(Exception):
    """The server closed the WebSocket; `code` is its close code (None: no close frame)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"closed ({code}) {reason}")
        self.code = code


class Refused(Exception):
    """The server refused the upgrade with an HTTP status."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"refused ({status}): {body!r}")
        self.status = status
        self.body = body


class SyncPeer:
    """A blocking WebSocket client speaking exactly the frames it is told to."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.ws = WSConnection(ConnectionType.CLIENT)
        self._ids = 0

    @classmethod
    def connect(
        cls,
        port: int,
        target: str,
        *,
        subprotocols: list[str] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        timeout: float = 10.0,
    ) -> SyncPeer:
        """Open and upgrade; raise `Refused` with the status when the server says no."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        peer = cls(sock)
        request = Request(
            host="127.0.0.1",
            target=target,
            subprotocols=subprotocols or ["ocpp1.6"],
            extra_headers=headers or [],
        )
        sock.sendall(peer.ws.send(request))
        refusal: RejectConnection | None = None
        body = b""
        while True:
            data = sock.recv(65536)
            if not data:
                sock.close()
                if refusal is not None:
                    raise Refused(refusal.status_code, body)
                raise Closed(None, "the stream ended in the handshake")
            peer.ws.receive_data(data)
            for event in peer.ws.events():
                if isinstance(event, AcceptConnection):
                    return peer
                if isinstance(event, RejectConnection):
                    refusal = event
                    if not event.has_body:
                        sock.close()
                        raise Refused(event.status_code, b"")
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished and refusal is not None:
                        sock.close()
                        raise Refused(refusal.status_code, body)

    def close(self) -> None:
        self.sock.close()

    def send_text(self, text: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=text)))

    def send_text_bytes(self, payload: bytes) -> None:
        """A single masked text frame carrying `payload` as it is, UTF-8 or not."""
        mask = os.urandom(4)
        header = bytes([0x81])
        length = len(payload)
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def next_frame(self) -> list[Any] | dict[str, Any]:
        """The next text message, parsed; raise `Closed` when the server closes instead."""
        while True:
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    parsed: list[Any] | dict[str, Any] = orjson.loads(event.data)
                    return parsed
                if isinstance(event, CloseConnection):
                    raise Closed(event.code, event.reason or "")
                if isinstance(event, Ping):
                    self.sock.sendall(self.ws.send(event.response()))
            data = self.sock.recv(65536)
            if not data:
                raise Closed(None, "the stream ended")
            self.ws.receive_data(data)

    def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        self._ids += 1
        self.send_text(orjson.dumps([2, f"p{self._ids}", action, payload]).decode())
        frame = self.next_frame()
        assert isinstance(frame, list)
        return frame

    def boot(self) -> list[Any]:
        return self.call("BootNotification", BOOT)


def bystander_ok(server: ServerThread, peer: SyncPeer, station_id: str) -> None:
    """The bystander charger still gets answers and takes commands."""
    server.check_alive()
    assert peer.call("Heartbeat", {})[0] == 3
    answer = server.command_soon(station_id, "ClearCache", {})
    answer_commands(peer)
    assert answer.result(10) == {"status": "Accepted"}


def answer_commands(peer: SyncPeer) -> None:
    """Read the bystander's next frame (a CSMS CALL) and accept it."""
    frame = peer.next_frame()
    assert isinstance(frame, list) and frame[0] == 2
    peer.send_text(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())
