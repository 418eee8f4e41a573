"""An independent OCPP 2.0.1 client: the `ocpp` package's asyncio v201 `ChargePoint` over
`websockets`, with its own schema validation of requests and answers.

Against `csms serve` (a real subprocess): boot, authorize, a full TransactionEvent session,
read back with `csms sessions list --format json`. Against the CSMS hosted in this process
(on a thread of its own, so that the test can reach its registry): a session stopped from
the runtime with RequestStopTransaction, which the client answers and then ends.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import websockets
from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
from support.server_process import WAIT_S, run_cli, running_server
from support.sessions import external_client_session, session_summary
from websockets.typing import Subprotocol

from csms.runtime.server import Csms
from csms.storage.sqlite import SqliteStore

TAG = "EXT201-TAG"
BOOT = {"charging_station": {"model": "Ext-201", "vendor_name": "OcppPackage"}, "reason": "PowerUp"}


def _meter(timestamp: str, wh: float, context: str) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": timestamp,
            "sampled_value": [
                {
                    "value": wh,
                    "context": context,
                    "measurand": "Energy.Active.Import.Register",
                    "unit_of_measure": {"unit": "Wh"},
                }
            ],
        }
    ]


class Station(ChargePoint):  # type: ignore[misc]
    """The ocpp package's charge point, answering a remote stop by ending its session."""

    stop_requested: asyncio.Event
    running: str | None = None

    @on(Action.request_stop_transaction)
    def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        status = "Accepted" if transaction_id == self.running else "Rejected"
        return call_result.RequestStopTransaction(status=status)

    @after(Action.request_stop_transaction)
    async def after_request_stop(self, transaction_id: str, **_: Any) -> None:
        if transaction_id == self.running:
            await self.call(
                call.TransactionEvent(
                    event_type="Ended",
                    timestamp="2026-03-02T10:45:00Z",
                    trigger_reason="RemoteStop",
                    seq_no=2,
                    transaction_info={"transaction_id": transaction_id, "stopped_reason": "Remote"},
                    meter_value=_meter("2026-03-02T10:45:00Z", 26_000, "Transaction.End"),
                ),
                suppress=False,
            )
            self.running = None
            self.stop_requested.set()


@dataclass
class SessionRun:
    subprotocol: str | None
    answers: dict[str, Any]


async def _session(url: str, station_id: str) -> SessionRun:
    """BootNotification, Authorize, then Started, Updated and Ended."""
    async with (
        asyncio.timeout(WAIT_S),
        websockets.connect(url, subprotocols=[Subprotocol("ocpp2.0.1")]) as ws,
    ):
        station = Station(station_id, ws, response_timeout=5)
        listener = asyncio.create_task(station.start())
        try:
            answers: dict[str, Any] = {
                "boot": await station.call(call.BootNotification(**BOOT), suppress=False),
                "authorize": await station.call(
                    call.Authorize(id_token={"id_token": TAG, "type": "ISO14443"}),
                    suppress=False,
                ),
            }
            for seq_no, (event_type, trigger, minute, wh, context) in enumerate(
                [
                    ("Started", "Authorized", "00", 12_000, "Transaction.Begin"),
                    ("Updated", "MeterValuePeriodic", "15", 15_500, "Sample.Periodic"),
                    ("Ended", "EVDeparted", "30", 19_250, "Transaction.End"),
                ]
            ):
                stamp = f"2026-03-01T10:{minute}:00Z"
                answers[event_type] = await station.call(
                    call.TransactionEvent(
                        event_type=event_type,
                        timestamp=stamp,
                        trigger_reason=trigger,
                        seq_no=seq_no,
                        transaction_info={
                            "transaction_id": "EXT-TX-1",
                            **({"stopped_reason": "EVDisconnected"} if seq_no == 2 else {}),
                        },
                        evse={"id": 2, "connector_id": 1} if seq_no == 0 else None,
                        id_token={"id_token": TAG, "type": "ISO14443"} if seq_no == 0 else None,
                        meter_value=_meter(stamp, wh, context),
                    ),
                    suppress=False,
                )
        finally:
            listener.cancel()
        return SessionRun(ws.subprotocol, answers)


def test_ocpp_package_v201_charge_point_runs_a_session(tmp_path: Path) -> None:
    with running_server(tmp_path, unknown_stations="accept") as server:
        added = run_cli(["tokens", "add", TAG], server.env, cwd=tmp_path)
        assert added.returncode == 0, added.stderr
        result = asyncio.run(_session(server.url("EXT201-CP"), "EXT201-CP"))
        listed = run_cli(["sessions", "list", "--format", "json"], server.env, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in server.stderr_text()
    assert result.subprotocol == "ocpp2.0.1"
    assert result.answers["boot"].status == "Accepted"
    assert result.answers["authorize"].id_token_info["status"] == "Accepted"
    assert result.answers["Started"].id_token_info["status"] == "Accepted"
    assert result.answers["Ended"].id_token_info is None
    (session,) = json.loads(listed.stdout)
    assert session_summary(session) == external_client_session("EXT201-CP", TAG)
    assert session["stop_reason"] == "EVDisconnected"


# -- a remote stop from the runtime ---------------------------------------------------------
#
# The CSMS runs in this test's trio loop (the `csms` fixture: `run_csms` on loopback); the
# foreign asyncio client runs on a worker thread, and reaches the registry through
# `trio.from_thread` as the operator API would from a request.


async def _remote_stop(csms: Csms, token: trio.lowlevel.TrioToken) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/EXT201-REMOTE"
    async with (
        asyncio.timeout(WAIT_S),
        websockets.connect(url, subprotocols=[Subprotocol("ocpp2.0.1")]) as ws,
    ):
        station = Station("EXT201-REMOTE", ws, response_timeout=5)
        station.stop_requested = asyncio.Event()
        listener = asyncio.create_task(station.start())
        try:
            await station.call(call.BootNotification(**BOOT), suppress=False)
            station.running = "EXT-TX-REMOTE"
            await station.call(
                call.TransactionEvent(
                    event_type="Started",
                    timestamp="2026-03-02T10:00:00Z",
                    trigger_reason="Authorized",
                    seq_no=0,
                    transaction_info={"transaction_id": "EXT-TX-REMOTE"},
                    evse={"id": 1, "connector_id": 1},
                    id_token={"id_token": TAG, "type": "ISO14443"},
                    meter_value=_meter("2026-03-02T10:00:00Z", 20_000, "Transaction.Begin"),
                ),
                suppress=False,
            )
            # On a thread of its own: the station must go on answering meanwhile.
            answer: dict[str, Any] = await asyncio.to_thread(
                trio.from_thread.run,
                csms.registry.send_command,
                "EXT201-REMOTE",
                "RequestStopTransaction",
                {"transactionId": "EXT-TX-REMOTE"},
                trio_token=token,
            )
            await station.stop_requested.wait()
        finally:
            listener.cancel()
        return answer


async def test_a_remote_stop_from_the_runtime_ends_the_session(csms: Csms) -> None:
    store = SqliteStore(csms.settings.database_url.removeprefix("sqlite:///"))
    try:
        store.upsert_token(TAG)
        token = trio.lowlevel.current_trio_token()
        with trio.fail_after(WAIT_S):
            answer = await trio.to_thread.run_sync(asyncio.run, _remote_stop(csms, token))
        (session,) = store.list_sessions(station_id="EXT201-REMOTE")
    finally:
        store.close()
    assert answer == {"status": "Accepted"}
    assert (session["status"], session["stop_reason"], session["energy_wh"]) == (
        "Completed",
        "Remote",
        6_000,
    )


@pytest.mark.parametrize("offered", [["ocpp2.0.1", "ocpp1.6"], ["ocpp2.1", "ocpp2.0.1"]])
async def test_the_endpoint_offers_every_version(csms: Csms, offered: list[str]) -> None:
    async def handshake(url: str) -> str | None:
        async with websockets.connect(
            url, subprotocols=[Subprotocol(name) for name in offered]
        ) as ws:
            return ws.subprotocol

    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/EXT-NEG"
    chosen = await trio.to_thread.run_sync(asyncio.run, handshake(url))
    assert chosen == offered[0]
