"""CSMS-initiated calls to 2.x stations through the registry (what the operator API uses),
CostUpdated pushed from the ledger's rating, and the reports and notifications a 2.0.1
station sends: the device model, events, statuses of logs and firmware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio
from runtime_harness import MemoryCsms, memory_csms
from support.settings import make_settings
from v201_harness import reading, session_events, station_2x, token, ts, tx_event

from csms.config import Settings
from csms.domain.tariffs import parse_tariff
from csms.protocol.errors import NotImplementedCall, OccurenceConstraintViolation
from csms.runtime.registry import CommandRejected
from csms.storage.sqlite_ledger import SqliteLedgerTx


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[MemoryCsms]:
    settings: Settings = make_settings(tmp_path)
    async with memory_csms(settings) as running:
        running.store.upsert_token("TAG-1")
        yield running


HEARTBEAT_VARIABLE = {
    "component": {"name": "OCPPCommCtrlr"},
    "variable": {"name": "HeartbeatInterval"},
}
SCHEDULE_PERIODS = [{"startPeriod": 0, "limit": 7400.0}]

#: Every CSMS-initiated call of the issue: (action, request, the station's answer).
COMMANDS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "RequestStartTransaction",
        {"idToken": token("TAG-1", "Central"), "remoteStartId": 1, "evseId": 1},
        {"status": "Accepted", "transactionId": "TX-9"},
    ),
    ("RequestStopTransaction", {"transactionId": "TX-9"}, {"status": "Accepted"}),
    ("Reset", {"type": "OnIdle"}, {"status": "Scheduled"}),
    ("UnlockConnector", {"evseId": 1, "connectorId": 1}, {"status": "Unlocked"}),
    (
        "TriggerMessage",
        {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}},
        {"status": "Accepted"},
    ),
    (
        "ChangeAvailability",
        {"operationalStatus": "Inoperative", "evse": {"id": 1}},
        {"status": "Scheduled"},
    ),
    ("ClearCache", {}, {"status": "Accepted"}),
    (
        "GetVariables",
        {"getVariableData": [HEARTBEAT_VARIABLE]},
        {
            "getVariableResult": [
                {"attributeStatus": "Accepted", "attributeValue": "300", **HEARTBEAT_VARIABLE}
            ]
        },
    ),
    (
        "SetVariables",
        {"setVariableData": [{"attributeValue": "60", **HEARTBEAT_VARIABLE}]},
        {"setVariableResult": [{"attributeStatus": "Accepted", **HEARTBEAT_VARIABLE}]},
    ),
    ("GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"}, {"status": "Accepted"}),
    ("GetReport", {"requestId": 8, "componentCriteria": ["Active"]}, {"status": "Accepted"}),
    (
        "GetLog",
        {
            "log": {"remoteLocation": "https://logs.example/upload"},
            "logType": "DiagnosticsLog",
            "requestId": 9,
        },
        {"status": "Accepted", "filename": "diagnostics.log"},
    ),
    (
        "UpdateFirmware",
        {
            "requestId": 10,
            "firmware": {"location": "https://fw.example/fw-2.bin", "retrieveDateTime": ts()},
        },
        {"status": "Accepted"},
    ),
    (
        "SetChargingProfile",
        {
            "evseId": 1,
            "chargingProfile": {
                "id": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": [
                    {
                        "id": 1,
                        "startSchedule": ts(),
                        "chargingRateUnit": "W",
                        "chargingSchedulePeriod": SCHEDULE_PERIODS,
                    }
                ],
            },
        },
        {"status": "Accepted"},
    ),
    ("ClearChargingProfile", {"chargingProfileId": 1}, {"status": "Accepted"}),
    (
        "GetCompositeSchedule",
        {"duration": 3600, "evseId": 1, "chargingRateUnit": "W"},
        {
            "status": "Accepted",
            "schedule": {
                "evseId": 1,
                "duration": 3600,
                "scheduleStart": ts(),
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": SCHEDULE_PERIODS,
            },
        },
    ),
    (
        "SendLocalList",
        {
            "versionNumber": 2,
            "updateType": "Full",
            "localAuthorizationList": [
                {"idToken": token("TAG-1"), "idTokenInfo": {"status": "Accepted"}}
            ],
        },
        {"status": "Accepted"},
    ),
    ("GetLocalListVersion", {}, {"versionNumber": 2}),
    (
        "ReserveNow",
        {"id": 5, "expiryDateTime": ts(60), "idToken": token("TAG-1"), "evseId": 1},
        {"status": "Accepted"},
    ),
    ("CancelReservation", {"reservationId": 5}, {"status": "Accepted"}),
    (
        "GetTransactionStatus",
        {"transactionId": "TX-9"},
        {"ongoingIndicator": True, "messagesInQueue": False},
    ),
    ("CostUpdated", {"totalCost": 1.25, "transactionId": "TX-9"}, {}),
    (
        "DataTransfer",
        {"vendorId": "com.example", "messageId": "hello", "data": {"a": 1}},
        {"status": "Accepted", "data": "ok"},
    ),
]


@pytest.mark.parametrize("version", ["ocpp2.0.1", "ocpp2.1"])
async def test_every_command_reaches_a_2x_station(server: MemoryCsms, version: str) -> None:
    answers = {action: answer for action, _, answer in COMMANDS}
    async with station_2x(server, "CP-CMD", version=version, answers=answers) as station:
        await station.boot()
        connection = server.registry.get("CP-CMD")
        assert connection is not None and connection.version == version
        for action, request, answer in COMMANDS:
            with trio.fail_after(5):
                result = await server.registry.send_command("CP-CMD", action, request)
            assert result == answer, action
        assert station.received_calls == [(action, request) for action, request, _ in COMMANDS]


async def test_a_command_of_another_version_or_shape_is_refused_unsent(
    server: MemoryCsms,
) -> None:
    async with station_2x(server, "CP-BADCMD") as station:
        await station.boot()
        with pytest.raises(NotImplementedCall):
            await server.registry.send_command("CP-BADCMD", "RemoteStartTransaction", {})
        with pytest.raises(OccurenceConstraintViolation) as missing:
            await server.registry.send_command("CP-BADCMD", "RequestStopTransaction", {})
        assert missing.value.code_for("ocpp2.0.1") == "OccurrenceConstraintViolation"
        assert station.received_calls == []


async def test_running_cost_is_pushed_with_cost_updated(server: MemoryCsms) -> None:
    tariff = parse_tariff(
        {
            "country_code": "DE",
            "party_id": "CSM",
            "id": "T-201",
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 0.5, "step_size": 1}]}],
            "last_updated": "2026-01-01T00:00:00Z",
        }
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    server.store.add_tariff(tariff, now, now, default=True)
    started, updated, ended = session_events("TX-COST", "TAG-1", 0, 4_000)
    later = tx_event("Updated", 2, "TX-COST", "MeterValuePeriodic", 20, meter=[reading(20, 3_000)])
    ended["seqNo"] = 3
    async with station_2x(server, "CP-COST", answers={"CostUpdated": {}}) as station:
        await station.boot()
        await station.call("TransactionEvent", started)
        await station.call("TransactionEvent", updated)  # 2,000 Wh at 15 min: 1.00 EUR
        with trio.fail_after(5):
            while not station.received_calls:
                await trio.sleep(0.01)
        # Within the push interval: no second CostUpdated.
        await station.call("TransactionEvent", later)
        final = await station.call("TransactionEvent", ended)
        await trio.sleep(0.1)
    assert station.received_calls == [
        ("CostUpdated", {"totalCost": 1.0, "transactionId": "TX-COST"})
    ]
    assert final[2] == {"totalCost": 2.0}


async def test_notify_report_assembles_the_device_model(server: MemoryCsms) -> None:
    def report_data(name: str, variable: str, value: str, **extra: Any) -> dict[str, Any]:
        return {
            "component": {"name": name, **extra},
            "variable": {"name": variable},
            "variableAttribute": [{"type": "Actual", "value": value, "mutability": "ReadWrite"}],
            "variableCharacteristics": {"dataType": "integer", "supportsMonitoring": False},
        }

    parts = [
        {
            "requestId": 7,
            "generatedAt": ts(),
            "seqNo": 0,
            "tbc": True,
            "reportData": [report_data("OCPPCommCtrlr", "HeartbeatInterval", "300")],
        },
        {
            "requestId": 7,
            "generatedAt": ts(),
            "seqNo": 1,
            "reportData": [
                report_data("EVSE", "Power", "22000", evse={"id": 1}),
                report_data("Connector", "Available", "1", evse={"id": 1, "connectorId": 1}),
            ],
        },
        # A later report changes one value.
        {
            "requestId": 8,
            "generatedAt": ts(5),
            "seqNo": 0,
            "reportData": [report_data("OCPPCommCtrlr", "HeartbeatInterval", "60")],
        },
    ]
    async with station_2x(server, "CP-DM") as station:
        await station.boot()
        answers = [await station.call("NotifyReport", part) for part in parts]
    assert [a[2] for a in answers] == [{}, {}, {}]
    model = SqliteLedgerTx(server.store._db).device_model("CP-DM")
    assert [
        (m["component"], m["evse_id"], m["connector_id"], m["variable"], m["value"], m["report_id"])
        for m in model
    ] == [
        ("Connector", 1, 1, "Available", "1", 7),
        ("EVSE", 1, 0, "Power", "22000", 7),
        ("OCPPCommCtrlr", 0, 0, "HeartbeatInterval", "60", 8),
    ]
    assert len(server.store.events("CP-DM", "device_model_report")) == 3


async def test_notifications_are_recorded(server: MemoryCsms) -> None:
    calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        (
            "NotifyEvent",
            {
                "generatedAt": ts(),
                "seqNo": 0,
                "eventData": [
                    {
                        "eventId": 1,
                        "timestamp": ts(),
                        "trigger": "Delta",
                        "actualValue": "Faulted",
                        "eventNotificationType": "HardWiredNotification",
                        "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
                        "variable": {"name": "AvailabilityState"},
                    }
                ],
            },
            {},
        ),
        (
            "SecurityEventNotification",
            {"type": "FirmwareUpdated", "timestamp": ts(), "techInfo": "v2"},
            {},
        ),
        ("LogStatusNotification", {"status": "Uploaded", "requestId": 9}, {}),
        ("FirmwareStatusNotification", {"status": "Installed", "requestId": 10}, {}),
        (
            "NotifyChargingLimit",
            {"chargingLimit": {"chargingLimitSource": "EMS"}, "evseId": 1},
            {},
        ),
        (
            "ReportChargingProfiles",
            {
                "requestId": 3,
                "chargingLimitSource": "CSO",
                "evseId": 1,
                "chargingProfile": [
                    {
                        "id": 1,
                        "stackLevel": 0,
                        "chargingProfilePurpose": "TxDefaultProfile",
                        "chargingProfileKind": "Relative",
                        "chargingSchedule": [
                            {
                                "id": 1,
                                "chargingRateUnit": "A",
                                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
                            }
                        ],
                    }
                ],
            },
            {},
        ),
        (
            "NotifyEVChargingNeeds",
            {
                "evseId": 1,
                "chargingNeeds": {
                    "requestedEnergyTransfer": "AC_three_phase",
                    "acChargingParameters": {
                        "energyAmount": 20_000,
                        "evMinCurrent": 6,
                        "evMaxCurrent": 32,
                        "evMaxVoltage": 400,
                    },
                },
            },
            {"status": "Rejected"},
        ),
        (
            "DataTransfer",
            {"vendorId": "com.example", "data": {"any": ["json"]}},
            {"status": "UnknownVendorId"},
        ),
    ]
    async with station_2x(server, "CP-NOTE") as station:
        await station.boot()
        for action, payload, answer in calls:
            result = await station.call(action, payload)
            assert result[0] == 3, (action, result)
            assert result[2] == answer, action
    kinds = [e["kind"] for e in server.store.events("CP-NOTE")]
    for kind in (
        "station_event",
        "security_event",
        "diagnostics_status",
        "firmware_status",
        "charging_limit",
        "charging_profiles",
        "ev_charging_needs",
        "data_transfer",
    ):
        assert kind in kinds
    station_row = server.store.get_station("CP-NOTE")
    assert station_row is not None
    assert (station_row["diagnostics_status"], station_row["firmware_status"]) == (
        "Uploaded",
        "Installed",
    )


async def test_certificate_requests_are_not_supported(server: MemoryCsms) -> None:
    async with station_2x(server, "CP-CERT") as station:
        await station.boot()
        answer = await station.call("SignCertificate", {"csr": "-----BEGIN CSR-----"})
    assert answer[2] == "NotSupported"


async def test_a_command_that_is_rejected_reports_its_error(server: MemoryCsms) -> None:
    async with station_2x(server, "CP-REJ") as station:
        await station.boot()
        station.answers["ClearCache"] = {"status": "Rejected"}
        assert await server.registry.send_command("CP-REJ", "ClearCache", {}) == {
            "status": "Rejected"
        }
    with pytest.raises(Exception) as offline:
        await server.registry.send_command("CP-REJ", "ClearCache", {})
    assert not isinstance(offline.value, CommandRejected)
