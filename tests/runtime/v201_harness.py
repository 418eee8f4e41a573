"""Helpers of the 2.0.1 runtime tests (not a test module): a 2.x station driven by the test,
and the payloads it sends.

`Station2x` sends one CALL at a time and returns the answer frame; CSMS-initiated CALLs are
validated by its own `OcppSession` and answered from `answers` (action -> payload) by a
background task, so the test sees them in `received_calls`.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import trio
from runtime_harness import MemoryCsms
from support.charger import messages
from trio_websocket import WebSocketConnection

from csms.protocol import v201
from csms.protocol.session import CallReceived, OcppSession

BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BOOT_201 = {
    "chargingStation": {"model": "T-201", "vendorName": "TestVendor", "serialNumber": "S-1"},
    "reason": "PowerUp",
}


def ts(minutes: float = 0.0) -> str:
    """A device timestamp `minutes` after the base, as a 2.x station writes it."""
    return v201.iso(BASE + timedelta(minutes=minutes))


def token(value: str, kind: str = "ISO14443") -> dict[str, str]:
    return {"idToken": value, "type": kind}


def reading(
    minutes: float, wh: float, context: str = "Sample.Periodic", **extra: Any
) -> dict[str, Any]:
    """One meter value with the energy register (and whatever `extra` sampled values)."""
    sampled: list[dict[str, Any]] = [
        {
            "value": wh,
            "context": context,
            "measurand": "Energy.Active.Import.Register",
            "unitOfMeasure": {"unit": "Wh"},
        }
    ]
    if "power_w" in extra:
        sampled.append(
            {
                "value": extra["power_w"],
                "context": context,
                "measurand": "Power.Active.Import",
                "unitOfMeasure": {"unit": "W"},
            }
        )
    return {"timestamp": ts(minutes), "sampledValue": sampled}


def tx_event(
    event_type: str,
    seq_no: int,
    tx_id: str,
    trigger: str,
    minutes: float,
    *,
    evse: int | None = 1,
    id_token: dict[str, str] | None = None,
    meter: list[dict[str, Any]] | None = None,
    offline: bool = False,
    stopped_reason: str | None = None,
    charging_state: str | None = None,
    remote_start_id: int | None = None,
) -> dict[str, Any]:
    info: dict[str, Any] = {"transactionId": tx_id}
    if stopped_reason is not None:
        info["stoppedReason"] = stopped_reason
    if charging_state is not None:
        info["chargingState"] = charging_state
    if remote_start_id is not None:
        info["remoteStartId"] = remote_start_id
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": ts(minutes),
        "triggerReason": trigger,
        "seqNo": seq_no,
        "transactionInfo": info,
    }
    if offline:
        payload["offline"] = True
    if evse is not None:
        payload["evse"] = {"id": evse, "connectorId": 1}
    if id_token is not None:
        payload["idToken"] = id_token
    if meter:
        payload["meterValue"] = meter
    return payload


def session_events(
    tx_id: str, tag: str, start_wh: int, stop_wh: int, *, minutes: float = 0.0, **flags: Any
) -> list[dict[str, Any]]:
    """A whole session: Started (Transaction.Begin), one Updated halfway, Ended."""
    middle = (start_wh + stop_wh) // 2
    return [
        tx_event(
            "Started",
            0,
            tx_id,
            "Authorized",
            minutes,
            id_token=token(tag),
            meter=[reading(minutes, start_wh, "Transaction.Begin")],
            charging_state="Charging",
            **flags,
        ),
        tx_event(
            "Updated",
            1,
            tx_id,
            "MeterValuePeriodic",
            minutes + 15,
            meter=[reading(minutes + 15, middle)],
            **flags,
        ),
        tx_event(
            "Ended",
            2,
            tx_id,
            "EVDeparted",
            minutes + 30,
            meter=[reading(minutes + 30, stop_wh, "Transaction.End")],
            stopped_reason="EVDisconnected",
            **flags,
        ),
    ]


class Station2x:
    """A 2.x charging station whose every CALL the test sends itself."""

    def __init__(
        self,
        ws: WebSocketConnection,
        version: str = "ocpp2.0.1",
        answers: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.ws = ws
        self.answers = answers or {}
        self.received_calls: list[tuple[str, dict[str, Any]]] = []
        self.session = OcppSession(version, v201.CSMS_ACTIONS)
        self._ids = itertools.count(1)
        self._replies, self._inbox = trio.open_memory_channel[list[Any]](64)

    async def send(self, frame: list[Any] | str) -> None:
        await self.ws.send_message(
            frame if isinstance(frame, str) else orjson.dumps(frame).decode()
        )

    async def receive(self, timeout: float = 10.0) -> list[Any]:
        with trio.fail_after(timeout):
            return await self._inbox.receive()

    async def call(self, action: str, payload: dict[str, Any], message_id: str = "") -> list[Any]:
        """Send a CALL and return its answer frame (nothing else is in flight)."""
        await self.send([2, message_id or f"s{next(self._ids)}", action, payload])
        return await self.receive()

    async def boot(self) -> list[Any]:
        return await self.call("BootNotification", BOOT_201)

    async def pump(self) -> None:
        async for text in messages(self.ws):
            frame = orjson.loads(text)
            if isinstance(frame, list) and frame and frame[0] == 2:
                event = self.session.receive(text, trio.current_time())
                assert isinstance(event, CallReceived), event
                action, payload = event.call.action, event.call.payload
                self.received_calls.append((action, payload))
                answer = self.answers.get(action, {"status": "Accepted"})
                await self.ws.send_message(self.session.reply_result(event.call.message_id, answer))
            else:
                await self._replies.send(frame)


@asynccontextmanager
async def station_2x(
    server: MemoryCsms,
    station_id: str,
    *,
    version: str = "ocpp2.0.1",
    answers: dict[str, dict[str, Any]] | None = None,
) -> AsyncIterator[Station2x]:
    """A 2.x station connected to an in-memory CSMS, its reader running."""
    ws = await server.connect(station_id, [version])
    assert ws.subprotocol == version
    station = Station2x(ws, version, answers)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(station.pump)
        try:
            yield station
        finally:
            nursery.cancel_scope.cancel()
            await ws.aclose()
