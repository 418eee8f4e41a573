"""`csms demo`: a self-contained tour. It starts the CSMS in-process (or targets a running
one), registers a few stations and tokens, drives scripted 1.6 chargers through charging
sessions over real WebSockets, and prints what the ledger recorded.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import trio
from rich.progress import Progress
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, open_websocket_url

from csms.config import Settings
from csms.protocol import v16
from csms.protocol.session import CallAnswered, CallFailed, OcppSession
from csms.runtime.server import run_csms
from csms.storage.sqlite import SqliteStore, sqlite_path


@dataclass(frozen=True)
class DemoPlan:
    chargers: int = 5
    sessions_per_charger: int = 2
    meter_samples: int = 4
    seed: int = 7


class DemoCharger:
    """A scripted charge point: one CALL at a time, answers checked against the schemas."""

    def __init__(self, station_id: str, ws: WebSocketConnection) -> None:
        self.station_id = station_id
        self._ws = ws
        self._ids = itertools.count(1)
        self._session = OcppSession(
            "ocpp1.6", v16.CSMS_ACTIONS, new_message_id=lambda: str(next(self._ids))
        )

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        _, text = self._session.send_call(action, payload, trio.current_time())
        await self._ws.send_message(text)
        while True:
            event = self._session.receive(await self._ws.get_message(), trio.current_time())
            if isinstance(event, CallAnswered):
                return event.payload
            if isinstance(event, CallFailed):
                raise RuntimeError(f"{action} failed: {event.error.code} {event.error.description}")


class DemoFailed(Exception):
    """The demo could not run; the message says why."""


async def _drive(
    url: str, index: int, plan: DemoPlan, progress: Progress, task: Any, failures: list[str]
) -> None:
    try:
        await _drive_one(url, index, plan, progress, task)
    except (OSError, HandshakeError, ConnectionClosed, RuntimeError) as exc:
        reason = str(exc) or str(exc.__cause__ or "") or type(exc).__name__
        failures.append(f"charger DEMO-{index:03d} against {url}: {reason}")


async def _drive_one(url: str, index: int, plan: DemoPlan, progress: Progress, task: Any) -> None:
    station_id = f"DEMO-{index:03d}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=plan.sessions_per_charger)
    async with open_websocket_url(f"{url}/{station_id}", subprotocols=["ocpp1.6"]) as ws:
        charger = DemoCharger(station_id, ws)
        boot = await charger.call(
            "BootNotification",
            {
                "chargePointVendor": "DemoVendor",
                "chargePointModel": "DC-22",
                "firmwareVersion": "1.0",
            },
        )
        if boot["status"] != "Accepted":
            raise RuntimeError(f"{station_id} was not accepted: {boot['status']}")
        register = 10_000 * index
        for number in range(plan.sessions_per_charger):
            id_tag = f"DEMO-TAG-{(index + number) % 4}"
            moment = start + timedelta(hours=number)
            await charger.call(
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"},
            )
            await charger.call("Authorize", {"idTag": id_tag})
            started = await charger.call(
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": id_tag,
                    "meterStart": register,
                    "timestamp": v16.iso(moment),
                },
            )
            transaction_id = started["transactionId"]
            power_w = 7_000 + 1_000 * (index % 5)
            for sample in range(1, plan.meter_samples + 1):
                register += power_w // 4  # 15 minutes at that power
                await charger.call(
                    "MeterValues",
                    {
                        "connectorId": 1,
                        "transactionId": transaction_id,
                        "meterValue": [
                            {
                                "timestamp": v16.iso(moment + timedelta(minutes=15 * sample)),
                                "sampledValue": [
                                    {
                                        "value": str(register),
                                        "measurand": "Energy.Active.Import.Register",
                                        "unit": "Wh",
                                    },
                                    {
                                        "value": str(power_w),
                                        "measurand": "Power.Active.Import",
                                        "unit": "W",
                                    },
                                ],
                            }
                        ],
                    },
                )
            await charger.call(
                "StopTransaction",
                {
                    "transactionId": transaction_id,
                    "idTag": id_tag,
                    "meterStop": register,
                    "timestamp": v16.iso(moment + timedelta(minutes=15 * plan.meter_samples + 1)),
                    "reason": "Local",
                },
            )
            await charger.call(
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
            )
            progress.advance(task)


def prepare(settings: Settings, plan: DemoPlan) -> None:
    """Register the demo's stations and tokens in the configured database."""
    store = SqliteStore(sqlite_path(settings.database_url))
    try:
        for index in range(plan.chargers):
            store.add_station(f"DEMO-{index:03d}")
        for tag in range(4):
            store.upsert_token(f"DEMO-TAG-{tag}")
    finally:
        store.close()


async def run_demo(settings: Settings, plan: DemoPlan, url: str | None) -> list[dict[str, Any]]:
    """Run the plan against `url` (or an in-process CSMS); return the sessions it made."""
    prepare(settings, plan)
    failures: list[str] = []
    with Progress(transient=True) as progress:
        task = progress.add_task(
            "charging sessions", total=plan.chargers * plan.sessions_per_charger
        )
        async with trio.open_nursery() as nursery:
            if url is None:
                csms = await nursery.start(run_csms, settings)
                url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"
            async with trio.open_nursery() as fleet:
                for index in range(plan.chargers):
                    fleet.start_soon(_drive, url, index, plan, progress, task, failures)
            nursery.cancel_scope.cancel()
    if failures:
        raise DemoFailed(failures[0])
    store = SqliteStore(sqlite_path(settings.database_url))
    try:
        return [
            s for s in store.list_sessions(limit=10_000) if s["station_id"].startswith("DEMO-")
        ][: plan.chargers * plan.sessions_per_charger]
    finally:
        store.close()


def summary(sessions: list[dict[str, Any]]) -> str:
    energy = sum(s["energy_wh"] or 0 for s in sessions)
    return orjson.dumps({"sessions": len(sessions), "energy_kwh": round(energy / 1000, 3)}).decode()
