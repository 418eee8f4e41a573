"""An independent OCPP 1.6 client against `csms serve`: the `ocpp` package's asyncio
`ChargePoint` over `websockets`, with its own schema validation of requests and answers.

The token is registered with `csms tokens add`; the session is read back with
`csms sessions list --format json`. All three are real subprocesses or a foreign client,
so this pins the interfaces other tools rely on, not our own test charger's idea of them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websockets
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.datatypes import MeterValue, SampledValue
from ocpp.v16.enums import (
    AuthorizationStatus,
    Measurand,
    Reason,
    RegistrationStatus,
    UnitOfMeasure,
)
from support.server_process import WAIT_S, run_cli, running_server
from support.sessions import external_client_session, session_summary
from websockets.typing import Subprotocol

STATION = "EXT-CP-01"
TAG = "EXT-TAG-1"


@dataclass
class ClientRun:
    boot: call_result.BootNotification
    authorize: call_result.Authorize
    start: call_result.StartTransaction
    meter_values: call_result.MeterValues
    stop: call_result.StopTransaction
    subprotocol: str | None


async def drive_external_charger(url: str) -> ClientRun:
    """BootNotification -> Authorize -> StartTransaction -> MeterValues -> StopTransaction."""
    async with asyncio.timeout(WAIT_S):
        async with websockets.connect(url, subprotocols=[Subprotocol("ocpp1.6")]) as ws:
            charge_point = ChargePoint(STATION, ws, response_timeout=5)
            listener = asyncio.create_task(charge_point.start())
            try:
                # suppress=False: a CALLERROR raises instead of quietly returning None.
                boot = await charge_point.call(
                    call.BootNotification(
                        charge_point_model="Ext-1",
                        charge_point_vendor="OcppPackage",
                        firmware_version="2.1.0",
                    ),
                    suppress=False,
                )
                authorize = await charge_point.call(call.Authorize(id_tag=TAG), suppress=False)
                start = await charge_point.call(
                    call.StartTransaction(
                        connector_id=2,
                        id_tag=TAG,
                        meter_start=12_000,
                        timestamp="2026-03-01T10:00:00Z",
                    ),
                    suppress=False,
                )
                meter_values = await charge_point.call(
                    call.MeterValues(
                        connector_id=2,
                        transaction_id=start.transaction_id,
                        meter_value=[
                            MeterValue(
                                timestamp="2026-03-01T10:15:00Z",
                                sampled_value=[
                                    SampledValue(
                                        value="14.5",
                                        measurand=Measurand.energy_active_import_register,
                                        unit=UnitOfMeasure.kwh,
                                    )
                                ],
                            )
                        ],
                    ),
                    suppress=False,
                )
                stop = await charge_point.call(
                    call.StopTransaction(
                        meter_stop=19_250,
                        timestamp="2026-03-01T10:30:00Z",
                        transaction_id=start.transaction_id,
                        reason=Reason.ev_disconnected,
                        id_tag=TAG,
                    ),
                    suppress=False,
                )
            finally:
                listener.cancel()
            return ClientRun(boot, authorize, start, meter_values, stop, ws.subprotocol)


def test_ocpp_package_charge_point_runs_a_session(tmp_path: Path) -> None:
    with running_server(tmp_path, unknown_stations="accept") as server:
        added = run_cli(["tokens", "add", TAG], server.env, cwd=tmp_path)
        assert added.returncode == 0, added.stderr

        # A sync test: the foreign asyncio client gets its own event loop here.
        result = asyncio.run(drive_external_charger(server.url(STATION)))

        listed = run_cli(["sessions", "list", "--format", "json"], server.env, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        shown = run_cli(
            ["sessions", "show", str(result.start.transaction_id), "--format", "json"],
            server.env,
            cwd=tmp_path,
        )
        assert shown.returncode == 0, shown.stderr
    assert "Traceback" not in server.stderr_text()

    assert result.subprotocol == "ocpp1.6"
    assert result.boot.status == RegistrationStatus.accepted
    assert result.boot.interval > 0
    assert result.authorize.id_tag_info["status"] == AuthorizationStatus.accepted
    assert result.start.id_tag_info["status"] == AuthorizationStatus.accepted
    assert isinstance(result.start.transaction_id, int)
    assert result.stop.id_tag_info is not None
    assert result.stop.id_tag_info["status"] == AuthorizationStatus.accepted

    sessions: list[dict[str, Any]] = json.loads(listed.stdout)
    assert len(sessions) == 1
    session = sessions[0]
    assert session["id"] == result.start.transaction_id
    assert session_summary(session) == external_client_session(STATION, TAG)
    assert session["stop_reason"] == "EVDisconnected"

    # The kWh sample is kept as sent and normalised to Wh.
    detail: dict[str, Any] = json.loads(shown.stdout)
    assert [(s["measurand"], s["value"], s["unit"], s["wh"]) for s in detail["meter_samples"]] == [
        ("Energy.Active.Import.Register", "14.5", "kWh", 14_500.0)
    ]
