"""`TestCharger`: a minimal 1.6 charge point for tests, on the same protocol core.

It sends CALLs one at a time and returns the reply frame; CSMS-initiated CALLs are answered
by `answers` (action -> payload) in a background task.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from csms.protocol import v16
from csms.protocol.session import CallReceived, OcppSession


def ts(offset_s: float = 0.0, base: datetime = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)) -> str:
    """A fixed, reproducible OCPP timestamp `offset_s` seconds after a base moment."""
    return v16.iso(base + timedelta(seconds=offset_s))


class TestCharger:
    __test__ = False  # not a pytest test class

    def __init__(self, ws: WebSocketConnection, answers: dict[str, dict[str, Any]]) -> None:
        self.ws = ws
        self.answers = answers
        self.received_calls: list[tuple[str, dict[str, Any]]] = []
        self._ids = itertools.count(1)
        self._replies: trio.MemorySendChannel[list[Any]]
        self._replies, self._reply_inbox = trio.open_memory_channel[list[Any]](16)
        self.session = OcppSession("ocpp1.6", v16.CSMS_ACTIONS)

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Send a CALL and return the CALLRESULT or CALLERROR frame as a list."""
        return await self.send_raw(
            orjson.dumps([2, str(next(self._ids)), action, payload]).decode()
        )

    async def send_raw(self, text: str) -> list[Any]:
        await self.ws.send_message(text)
        return await self._reply_inbox.receive()

    async def boot(self) -> list[Any]:
        return await self.call(
            "BootNotification", {"chargePointVendor": "TestVendor", "chargePointModel": "T1"}
        )

    async def _pump(self) -> None:
        async for text in messages(self.ws):
            frame = orjson.loads(text)
            if isinstance(frame, list) and frame and frame[0] == 2:
                event = self.session.receive(text, trio.current_time())
                if isinstance(event, CallReceived):
                    self.received_calls.append((event.call.action, event.call.payload))
                    payload = self.answers.get(event.call.action, {"status": "Accepted"})
                    await self.ws.send_message(
                        self.session.reply_result(event.call.message_id, payload)
                    )
            else:
                await self._replies.send(frame)


async def messages(ws: WebSocketConnection) -> AsyncIterator[str]:
    """The text of each message `ws` receives, until it closes."""
    while True:
        try:
            message = await ws.get_message()
        except ConnectionClosed:
            return
        yield message if isinstance(message, str) else message.decode()


@asynccontextmanager
async def connect_charger(
    port: int,
    station_id: str,
    *,
    answers: dict[str, dict[str, Any]] | None = None,
    subprotocols: list[str] | None = None,
) -> AsyncIterator[TestCharger]:
    url = f"ws://127.0.0.1:{port}/ocpp/{station_id}"
    async with open_websocket_url(url, subprotocols=subprotocols or ["ocpp1.6"]) as ws:
        charger = TestCharger(ws, answers or {})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(charger._pump)
            yield charger
            nursery.cancel_scope.cancel()
