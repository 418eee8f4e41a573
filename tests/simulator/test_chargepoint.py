"""The virtual charge point against the real CSMS: boot, heartbeats, sessions, meter values,
every CSMS-initiated 1.6 call, offline queueing, lost replies and the fault hooks.

Most tests run on `autojump_clock` with the CSMS's parts over in-memory streams (the real
WebSocket framing and the real SQLite ledger, commits inline); the file transfer test runs
in wire mode against the CSMS on loopback and a tiny local HTTP server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import trio
import trio.testing
from runtime.runtime_harness import MemoryCsms, memory_csms, wait_until
from sim_harness import (
    HttpFileServer,
    ev,
    http_file_server,
    memory_connector,
    received_calls,
    running,
    sent_calls,
    virtual_clock,
)
from support.settings import make_settings

from csms.config import Settings
from csms.domain.ledger import UnknownStationPolicy
from csms.protocol import v16
from csms.runtime.server import Csms
from csms.storage.sqlite import SqliteStore, sqlite_path
from simulator.chargepoint import ConnectorSpec, Timing, VirtualChargePoint
from simulator.transport import url_connector

Clock = trio.testing.MockClock


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"heartbeat_interval": 60, "ping_interval": 10_000.0}
    values.update(overrides)
    settings: Settings = make_settings(tmp_path, **values)
    return settings


@asynccontextmanager
async def booted(
    server: MemoryCsms, station_id: str = "CP1", **options: Any
) -> AsyncIterator[VirtualChargePoint]:
    """A charger on the in-memory CSMS, booted and accepted, for the body of the block."""
    options.setdefault("clock", virtual_clock())
    options.setdefault("rng", np.random.default_rng(7))
    charger = VirtualChargePoint(station_id, memory_connector(server, station_id), **options)
    async with running(charger):
        with trio.fail_after(60):
            await charger.wait_idle()  # booted, and the status notifications sent
        yield charger


async def command(server: MemoryCsms, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    return await server.registry.send_command("CP1", action, payload)


def statuses(store: SqliteStore, connector_id: int, station_id: str = "CP1") -> list[str]:
    return [
        row["status"]
        for row in store.status_history(station_id)
        if row["connector_id"] == connector_id
    ]


def register_samples(store: SqliteStore, transaction_id: int, context: str) -> list[dict[str, Any]]:
    session = store.get_session(transaction_id)
    assert session is not None
    return [
        s
        for s in session["meter_samples"]
        if s["measurand"] == "Energy.Active.Import.Register" and s["context"] == context
    ]


def tx_profile(limit: float, unit: str = "A", **extra: Any) -> dict[str, Any]:
    return {
        "chargingProfileId": 7,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
        **extra,
    }


# -- boot, heartbeats, status ---------------------------------------------------------------


async def test_boot_statuses_and_heartbeats_follow_the_interval(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    two = [ConnectorSpec(), ConnectorSpec()]
    async with memory_csms(_settings(tmp_path)) as server, booted(server, connectors=two) as cp:
        station = server.store.get_station("CP1")
        assert station is not None and station["registration_status"] == "Accepted"
        assert station["serial_number"] == cp.info.serial_number
        assert [statuses(server.store, c) for c in (0, 1, 2)] == [["Available"]] * 3
        # The CSMS's boot interval (60 s) is the heartbeat period and the config value.
        assert cp.config.get_int("HeartbeatInterval") == 60
        await trio.sleep(630)
        assert len(sent_calls(cp, "Heartbeat")) == 10

        reply = await command(
            server, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "120"}
        )
        assert reply == {"status": "Accepted"}
        before = len(sent_calls(cp, "Heartbeat"))
        await trio.sleep(1200)
        assert len(sent_calls(cp, "Heartbeat")) - before == 10
        assert server.store.get_station("CP1")["last_heartbeat_at"] is not None  # type: ignore[index]


async def test_pending_boot_is_retried_after_the_given_interval(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = _settings(tmp_path, unknown_stations=UnknownStationPolicy.PENDING)
    async with memory_csms(settings) as server:
        cp = VirtualChargePoint("CP1", memory_connector(server, "CP1"), clock=virtual_clock())
        async with running(cp):
            await trio.sleep(150)  # boots at 0, 60 and 120 s: Pending each time
            assert cp.registration_status == "Pending" and not cp.online
            assert len(sent_calls(cp, "BootNotification")) == 3
            assert sent_calls(cp, "Heartbeat") == []
            server.store.add_station("CP1")
            with trio.fail_after(61):
                await cp.wait_booted()
            assert cp.registration_status == "Accepted" and cp.boots == 1


# -- sessions ---------------------------------------------------------------------------------


async def test_rfid_session_in_the_ledger_has_the_register_difference_exactly(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("RFID-1")
        async with booted(server) as cp:
            result = await cp.plug_in(1, ev(soc=0.3), "RFID-1")
            assert (result.outcome, result.status) == ("Started", "Accepted")
            await trio.sleep(47 * 60 + 13)
            record = await cp.unplug(1)
            await cp.wait_delivered()
        assert record is not None and record.transaction_id is not None
        assert result.session is record
        row = server.store.get_session(record.transaction_id)
        assert row is not None
        assert (row["meter_start_wh"], row["meter_stop_wh"]) == (
            record.meter_start_wh,
            record.meter_stop_wh,
        )
        assert record.meter_stop_wh is not None
        assert row["energy_wh"] == record.meter_stop_wh - record.meter_start_wh == record.energy_wh
        assert abs(record.exact_energy_wh - 11_000 * (47 * 60 + 13) / 3600) < 1e-6
        assert row["status"] == "Completed" and row["stop_reason"] == "EVDisconnected"
        assert row["needs_reconciliation"] == 0 and row["anomalies"] is None
        assert next(s["context"] for s in row["meter_samples"]) == "Transaction.Begin"
        assert statuses(server.store, 1) == ["Available", "Preparing", "Charging", "Available"]
        assert record.started_at == v16.parse_time(row["started_at"])


async def test_refused_card_returns_the_connector_to_available(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("BLOCKED", status="Blocked")
        async with booted(server) as cp:
            unknown = await cp.plug_in(1, ev(), "NOBODY")
            blocked = await cp.plug_in(1, ev(), "BLOCKED")
            await cp.wait_idle()
        assert (unknown.outcome, unknown.status) == ("Refused", "Invalid")
        assert blocked.status == "Blocked"
        assert [r.status for r in cp.refusals] == ["Invalid", "Blocked"]
        assert server.store.count("transactions") == 0
        assert statuses(server.store, 1) == ["Available", *["Preparing", "Available"] * 2]
        assert cp.sessions == []


async def test_a_full_car_suspends_the_session(tmp_path: Path, autojump_clock: Clock) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("T")
        async with booted(server) as cp:
            await cp.plug_in(1, ev(soc=0.97, capacity_wh=10_000), "T")
            await trio.sleep(3600)
            assert cp.connectors[1].reported_status == "SuspendedEV"
            record = await cp.stop_charging(1, "T")  # the driver stops it with the card
            await trio.sleep(60)
            await cp.unplug(1)
            await cp.wait_idle()
        assert record is not None and record.transaction_id is not None
        assert record.stop_reason == "Local"
        assert statuses(server.store, 1) == [
            "Available",
            "Preparing",
            "Charging",
            "SuspendedEV",
            "Finishing",
            "Available",
        ]
        assert abs(record.exact_energy_wh - 300) < 1e-6  # 3 % of 10 kWh, then nothing
        assert server.store.get_session(record.transaction_id)["energy_wh"] == record.energy_wh  # type: ignore[index]


async def test_meter_values_periodic_and_clock_aligned_cadence(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("T")
        async with booted(server) as cp:
            for key, value in (
                ("MeterValueSampleInterval", "300"),
                ("ClockAlignedDataInterval", "900"),
            ):
                assert await command(
                    server, "ChangeConfiguration", {"key": key, "value": value}
                ) == {"status": "Accepted"}
            started = await cp.plug_in(1, ev(soc=0.1), "T")
            await trio.sleep(3600 + 10)
            reply = await command(
                server,
                "ChangeConfiguration",
                {"key": "MeterValuesSampledData", "value": "Energy.Active.Import.Register"},
            )
            assert reply == {"status": "Accepted"}
            await trio.sleep(300)
            await cp.unplug(1)
            await cp.wait_delivered()
        assert started.session is not None and started.session.transaction_id is not None
        tid = started.session.transaction_id
        periodic = register_samples(server.store, tid, "Sample.Periodic")
        aligned = register_samples(server.store, tid, "Sample.Clock")
        assert len(periodic) == 13  # every 300 s for 3910 s
        minutes = [v16.parse_time(s["timestamp"]) for s in aligned]
        assert len(aligned) == 4 and all(m.minute % 15 == 0 and m.second == 0 for m in minutes)
        samples = server.store.get_session(tid)["meter_samples"]  # type: ignore[index]
        powers = [float(s["value"]) for s in samples if s["measurand"] == "Power.Active.Import"]
        assert len(powers) == 12 and set(powers) == {11_000.0}  # then only the register
        socs = [s for s in samples if s["measurand"] == "SoC"]
        assert socs and all(s["unit"] == "Percent" for s in socs)


# -- CSMS-initiated calls ---------------------------------------------------------------------


async def test_remote_start_and_stop_change_the_ledger(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("APP-1")
        async with booted(server) as cp:
            reply = await command(
                server, "RemoteStartTransaction", {"idTag": "APP-1", "connectorId": 1}
            )
            assert reply == {"status": "Accepted"}
            await trio.sleep(1)
            assert cp.connectors[1].reported_status == "Preparing"
            started = await cp.plug_in(1, ev(), via_app=True)  # the car arrives: it starts
            assert started.outcome == "Started" and started.session is not None
            await cp.wait_delivered()
            tid = started.session.transaction_id
            assert tid is not None and server.store.get_session(tid)["status"] == "Active"  # type: ignore[index]
            assert await command(server, "RemoteStopTransaction", {"transactionId": tid + 99}) == {
                "status": "Rejected"
            }
            await trio.sleep(600)
            assert await command(server, "RemoteStopTransaction", {"transactionId": tid}) == {
                "status": "Accepted"
            }
            await trio.sleep(1)
            await cp.wait_delivered()
            row = server.store.get_session(tid)
            assert row is not None and (row["status"], row["stop_reason"]) == (
                "Completed",
                "Remote",
            )
            assert cp.connectors[1].reported_status == "Finishing"
            await cp.unplug(1)
            # A remote start with nobody arriving times out after ConnectionTimeOut.
            assert await command(server, "RemoteStartTransaction", {"idTag": "APP-2"}) == {
                "status": "Accepted"
            }
            await trio.sleep(cp.config.get_int("ConnectionTimeOut") + 1)
            assert cp.refusals[-1].status == "ConnectionTimeOut"
            assert cp.connectors[1].reported_status == "Available"
        assert started.session.via_app and started.session.energy_wh == row["energy_wh"]


async def test_remote_start_authorizes_first_when_configured(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("GOOD")
        config: dict[str, str | int | bool] = {"AuthorizeRemoteTxRequests": True}
        async with booted(server, config=config) as cp:
            await cp.plug_in(1, ev(), via_app=True)
            assert await command(server, "RemoteStartTransaction", {"idTag": "BAD"}) == {
                "status": "Accepted"
            }
            await trio.sleep(1)
            assert cp.refusals[-1].status == "Invalid" and cp.connectors[1].tx is None
            # A remote start may bring the TxProfile of its transaction: 8 A x 230 V x 3.
            good = {"idTag": "GOOD", "chargingProfile": tx_profile(8)}
            assert await command(server, "RemoteStartTransaction", good) == {"status": "Accepted"}
            await trio.sleep(1)
            await cp.wait_delivered()
            assert cp.connectors[1].power_w(cp.offered_w(cp.connectors[1])) == 5520.0
        assert [
            m.action
            for m in cp.messages
            if m.direction == "sent" and m.action in ("Authorize", "StartTransaction")
        ] == ["Authorize", "Authorize", "StartTransaction"]
        assert server.store.count("transactions") == 1


async def test_reset_stops_the_session_reboots_and_boots_again(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("T")
        timing = Timing(reboot_delay_s=20, reconnect_delay_s=5)
        async with booted(server, timing=timing) as cp:
            started = await cp.plug_in(1, ev(), "T")
            await trio.sleep(300)
            assert await command(server, "Reset", {"type": "Soft"}) == {"status": "Accepted"}
            await trio.sleep(1)
            await cp.wait_booted()
            await cp.wait_delivered()
            assert (cp.reboots, cp.boots, cp.connections) == (1, 2, 2)
            assert await command(server, "Reset", {"type": "Hard"}) == {"status": "Accepted"}
            await trio.sleep(1)
            await cp.wait_booted()
        assert started.session is not None and started.session.transaction_id is not None
        row = server.store.get_session(started.session.transaction_id)
        assert row is not None and (row["status"], row["stop_reason"]) == ("Completed", "SoftReset")
        assert len(server.store.events("CP1", "boot")) == 3
        assert cp.reboots == 2


async def test_charging_profiles_really_limit_the_power(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("T")
        async with booted(server) as cp:
            # Without a transaction there is nothing for a TxProfile to apply to.
            rejected = await command(
                server,
                "SetChargingProfile",
                {"connectorId": 1, "csChargingProfiles": tx_profile(10)},
            )
            assert rejected == {"status": "Rejected"}
            started = await cp.plug_in(1, ev(soc=0.1, max_power_w=22_000), "T")
            await trio.sleep(600)
            reply = await command(
                server,
                "SetChargingProfile",
                {"connectorId": 1, "csChargingProfiles": tx_profile(10)},
            )
            assert reply == {"status": "Accepted"}
            too_high = tx_profile(10, stackLevel=99)
            assert await command(
                server, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": too_high}
            ) == {"status": "Rejected"}
            composite = await command(
                server,
                "GetCompositeSchedule",
                {"connectorId": 1, "duration": 3600, "chargingRateUnit": "W"},
            )
            assert composite["status"] == "Accepted"
            assert composite["chargingSchedule"]["chargingSchedulePeriod"] == [
                {"startPeriod": 0, "limit": 6900.0}
            ]
            await trio.sleep(600)
            cleared = await command(
                server, "ClearChargingProfile", {"chargingProfilePurpose": "TxProfile"}
            )
            assert cleared == {"status": "Accepted"}
            assert await command(server, "ClearChargingProfile", {"id": 12345}) == {
                "status": "Unknown"
            }
            await trio.sleep(600)
            record = await cp.unplug(1)
            await cp.wait_delivered()
        assert record is not None and record.transaction_id is not None
        samples = server.store.get_session(record.transaction_id)["meter_samples"]  # type: ignore[index]
        powers = [float(s["value"]) for s in samples if s["measurand"] == "Power.Active.Import"]
        assert powers[:10] == [22_000.0] * 10
        assert powers[10:20] == [6900.0] * 10  # 10 A x 230 V x 3 phases
        assert powers[20:] == [22_000.0] * 10
        assert abs(record.exact_energy_wh - (22_000 + 6900 + 22_000) / 6) < 1e-6
        assert started.session is record


async def test_default_profile_schedule_and_composite(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("T")
        async with booted(server) as cp:
            start = cp.now()
            default = {
                "chargingProfileId": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": {
                    "startSchedule": v16.iso(start),
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 3000},
                        {"startPeriod": 1800, "limit": 0},
                        {"startPeriod": 2700, "limit": 7000},
                    ],
                },
            }
            assert await command(
                server, "SetChargingProfile", {"connectorId": 0, "csChargingProfiles": default}
            ) == {"status": "Accepted"}
            composite = await command(
                server, "GetCompositeSchedule", {"connectorId": 1, "duration": 7200}
            )
            assert [
                (p["startPeriod"], p["limit"])
                for p in composite["chargingSchedule"]["chargingSchedulePeriod"]
            ] == [
                (0, 3000.0),
                (1800, 0.0),
                (2700, 7000.0),
            ]
            await cp.plug_in(1, ev(soc=0.1), "T")
            await trio.sleep(2000)
            assert cp.connectors[1].reported_status == "SuspendedEVSE"
            await trio.sleep(1600)
            record = await cp.unplug(1)
        assert record is not None
        # 1800 s at 3 kW, 900 s at 0, 900 s at 7 kW: integrated across the period edges.
        assert abs(record.exact_energy_wh - (3000 * 1800 + 7000 * 900) / 3600) < 1e-6


async def test_configuration_store_answers(tmp_path: Path, autojump_clock: Clock) -> None:
    async with memory_csms(_settings(tmp_path)) as server, booted(server) as cp:
        got = await command(server, "GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey"]})
        assert got == {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}],
            "unknownKey": ["NoSuchKey"],
        }
        everything = await command(server, "GetConfiguration", {})
        keys = {k["key"]: k for k in everything["configurationKey"]}
        assert keys["NumberOfConnectors"] == {
            "key": "NumberOfConnectors",
            "readonly": True,
            "value": "1",
        }
        assert "SmartCharging" in keys["SupportedFeatureProfiles"]["value"]
        cases = [
            ("NumberOfConnectors", "4", "Rejected"),
            ("NoSuchKey", "1", "NotSupported"),
            ("MeterValueSampleInterval", "soon", "Rejected"),
            ("MeterValueSampleInterval", "-5", "Rejected"),
            ("LocalPreAuthorize", "maybe", "Rejected"),
            ("MeterValuesSampledData", "Energy.Active.Import.Register,Temperature", "Rejected"),
            ("WebSocketPingInterval", "30", "RebootRequired"),
            ("localpreauthorize", "TRUE", "Accepted"),
        ]
        for key, value, status in cases:
            reply = await command(server, "ChangeConfiguration", {"key": key, "value": value})
            assert reply == {"status": status}, key
        assert cp.config.get_bool("LocalPreAuthorize")


async def test_local_list_versions_and_offline_authorization(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        async with booted(server) as cp:
            accepted = {"status": "Accepted"}
            full = {
                "listVersion": 1,
                "updateType": "Full",
                "localAuthorizationList": [{"idTag": "A", "idTagInfo": accepted}],
            }
            assert await command(server, "SendLocalList", full) == {"status": "Accepted"}
            assert await command(server, "GetLocalListVersion", {}) == {"listVersion": 1}
            stale = {"listVersion": 1, "updateType": "Differential", "localAuthorizationList": []}
            assert await command(server, "SendLocalList", stale) == {"status": "VersionMismatch"}
            diff = {
                "listVersion": 2,
                "updateType": "Differential",
                "localAuthorizationList": [{"idTag": "B", "idTagInfo": accepted}, {"idTag": "A"}],
            }
            assert await command(server, "SendLocalList", diff) == {"status": "Accepted"}
            assert await command(server, "GetLocalListVersion", {}) == {"listVersion": 2}
            assert await command(server, "ClearCache", {}) == {"status": "Accepted"}

            cp.go_offline(600)
            await trio.sleep(1)
            refused = await cp.plug_in(1, ev(), "A")  # removed from the list: unknown offline
            started = await cp.plug_in(1, ev(), "B")
            assert (refused.status, started.outcome) == ("Offline", "Started")
            await trio.sleep(600)
            await cp.unplug(1)
            await cp.wait_delivered()

            assert await command(
                server, "ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "false"}
            ) == {"status": "Accepted"}
            assert await command(server, "SendLocalList", full) == {"status": "NotSupported"}
            assert await command(server, "GetLocalListVersion", {}) == {"listVersion": -1}
        assert started.session is not None and started.session.transaction_id is not None
        # The CSMS does not know B: it answers the late start Invalid, and the charger stops.
        assert started.session.start_status == "Invalid"


async def test_reservations(tmp_path: Path, autojump_clock: Clock) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("MINE")
        server.store.upsert_token("OTHER")
        async with booted(server, connectors=[ConnectorSpec(), ConnectorSpec()]) as cp:
            expiry = v16.iso(cp.now() + timedelta(minutes=30))
            reserve = {"connectorId": 1, "expiryDate": expiry, "idTag": "MINE", "reservationId": 11}
            assert await command(server, "ReserveNow", reserve) == {"status": "Accepted"}
            await trio.sleep(1)
            assert cp.connectors[1].reported_status == "Reserved"
            assert await command(server, "ReserveNow", {**reserve, "reservationId": 12}) == {
                "status": "Occupied"
            }
            assert await command(server, "ReserveNow", {**reserve, "connectorId": 0}) == {
                "status": "Rejected"
            }
            other = await cp.plug_in(1, ev(), "OTHER")
            assert (other.outcome, other.status) == ("Refused", "Reserved")
            mine = await cp.plug_in(1, ev(), "MINE")
            assert mine.outcome == "Started"

            short = {
                "connectorId": 2,
                "expiryDate": v16.iso(cp.now() + timedelta(minutes=5)),
                "idTag": "MINE",
                "reservationId": 21,
            }
            assert await command(server, "ReserveNow", short) == {"status": "Accepted"}
            await trio.sleep(301)
            assert cp.connectors[2].reported_status == "Available"
            assert await command(server, "CancelReservation", {"reservationId": 21}) == {
                "status": "Rejected"
            }
            assert await command(
                server, "ReserveNow", {**short, "expiryDate": expiry, "reservationId": 22}
            ) == {"status": "Accepted"}
            assert await command(server, "CancelReservation", {"reservationId": 22}) == {
                "status": "Accepted"
            }
            await cp.unplug(1)
            await cp.wait_delivered()
        assert mine.session is not None and mine.session.transaction_id is not None
        assert server.store.get_session(mine.session.transaction_id) is not None
        assert statuses(server.store, 2) == [
            "Available",
            "Reserved",
            "Available",
            "Reserved",
            "Available",
        ]
        rows = server.store.list_sessions(station_id="CP1")
        assert [r["id_tag"] for r in rows] == ["MINE"]


async def test_unlock_availability_trigger_and_the_rest(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("T")
        async with booted(server) as cp:
            assert await command(server, "UnlockConnector", {"connectorId": 0}) == {
                "status": "NotSupported"
            }
            started = await cp.plug_in(1, ev(), "T")
            await trio.sleep(120)
            assert await command(
                server, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}
            ) == {"status": "Scheduled"}
            assert await command(server, "UnlockConnector", {"connectorId": 1}) == {
                "status": "Unlocked"
            }
            await trio.sleep(1)
            await cp.unplug(1)
            await cp.wait_delivered()
            assert cp.connectors[1].reported_status == "Unavailable"
            refused = await cp.plug_in(1, ev(), "T")
            assert refused.status == "Unavailable"
            assert await command(
                server, "ChangeAvailability", {"connectorId": 0, "type": "Operative"}
            ) == {"status": "Accepted"}
            await trio.sleep(1)
            assert cp.connectors[1].reported_status == "Available"
            assert await command(server, "DataTransfer", {"vendorId": "x"}) == {
                "status": "UnknownVendorId"
            }
            for requested in (
                "BootNotification",
                "Heartbeat",
                "StatusNotification",
                "MeterValues",
                "DiagnosticsStatusNotification",
                "FirmwareStatusNotification",
            ):
                before = len(sent_calls(cp, requested))
                reply = await command(
                    server, "TriggerMessage", {"requestedMessage": requested, "connectorId": 1}
                )
                assert reply == {"status": "Accepted"}
                await trio.sleep(1)
                assert len(sent_calls(cp, requested)) == before + 1, requested
            bad = await command(
                server, "TriggerMessage", {"requestedMessage": "Heartbeat", "connectorId": 9}
            )
            assert bad == {"status": "Rejected"}
        assert started.session is not None and started.session.stop_reason == "UnlockCommand"
        assert len(received_calls(cp, "TriggerMessage")) == 7


# -- offline, lost replies, faults ------------------------------------------------------------


async def test_offline_messages_are_delivered_in_order_with_the_real_transaction_id(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("T")
        async with booted(server) as cp:
            await cp.plug_in(1, ev(), "T")  # online: the cache learns T
            await trio.sleep(60)
            await cp.unplug(1)
            await cp.wait_delivered()
            cp.go_offline(3600)
            await trio.sleep(5)
            assert not cp.online
            offline = await cp.plug_in(1, ev(), "T")  # the cache authorizes it
            assert offline.outcome == "Started"
            await trio.sleep(1800)
            await cp.unplug(1)
            queued = cp.queued_transaction_messages
            assert queued == 1 + 30 + 1  # start, 30 samples, stop
            mark = len(cp.messages)
            with trio.fail_after(3600):
                await cp.wait_delivered()
        record = offline.session
        assert record is not None and record.transaction_id is not None
        late = [m for m in cp.messages[mark:] if m.direction == "sent" and m.kind == "CALL"]
        tx_actions = [
            m.action
            for m in late
            if m.action in ("StartTransaction", "MeterValues", "StopTransaction")
        ]
        assert tx_actions == ["StartTransaction"] + ["MeterValues"] * 30 + ["StopTransaction"]
        row = server.store.get_session(record.transaction_id)
        assert row is not None and row["status"] == "Completed"
        assert row["energy_wh"] == record.energy_wh and row["needs_reconciliation"] == 0
        assert len(register_samples(server.store, record.transaction_id, "Sample.Periodic")) == 30
        assert server.store.events("CP1", "unmatched_meter_values") == []
        assert server.store.events("CP1", "unmatched_stop") == []
        assert server.store.count("transactions") == 2


async def test_a_lost_reply_is_retried_with_a_new_id_and_counted_once(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("T")
        async with booted(server, timing=Timing(call_timeout_s=20)) as cp:
            cp.drop_next_reply("StartTransaction")
            cp.drop_next_reply("StopTransaction")
            started = await cp.plug_in(1, ev(), "T")
            await trio.sleep(600)
            await cp.unplug(1)
            await cp.wait_delivered()
        starts, stops = sent_calls(cp, "StartTransaction"), sent_calls(cp, "StopTransaction")
        assert len(starts) == 2 and starts[0].message_id != starts[1].message_id
        assert len(stops) == 2 and stops[0].message_id != stops[1].message_id
        assert [m.note for m in cp.messages if m.note == "dropped"] == ["dropped", "dropped"]
        assert server.store.count("transactions") == 1
        assert server.store.events("CP1", "conflicting_stop") == []
        record = started.session
        assert record is not None and record.transaction_id is not None
        assert server.store.get_session(record.transaction_id)["energy_wh"] == record.energy_wh  # type: ignore[index]


async def test_fault_hooks(tmp_path: Path, autojump_clock: Clock) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        server.store.upsert_token("T")
        async with booted(server, timing=Timing(reconnect_delay_s=3)) as cp:
            for kind in ("json", "frame", "schema", "action"):
                cp.send_malformed_frame(kind)
            await trio.sleep(1)
            answers = [m for m in cp.messages if m.direction == "received" and m.note == "unknown"]
            assert len(answers) == 4 and cp.connections == 1  # CALLERRORs; the link stays up

            cp.skew_clock(3600)
            skewed = await cp.plug_in(1, ev(), "T")
            await trio.sleep(600)
            cp.meter_reset(1)
            await trio.sleep(600)
            await cp.unplug(1)
            await cp.wait_delivered()
            cp.skew_clock(0)

            cp.drop_connection()
            await trio.sleep(1)
            assert not cp.online
            await cp.wait_booted()
            assert (cp.connections, cp.boots) == (2, 2)

            await cp.plug_in(1, ev(), "T")
            cp.fault_connector(1, "GroundFailure")
            await trio.sleep(1)
            assert cp.connectors[1].reported_status == "Faulted"
            await cp.wait_delivered()
            cp.reboot()
            await trio.sleep(1)
            await cp.wait_booted()
            assert cp.reboots == 1
        record = skewed.session
        assert record is not None and record.transaction_id is not None
        row = server.store.get_session(record.transaction_id)
        assert row is not None
        assert v16.parse_time(row["started_at"]) - record.started_at == timedelta(0)
        assert record.started_at.hour == 9  # 08:00 plus the hour of skew
        assert record.meter_resets == 1 and record.meter_stop_wh is not None
        assert record.energy_wh is not None
        assert 0 <= record.exact_energy_wh - record.energy_wh < 2  # two floored segments
        assert "register_reset" in str(row["anomalies"])
        assert row["energy_wh"] == record.energy_wh  # the CSMS carried it across the reset
        faulted = cp.sessions[-1]
        assert faulted.stop_reason == "Other"
        faults = [orjson.loads(e["data"]) for e in server.store.events("CP1", "fault")]
        assert [f["error_code"] for f in faults] == ["GroundFailure"]


# -- wire mode and file transfers ---------------------------------------------------------------


async def test_wire_mode_diagnostics_and_firmware_over_http(csms: Csms, settings: Settings) -> None:
    files = HttpFileServer(files={"/fw/fw-2.0.1.bin": b"\x7fELF firmware"})
    timing = Timing(firmware_install_s=0.01, reboot_delay_s=0.01, reconnect_delay_s=0.01)
    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"
    cp = VirtualChargePoint(
        "CP-W", url_connector(url, "CP-W"), timing=timing, rng=np.random.default_rng(3)
    )
    store = SqliteStore(sqlite_path(settings.database_url))

    async def send(action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await csms.registry.send_command("CP-W", action, payload)

    def status_events(kind: str) -> list[str]:
        return [orjson.loads(e["data"])["status"] for e in store.events("CP-W", kind)]

    try:
        async with http_file_server(files), running(cp):
            with trio.fail_after(10):
                await cp.wait_booted()
                reply = await send("GetDiagnostics", {"location": files.url("/upload/")})
                await wait_until(lambda: len(status_events("diagnostics_status")) == 2)
                failed = await send("GetDiagnostics", {"location": "http://127.0.0.1:1/x"})
                await wait_until(lambda: len(status_events("diagnostics_status")) == 4)
                now = v16.iso(cp.now())
                await send(
                    "UpdateFirmware",
                    {"location": files.url("/fw/missing.bin"), "retrieveDate": now},
                )
                await wait_until(lambda: len(status_events("firmware_status")) == 2)
                await send(
                    "UpdateFirmware",
                    {"location": files.url("/fw/fw-2.0.1.bin"), "retrieveDate": now},
                )
                await cp.wait_for(lambda: cp.reboots == 1 and cp.online)
        assert reply["fileName"].startswith("CP-W-") and "fileName" in failed
        assert status_events("diagnostics_status") == [
            "Uploading",
            "Uploaded",
            "Uploading",
            "UploadFailed",
        ]
        method, target, body = files.requests[0]
        assert (method, target) == ("PUT", f"/upload/{reply['fileName']}")
        assert b"BootNotification" in body
        assert status_events("firmware_status") == [
            "Downloading",
            "DownloadFailed",
            "Downloading",
            "Downloaded",
            "Installing",
            "Installed",
        ]
        assert cp.firmware_version == "fw-2.0.1"
        assert store.get_station("CP-W")["firmware_version"] == "fw-2.0.1"  # type: ignore[index]
    finally:
        store.close()
