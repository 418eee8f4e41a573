"""The 1.6 adapter: charger payloads to domain events, ledger replies to 1.6 payloads."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from csms.domain.events import (
    AuthorizeRequested,
    BootReported,
    DataTransferReceived,
    DiagnosticsStatusReported,
    FirmwareStatusReported,
    HeartbeatReceived,
    MeterSample,
    MeterValuesReported,
    StatusReported,
    TransactionStarted,
    TransactionStopped,
)
from csms.domain.replies import (
    Ack,
    AuthorizationStatus,
    AuthorizeDecision,
    BootDecision,
    ConnectionAck,
    DataTransferDecision,
    HeartbeatAck,
    IdTagInfo,
    RegistrationStatus,
    StartDecision,
    StopDecision,
)
from csms.protocol import schemas, v16
from csms.protocol.adapters import ADAPTERS, negotiate
from csms.protocol.errors import PropertyConstraintViolation

NOW = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
T = "2026-01-05T08:00:00Z"
T_DT = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)


def event_for(action: str, payload: dict[str, Any]) -> Any:
    schemas.validate_request(v16.VERSION, action, payload)  # only schema-valid input
    return v16.to_event("CP1", action, payload, NOW)


def meter_payload(*sampled: dict[str, Any], timestamp: str = T) -> dict[str, Any]:
    return {
        "connectorId": 2,
        "transactionId": 7,
        "meterValue": [{"timestamp": timestamp, "sampledValue": list(sampled)}],
    }


def one_sample(sampled: dict[str, Any]) -> MeterSample:
    event = event_for("MeterValues", meter_payload(sampled))
    assert isinstance(event, MeterValuesReported)
    (sample,) = event.samples
    return sample


# -- to_event ----------------------------------------------------------------------------------


def test_boot_notification_with_every_field() -> None:
    payload = {
        "chargePointVendor": "Vendor",
        "chargePointModel": "Model",
        "chargePointSerialNumber": "S1",
        "chargeBoxSerialNumber": "B1",
        "firmwareVersion": "1.2.3",
        "iccid": "IC",
        "imsi": "IM",
        "meterType": "MT",
        "meterSerialNumber": "MS",
    }
    assert event_for("BootNotification", payload) == BootReported(
        station_id="CP1",
        vendor="Vendor",
        model="Model",
        serial_number="S1",
        charge_box_serial="B1",
        firmware_version="1.2.3",
        iccid="IC",
        imsi="IM",
        meter_type="MT",
        meter_serial="MS",
        received_at=NOW,
    )


def test_boot_notification_minimal() -> None:
    event = event_for("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    assert isinstance(event, BootReported)
    assert (event.vendor, event.model) == ("V", "M")
    assert event.serial_number is event.firmware_version is event.meter_serial is None


def test_heartbeat() -> None:
    assert event_for("Heartbeat", {}) == HeartbeatReceived("CP1", NOW)


def test_status_notification_keeps_device_time_and_arrival_time_apart() -> None:
    payload = {
        "connectorId": 1,
        "errorCode": "GroundFailure",
        "status": "Faulted",
        "info": "i",
        "vendorErrorCode": "E7",
        "timestamp": T,
    }
    assert event_for("StatusNotification", payload) == StatusReported(
        station_id="CP1",
        connector_id=1,
        status="Faulted",
        error_code="GroundFailure",
        info="i",
        vendor_error_code="E7",
        timestamp=T_DT,
        received_at=NOW,
    )


def test_status_notification_without_timestamp() -> None:
    event = event_for(
        "StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available"}
    )
    assert isinstance(event, StatusReported)
    assert event.timestamp is None
    assert event.received_at == NOW


def test_authorize() -> None:
    assert event_for("Authorize", {"idTag": "TAG"}) == AuthorizeRequested("CP1", "TAG", NOW)


def test_start_transaction() -> None:
    payload = {
        "connectorId": 1,
        "idTag": "TAG",
        "meterStart": 1234,
        "timestamp": "2026-01-05T10:00:00.250+02:00",
        "reservationId": 9,
    }
    event = event_for("StartTransaction", payload)
    assert event == TransactionStarted(
        station_id="CP1",
        connector_id=1,
        id_tag="TAG",
        meter_start_wh=1234,
        timestamp=datetime(2026, 1, 5, 8, 0, 0, 250000, tzinfo=UTC),
        reservation_id=9,
        received_at=NOW,
    )
    assert event.timestamp.utcoffset() == timedelta(hours=2)  # the device's own offset kept


def test_start_transaction_without_reservation() -> None:
    event = event_for(
        "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": T}
    )
    assert isinstance(event, TransactionStarted)
    assert event.reservation_id is None


@pytest.mark.parametrize(
    "text", ["2026-01-05t08:00:00z", "2026-01-05T08:00:00.000Z", "2026-01-05T09:00:00+0100"]
)
def test_every_schema_valid_timestamp_spelling_is_parsed(text: str) -> None:
    event = event_for(
        "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": text}
    )
    assert isinstance(event, TransactionStarted)
    assert event.timestamp == T_DT


def test_impossible_date_is_a_property_constraint_violation() -> None:
    with pytest.raises(PropertyConstraintViolation, match="timestamp"):
        event_for(
            "StartTransaction",
            {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2026-02-30T08:00:00Z"},
        )


def test_meter_values_defaults_measurand_and_context() -> None:
    sample = one_sample({"value": "1500"})
    assert sample == MeterSample(
        timestamp=T_DT,
        measurand="Energy.Active.Import.Register",
        value="1500",
        numeric=1500.0,
        unit=None,
        phase=None,
        context="Sample.Periodic",
        location=None,
        format=None,
        wh=1500.0,
    )


def test_meter_values_kwh_normalised_to_wh() -> None:
    sample = one_sample(
        {"value": "12.345", "unit": "kWh", "measurand": "Energy.Active.Import.Register"}
    )
    assert sample.unit == "kWh"
    assert sample.value == "12.345"  # the charger's text is kept as it came
    assert sample.numeric == pytest.approx(12.345)
    assert sample.wh == pytest.approx(12345.0)


def test_meter_values_explicit_fields_are_kept() -> None:
    sample = one_sample(
        {
            "value": "230.1",
            "measurand": "Voltage",
            "unit": "V",
            "phase": "L1-N",
            "context": "Transaction.Begin",
            "location": "Outlet",
            "format": "Raw",
        }
    )
    assert (sample.measurand, sample.unit, sample.phase) == ("Voltage", "V", "L1-N")
    assert (sample.context, sample.location, sample.format) == (
        "Transaction.Begin",
        "Outlet",
        "Raw",
    )
    assert sample.numeric == pytest.approx(230.1)
    assert sample.wh is None  # not an energy measurand


def test_meter_values_non_numeric_value() -> None:
    sample = one_sample({"value": "n/a", "format": "SignedData"})
    assert sample.value == "n/a"
    assert sample.numeric is None
    assert sample.wh is None


@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-Infinity", "1e999"])
def test_meter_values_non_finite_value_is_not_numeric(value: str) -> None:
    sample = one_sample({"value": value})
    assert sample.value == value
    assert sample.numeric is None
    assert sample.wh is None


def test_meter_values_many_entries_and_no_transaction() -> None:
    payload = {
        "connectorId": 0,
        "meterValue": [
            {"timestamp": T, "sampledValue": [{"value": "1"}, {"value": "2", "unit": "kWh"}]},
            {"timestamp": "2026-01-05T08:15:00Z", "sampledValue": [{"value": "3"}]},
        ],
    }
    event = event_for("MeterValues", payload)
    assert isinstance(event, MeterValuesReported)
    assert event.transaction_id is None
    assert event.connector_id == 0
    assert event.received_at == NOW
    assert [s.wh for s in event.samples] == [1.0, 2000.0, 3.0]
    assert [s.timestamp for s in event.samples] == [T_DT, T_DT, T_DT + timedelta(minutes=15)]


def test_stop_transaction_with_transaction_data() -> None:
    payload = {
        "transactionId": 7,
        "idTag": "TAG",
        "meterStop": 5000,
        "timestamp": "2026-01-05T08:30:00Z",
        "reason": "EVDisconnected",
        "transactionData": [
            {
                "timestamp": T,
                "sampledValue": [{"value": "1", "unit": "kWh", "context": "Transaction.Begin"}],
            },
            {
                "timestamp": "2026-01-05T08:30:00Z",
                "sampledValue": [{"value": "5", "unit": "kWh", "context": "Transaction.End"}],
            },
        ],
    }
    event = event_for("StopTransaction", payload)
    assert isinstance(event, TransactionStopped)
    assert (event.station_id, event.transaction_id, event.id_tag) == ("CP1", 7, "TAG")
    assert (event.meter_stop_wh, event.reason) == (5000, "EVDisconnected")
    assert event.timestamp == T_DT + timedelta(minutes=30)
    assert event.received_at == NOW
    assert [(s.wh, s.context) for s in event.samples] == [
        (1000.0, "Transaction.Begin"),
        (5000.0, "Transaction.End"),
    ]


def test_stop_transaction_minimal() -> None:
    event = event_for("StopTransaction", {"transactionId": -1, "meterStop": 0, "timestamp": T})
    assert isinstance(event, TransactionStopped)
    assert event.transaction_id == -1
    assert event.id_tag is None and event.reason is None
    assert event.samples == ()


def test_data_transfer() -> None:
    assert event_for(
        "DataTransfer", {"vendorId": "com.x", "messageId": "m", "data": "d"}
    ) == DataTransferReceived("CP1", "com.x", "m", "d", NOW)
    assert event_for("DataTransfer", {"vendorId": "com.x"}) == DataTransferReceived(
        "CP1", "com.x", None, None, NOW
    )


def test_firmware_and_diagnostics_status() -> None:
    assert event_for("FirmwareStatusNotification", {"status": "Installed"}) == (
        FirmwareStatusReported("CP1", "Installed", NOW)
    )
    assert event_for("DiagnosticsStatusNotification", {"status": "UploadFailed"}) == (
        DiagnosticsStatusReported("CP1", "UploadFailed", NOW)
    )


def test_every_charger_action_has_an_event() -> None:
    minimal: dict[str, dict[str, Any]] = {
        "BootNotification": {"chargePointVendor": "V", "chargePointModel": "M"},
        "Heartbeat": {},
        "StatusNotification": {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
        "Authorize": {"idTag": "A"},
        "StartTransaction": {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": T},
        "MeterValues": meter_payload({"value": "1"}),
        "StopTransaction": {"transactionId": 1, "meterStop": 1, "timestamp": T},
        "DataTransfer": {"vendorId": "v"},
        "FirmwareStatusNotification": {"status": "Idle"},
        "DiagnosticsStatusNotification": {"status": "Idle"},
        "LogStatusNotification": {"status": "Idle"},
        "SignedFirmwareStatusNotification": {"status": "Idle"},
        "SecurityEventNotification": {"type": "StartupOfTheDevice", "timestamp": T},
    }
    assert set(minimal) == v16.CHARGER_ACTIONS
    for action, payload in minimal.items():
        event = event_for(action, payload)
        assert event.station_id == "CP1"
        assert event.received_at == NOW


def test_directions_overlap_only_in_data_transfer() -> None:
    overlap = v16.CHARGER_ACTIONS & v16.CSMS_ACTIONS
    assert overlap == {"DataTransfer"}


# -- to_payload --------------------------------------------------------------------------------


def checked(action: str, reply: Any) -> dict[str, Any]:
    payload = v16.to_payload(reply)
    schemas.validate_response(v16.VERSION, action, payload)
    return payload


@pytest.mark.parametrize("status", list(RegistrationStatus))
def test_boot_decision(status: RegistrationStatus) -> None:
    assert checked("BootNotification", BootDecision(status, 300, NOW)) == {
        "status": status.value,
        "currentTime": "2026-01-05T09:00:00.000Z",
        "interval": 300,
    }


def test_heartbeat_ack() -> None:
    assert checked("Heartbeat", HeartbeatAck(NOW)) == {"currentTime": "2026-01-05T09:00:00.000Z"}


@pytest.mark.parametrize("status", list(AuthorizationStatus))
def test_authorize_decision_status_only(status: AuthorizationStatus) -> None:
    assert checked("Authorize", AuthorizeDecision(IdTagInfo(status))) == {
        "idTagInfo": {"status": status.value}
    }


def test_authorize_decision_with_expiry_and_parent() -> None:
    info = IdTagInfo(AuthorizationStatus.ACCEPTED, NOW + timedelta(days=1), "GROUP")
    assert checked("Authorize", AuthorizeDecision(info)) == {
        "idTagInfo": {
            "status": "Accepted",
            "expiryDate": "2026-01-06T09:00:00.000Z",
            "parentIdTag": "GROUP",
        }
    }


def test_start_decision() -> None:
    info = IdTagInfo(AuthorizationStatus.BLOCKED)
    assert checked("StartTransaction", StartDecision(42, info)) == {
        "transactionId": 42,
        "idTagInfo": {"status": "Blocked"},
    }


def test_stop_decision() -> None:
    assert checked("StopTransaction", StopDecision(None)) == {}
    info = IdTagInfo(AuthorizationStatus.EXPIRED)
    assert checked("StopTransaction", StopDecision(info)) == {"idTagInfo": {"status": "Expired"}}


def test_data_transfer_decision() -> None:
    assert checked("DataTransfer", DataTransferDecision("UnknownVendorId")) == {
        "status": "UnknownVendorId"
    }
    assert checked("DataTransfer", DataTransferDecision("Accepted", "xyz")) == {
        "status": "Accepted",
        "data": "xyz",
    }


@pytest.mark.parametrize(
    "action", ["StatusNotification", "MeterValues", "FirmwareStatusNotification"]
)
def test_ack_is_an_empty_payload(action: str) -> None:
    assert checked(action, Ack()) == {}


def test_a_reply_with_no_wire_form_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        v16.to_payload(ConnectionAck(True))


def test_expiry_in_another_zone_is_written_in_utc() -> None:
    expiry = datetime(2026, 1, 6, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    payload = checked(
        "Authorize", AuthorizeDecision(IdTagInfo(AuthorizationStatus.ACCEPTED, expiry))
    )
    assert payload["idTagInfo"]["expiryDate"] == "2026-01-06T09:00:00.000Z"


# -- iso -------------------------------------------------------------------------------------


def test_iso_utc_with_milliseconds_and_z() -> None:
    assert v16.iso(datetime(2026, 1, 5, 8, 0, 0, 123456, tzinfo=UTC)) == (
        "2026-01-05T08:00:00.123Z"
    )


def test_iso_naive_is_taken_as_utc() -> None:
    assert v16.iso(datetime(2026, 1, 5, 8, 0)) == "2026-01-05T08:00:00.000Z"


def test_iso_other_zone_is_converted_to_utc() -> None:
    moment = datetime(2026, 1, 5, 3, 30, tzinfo=timezone(timedelta(hours=-4, minutes=-30)))
    assert v16.iso(moment) == "2026-01-05T08:00:00.000Z"


def test_iso_round_trips_through_parse_time() -> None:
    moment = datetime(2026, 7, 1, 23, 59, 59, 999000, tzinfo=UTC)
    assert v16.parse_time(v16.iso(moment)) == moment
    assert not math.isnan(moment.timestamp())


# -- adapters ----------------------------------------------------------------------------------


def test_negotiate_picks_the_first_offered_that_is_supported() -> None:
    assert ADAPTERS["ocpp1.6"] is v16
    assert negotiate(["ocpp1.6", "ocpp2.0.1"]) == "ocpp1.6"
    assert negotiate(["ocpp2.0.1", "ocpp1.6"]) == "ocpp2.0.1"
    assert negotiate(["ocpp1.6", "ocpp2.0.1"], ["ocpp2.0.1", "ocpp1.6"]) == "ocpp1.6"
    assert negotiate(["ocpp2.0.1", "ocpp1.6"], ["ocpp2.0.1", "ocpp1.6"]) == "ocpp2.0.1"
    assert negotiate(["ocpp1.5"]) is None
    assert negotiate([]) is None
