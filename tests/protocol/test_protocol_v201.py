"""The 2.0.1 and 2.1 adapters, sans-I/O: payloads to domain events, replies to payloads that
the response schemas accept, and schema mutants of every action a 2.0.1 station sends, each
answered with the right 2.0.1 error code."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from csms.domain.events import (
    AuthorizeRequested,
    BootReported,
    DataTransferReceived,
    DeviceModelReported,
    DiagnosticsStatusReported,
    FirmwareStatusReported,
    HeartbeatReceived,
    MeterValuesReported,
    NotificationReported,
    StatusReported,
    TransactionEventReported,
)
from csms.domain.replies import (
    Ack,
    AuthorizationStatus,
    AuthorizeDecision,
    BootDecision,
    DataTransferDecision,
    HeartbeatAck,
    IdTagInfo,
    NotificationAck,
    RegistrationStatus,
    StartDecision,
    TransactionEventDecision,
)
from csms.protocol import schemas, v21, v201
from csms.protocol.errors import (
    NotImplementedCall,
    PropertyConstraintViolation,
    error_from_code,
)
from csms.protocol.frames import encode_call, encode_result
from csms.protocol.session import CallAnswered, CallReceived, FrameRejected, OcppSession

NOW = datetime(2026, 3, 2, 9, 0, 7, tzinfo=UTC)
TS = "2026-03-02T09:00:00.000Z"
TOKEN = {"idToken": "TAG-1", "type": "ISO14443"}
METER = [
    {
        "timestamp": TS,
        "sampledValue": [
            {"value": 12.5, "unitOfMeasure": {"unit": "kWh"}, "context": "Transaction.Begin"}
        ],
    }
]
SCHEDULE = {
    "id": 1,
    "chargingRateUnit": "A",
    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
}

#: A valid request of every action a 2.0.1 station sends that the CSMS handles.
EXAMPLES: dict[str, dict[str, Any]] = {
    "BootNotification": {
        "chargingStation": {"model": "M", "vendorName": "V", "modem": {"iccid": "89"}},
        "reason": "PowerUp",
    },
    "Heartbeat": {},
    "StatusNotification": {
        "timestamp": TS,
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 1,
    },
    "Authorize": {"idToken": TOKEN},
    "TransactionEvent": {
        "eventType": "Started",
        "timestamp": TS,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "TX-1", "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1},
        "idToken": TOKEN,
        "meterValue": METER,
    },
    "MeterValues": {"evseId": 1, "meterValue": METER},
    "NotifyReport": {
        "requestId": 1,
        "generatedAt": TS,
        "seqNo": 0,
        "reportData": [
            {
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "Power"},
                "variableAttribute": [{"value": "22000"}],
            }
        ],
    },
    "LogStatusNotification": {"status": "Uploading", "requestId": 2},
    "FirmwareStatusNotification": {"status": "Downloading", "requestId": 3},
    "DataTransfer": {"vendorId": "com.example", "messageId": "m", "data": "text"},
    "NotifyEvent": {
        "generatedAt": TS,
        "seqNo": 0,
        "eventData": [
            {
                "eventId": 1,
                "timestamp": TS,
                "trigger": "Alerting",
                "actualValue": "true",
                "eventNotificationType": "PreconfiguredMonitor",
                "component": {"name": "Controller"},
                "variable": {"name": "Problem"},
            }
        ],
    },
    "SecurityEventNotification": {"type": "StartupOfTheDevice", "timestamp": TS},
    "NotifyChargingLimit": {"chargingLimit": {"chargingLimitSource": "SO"}},
    "ClearedChargingLimit": {"chargingLimitSource": "SO", "evseId": 1},
    "ReportChargingProfiles": {
        "requestId": 4,
        "chargingLimitSource": "CSO",
        "evseId": 1,
        "chargingProfile": [
            {
                "id": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": [SCHEDULE],
            }
        ],
    },
    "NotifyEVChargingNeeds": {
        "evseId": 1,
        "chargingNeeds": {"requestedEnergyTransfer": "DC"},
    },
    "NotifyEVChargingSchedule": {"timeBase": TS, "evseId": 1, "chargingSchedule": SCHEDULE},
    "NotifyMonitoringReport": {"requestId": 5, "seqNo": 0, "generatedAt": TS},
    "NotifyCustomerInformation": {
        "data": "none",
        "seqNo": 0,
        "generatedAt": TS,
        "requestId": 6,
    },
    "NotifyDisplayMessages": {"requestId": 7},
    "PublishFirmwareStatusNotification": {"status": "Published", "location": ["https://x"]},
    "ReservationStatusUpdate": {"reservationId": 8, "reservationUpdateStatus": "Expired"},
}


def _schema(action: str) -> dict[str, Any]:
    name = schemas._schema_files("ocpp2.0.1")[(action, False)]
    schema: dict[str, Any] = orjson.loads(
        schemas._schema_dir("ocpp2.0.1").joinpath(name).read_bytes()
    )
    return schema


def _mutants() -> list[tuple[str, str, dict[str, Any], str]]:
    """(action, what was broken, payload, expected 2.0.1 code) for every action."""
    found: list[tuple[str, str, dict[str, Any], str]] = []
    for action, example in sorted(EXAMPLES.items()):
        schema = _schema(action)
        definitions = schema.get("definitions", {})
        found.append((action, "extra field", {**example, "bogus": 1}, "FormatViolation"))
        for field in schema.get("required", []):
            broken = {k: v for k, v in example.items() if k != field}
            found.append((action, f"no {field}", broken, "OccurrenceConstraintViolation"))
        for field, value in example.items():
            spec = schema["properties"][field]
            referenced = definitions.get(spec.get("$ref", "").split("/")[-1], {})
            if "type" not in spec and "$ref" not in spec:
                continue  # any JSON value will do (DataTransfer's data)
            wrong = 12345 if isinstance(value, str) else "twelve"
            found.append(
                (
                    action,
                    f"{field} of wrong type",
                    {**example, field: wrong},
                    "TypeConstraintViolation",
                )
            )
            if "enum" in referenced:
                found.append(
                    (
                        action,
                        f"{field} not in its enum",
                        {**example, field: "NoSuchValue"},
                        "PropertyConstraintViolation",
                    )
                )
            if spec.get("format") == "date-time":
                found.append(
                    (
                        action,
                        f"{field} not a date-time",
                        {**example, field: "yesterday"},
                        "PropertyConstraintViolation",
                    )
                )
    return found


MUTANTS = _mutants()


def test_every_handled_action_has_an_example() -> None:
    assert set(EXAMPLES) == v201.CHARGER_ACTIONS


@pytest.mark.parametrize("action", sorted(EXAMPLES))
def test_examples_are_valid_and_become_events(action: str) -> None:
    session = OcppSession("ocpp2.0.1", v201.CHARGER_ACTIONS)
    event = session.receive(encode_call("m1", action, EXAMPLES[action]), 0.0)
    assert isinstance(event, CallReceived)
    assert v201.to_event("CP", action, EXAMPLES[action], NOW).station_id == "CP"


@pytest.mark.parametrize(
    ("action", "broken", "payload", "code"),
    MUTANTS,
    ids=[f"{action}:{broken}" for action, broken, _, _ in MUTANTS],
)
def test_schema_mutants_get_the_right_201_code(
    action: str, broken: str, payload: dict[str, Any], code: str
) -> None:
    session = OcppSession("ocpp2.0.1", v201.CHARGER_ACTIONS)
    event = session.receive(encode_call("m1", action, payload), 0.0)
    assert isinstance(event, FrameRejected), broken
    assert event.reply is not None
    reply = orjson.loads(event.reply)
    assert reply[:3] == [4, "m1", code], broken
    # Refused before anything was taken in: the next CALL is served.
    assert session.inbound is None


def test_mutants_cover_every_action_and_code() -> None:
    assert {action for action, *_ in MUTANTS} == v201.CHARGER_ACTIONS
    assert {code for *_, code in MUTANTS} == {
        "FormatViolation",
        "OccurrenceConstraintViolation",
        "TypeConstraintViolation",
        "PropertyConstraintViolation",
    }


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "RpcFrameworkError"),
        ('{"not": "an array"}', "RpcFrameworkError"),
        ('[2, 17, "Heartbeat", {}]', "RpcFrameworkError"),
        ('[7, "m1", "Heartbeat", {}]', "MessageTypeNotSupported"),
        ('[2, "m1", "Heartbeat", []]', "FormatViolation"),
        ('[2, "m1", "NoSuchAction", {}]', "NotImplemented"),
        ('[2, "m1", "Reset", {"type": "Immediate"}]', "NotSupported"),
    ],
)
def test_frame_errors_in_201_spelling(text: str, code: str) -> None:
    event = OcppSession("ocpp2.0.1", v201.CHARGER_ACTIONS).receive(text, 0.0)
    assert isinstance(event, FrameRejected)
    assert event.reply is not None
    assert orjson.loads(event.reply)[2] == code


# -- payloads to events --------------------------------------------------------------------


def test_boot_and_status_map_to_the_16_events() -> None:
    boot = v201.to_event("CP", "BootNotification", EXAMPLES["BootNotification"], NOW)
    assert boot == BootReported(
        "CP", "V", "M", None, None, None, "89", None, None, None, NOW, reason="PowerUp"
    )
    status = v201.to_event("CP", "StatusNotification", EXAMPLES["StatusNotification"], NOW)
    assert isinstance(status, StatusReported)
    assert (status.connector_id, status.status, status.error_code) == (1, "Available", "NoError")
    assert v201.to_event("CP", "Heartbeat", {}, NOW) == HeartbeatReceived("CP", NOW)
    log_status = v201.to_event("CP", "LogStatusNotification", {"status": "Uploaded"}, NOW)
    assert log_status == DiagnosticsStatusReported("CP", "Uploaded", NOW)
    firmware = v201.to_event("CP", "FirmwareStatusNotification", {"status": "Installed"}, NOW)
    assert firmware == FirmwareStatusReported("CP", "Installed", NOW)


def test_authorize_keeps_the_token_type() -> None:
    event = v201.to_event(
        "CP", "Authorize", {"idToken": {"idToken": "", "type": "NoAuthorization"}}, NOW
    )
    assert event == AuthorizeRequested("CP", "", NOW, token_type="NoAuthorization")


def test_transaction_event_maps_every_field() -> None:
    payload = copy.deepcopy(EXAMPLES["TransactionEvent"])
    payload.update(offline=True, reservationId=9)
    payload["transactionInfo"].update(remoteStartId=4, stoppedReason="Remote")
    event = v201.to_event("CP", "TransactionEvent", payload, NOW)
    assert isinstance(event, TransactionEventReported)
    assert (
        event.station_tx_id,
        event.event_type,
        event.seq_no,
        event.trigger_reason,
        event.offline,
        event.evse_id,
        event.connector_id,
        event.id_tag,
        event.token_type,
        event.charging_state,
        event.stopped_reason,
        event.remote_start_id,
        event.reservation_id,
    ) == (
        "TX-1",
        "Started",
        0,
        "Authorized",
        True,
        1,
        1,
        "TAG-1",
        "ISO14443",
        "Charging",
        "Remote",
        4,
        9,
    )
    (sample,) = event.samples
    assert (sample.value, sample.unit, sample.wh, sample.context) == (
        "12.5",
        "kWh",
        12_500.0,
        "Transaction.Begin",
    )


def test_sampled_values_defaults_and_multiplier() -> None:
    (plain, scaled, power) = v201.samples(
        [
            {
                "timestamp": TS,
                "sampledValue": [
                    {"value": 1234},
                    {"value": 5.5, "unitOfMeasure": {"unit": "Wh", "multiplier": 3}},
                    {"value": 11, "measurand": "Power.Active.Import", "phase": "L1"},
                ],
            }
        ]
    )
    assert (plain.measurand, plain.value, plain.wh, plain.context) == (
        "Energy.Active.Import.Register",
        "1234",
        1234.0,
        "Sample.Periodic",
    )
    assert (scaled.value, scaled.numeric, scaled.wh) == ("5500.0", 5500.0, 5500.0)
    assert (power.wh, power.phase) == (None, "L1")


def test_meter_values_and_notifications() -> None:
    meter = v201.to_event("CP", "MeterValues", EXAMPLES["MeterValues"], NOW)
    assert isinstance(meter, MeterValuesReported)
    assert (meter.connector_id, meter.transaction_id) == (1, None)
    report = v201.to_event("CP", "NotifyReport", EXAMPLES["NotifyReport"], NOW)
    assert isinstance(report, DeviceModelReported)
    (variable,) = report.variables
    assert (variable.component, variable.evse_id, variable.variable, variable.value) == (
        "EVSE",
        1,
        "Power",
        "22000",
    )
    assert variable.attribute_type == "Actual"
    note = v201.to_event("CP", "NotifyEvent", EXAMPLES["NotifyEvent"], NOW)
    assert isinstance(note, NotificationReported)
    assert note.kind == "station_event"
    data = v201.to_event("CP", "DataTransfer", {"vendorId": "v", "data": {"a": [1]}}, NOW)
    assert data == DataTransferReceived("CP", "v", None, '{"a":[1]}', NOW)


def test_numbers_beyond_the_ledgers_range_are_refused() -> None:
    payload = {**EXAMPLES["TransactionEvent"], "seqNo": 2**63}
    with pytest.raises(PropertyConstraintViolation):
        v201.to_event("CP", "TransactionEvent", payload, NOW)


# -- replies to payloads -------------------------------------------------------------------

INFO = IdTagInfo(AuthorizationStatus.ACCEPTED, datetime(2027, 1, 1, tzinfo=UTC), "FLEET")
REPLIES: list[tuple[str, Any, dict[str, Any]]] = [
    (
        "BootNotification",
        BootDecision(RegistrationStatus.PENDING, 60, NOW),
        {"status": "Pending", "currentTime": "2026-03-02T09:00:07.000Z", "interval": 60},
    ),
    ("Heartbeat", HeartbeatAck(NOW), {"currentTime": "2026-03-02T09:00:07.000Z"}),
    (
        "Authorize",
        AuthorizeDecision(INFO),
        {
            "idTokenInfo": {
                "status": "Accepted",
                "cacheExpiryDateTime": "2027-01-01T00:00:00.000Z",
                "groupIdToken": {"idToken": "FLEET", "type": "Central"},
            }
        },
    ),
    (
        "TransactionEvent",
        TransactionEventDecision(1, "TX-1", IdTagInfo(AuthorizationStatus.INVALID)),
        {"idTokenInfo": {"status": "Invalid"}},
    ),
    (
        "TransactionEvent",
        TransactionEventDecision(1, "TX-1", None, total_cost=Decimal("12.34")),
        {"totalCost": 12.34},
    ),
    ("StatusNotification", Ack(), {}),
    ("NotifyEVChargingNeeds", NotificationAck("Rejected"), {"status": "Rejected"}),
    ("DataTransfer", DataTransferDecision("UnknownVendorId"), {"status": "UnknownVendorId"}),
]


@pytest.mark.parametrize("version", ["ocpp2.0.1", "ocpp2.1"])
@pytest.mark.parametrize(("action", "reply", "payload"), REPLIES)
def test_replies_become_valid_responses(
    version: str, action: str, reply: Any, payload: dict[str, Any]
) -> None:
    assert v201.to_payload(reply) == payload
    schemas.validate_response(version, action, payload)


def test_a_16_reply_has_no_201_payload() -> None:
    with pytest.raises(TypeError):
        v201.to_payload(StartDecision(1, INFO))


def test_cost_updated_follows_a_running_cost() -> None:
    reply = TransactionEventDecision(3, "TX-3", None, running_cost=Decimal("1.5"))
    ((action, payload),) = v201.commands_after(reply)
    assert (action, payload) == ("CostUpdated", {"totalCost": 1.5, "transactionId": "TX-3"})
    schemas.validate_request("ocpp2.0.1", action, payload)
    assert v201.commands_after(TransactionEventDecision(3, "TX-3")) == []
    assert v201.commands_after(Ack()) == []


# -- 2.1 -----------------------------------------------------------------------------------


def test_21_core_goes_through_the_201_mapping() -> None:
    event = v21.to_event("CP", "TransactionEvent", EXAMPLES["TransactionEvent"], NOW)
    assert event == v201.to_event("CP", "TransactionEvent", EXAMPLES["TransactionEvent"], NOW)
    assert v21.CORE_ACTIONS <= v21.CHARGER_ACTIONS
    with pytest.raises(NotImplementedCall):
        v21.to_event("CP", "NotifyReport", EXAMPLES["NotifyReport"], NOW)


# -- two cores back to back ----------------------------------------------------------------


def test_a_201_station_and_the_csms_back_to_back() -> None:
    csms = OcppSession("ocpp2.0.1", v201.CHARGER_ACTIONS)
    station = OcppSession("ocpp2.0.1", v201.CSMS_ACTIONS)
    pending, text = station.send_call("TransactionEvent", EXAMPLES["TransactionEvent"], 0.0)
    received = csms.receive(text, 0.0)
    assert isinstance(received, CallReceived)
    decision = TransactionEventDecision(1, "TX-1", IdTagInfo(AuthorizationStatus.ACCEPTED))
    answer = csms.reply_result(received.call.message_id, v201.to_payload(decision))
    answered = station.receive(answer, 1.0)
    assert isinstance(answered, CallAnswered)
    assert answered.payload == {"idTokenInfo": {"status": "Accepted"}}
    # And a CSMS-initiated call the other way round.
    _, stop = csms.send_call("RequestStopTransaction", {"transactionId": "TX-1"}, 2.0)
    call = station.receive(stop, 2.0)
    assert isinstance(call, CallReceived)
    back = station.reply_result(call.call.message_id, {"status": "Accepted"})
    assert back == encode_result(call.call.message_id, {"status": "Accepted"})
    assert isinstance(csms.receive(back, 3.0), CallAnswered)
    assert pending.action == "TransactionEvent"


@pytest.mark.parametrize(
    ("code", "version", "spelled"),
    [
        ("RpcFrameworkError", "ocpp2.0.1", "RpcFrameworkError"),
        ("RpcFrameworkError", "ocpp1.6", "FormationViolation"),
        ("MessageTypeNotSupported", "ocpp2.1", "MessageTypeNotSupported"),
        ("MessageTypeNotSupported", "ocpp1.6", "ProtocolError"),
        ("FormatViolation", "ocpp2.0.1", "FormatViolation"),
        ("OccurrenceConstraintViolation", "ocpp2.1", "OccurrenceConstraintViolation"),
    ],
)
def test_a_peers_2x_error_code_round_trips(code: str, version: str, spelled: str) -> None:
    rebuilt = error_from_code(code, "why", {})
    assert type(rebuilt).code_for(version) == spelled
