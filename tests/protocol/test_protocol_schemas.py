"""Schema validation: valid 1.6 payloads pass; each violation kind maps to its OCPP error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastjsonschema
import pytest

from csms.protocol import schemas, v16
from csms.protocol.errors import (
    FormationViolation,
    NotImplementedCall,
    OccurenceConstraintViolation,
    OcppError,
    PropertyConstraintViolation,
    TypeConstraintViolation,
)

V16 = "ocpp1.6"
T = "2026-01-05T08:00:00Z"

VALID_REQUESTS: dict[str, dict[str, Any]] = {
    "BootNotification": {
        "chargePointVendor": "Vendor",
        "chargePointModel": "Model",
        "chargePointSerialNumber": "S1",
        "chargeBoxSerialNumber": "B1",
        "firmwareVersion": "1.2.3",
        "iccid": "8901",
        "imsi": "2620",
        "meterType": "M",
        "meterSerialNumber": "MS",
    },
    "Heartbeat": {},
    "StatusNotification": {
        "connectorId": 1,
        "errorCode": "NoError",
        "status": "Available",
        "timestamp": T,
        "info": "ok",
        "vendorId": "V",
        "vendorErrorCode": "0",
    },
    "Authorize": {"idTag": "TAG1"},
    "StartTransaction": {
        "connectorId": 1,
        "idTag": "TAG1",
        "meterStart": 0,
        "timestamp": T,
        "reservationId": 3,
    },
    "MeterValues": {
        "connectorId": 1,
        "transactionId": 5,
        "meterValue": [
            {
                "timestamp": T,
                "sampledValue": [
                    {
                        "value": "12.5",
                        "measurand": "Energy.Active.Import.Register",
                        "unit": "kWh",
                        "context": "Sample.Periodic",
                        "location": "Outlet",
                        "format": "Raw",
                    },
                    {"value": "7000", "measurand": "Power.Active.Import", "unit": "W"},
                ],
            }
        ],
    },
    "StopTransaction": {
        "transactionId": 5,
        "meterStop": 100,
        "timestamp": T,
        "idTag": "TAG1",
        "reason": "Local",
        "transactionData": [{"timestamp": T, "sampledValue": [{"value": "100"}]}],
    },
    "DataTransfer": {"vendorId": "com.example", "messageId": "m", "data": "x"},
    "FirmwareStatusNotification": {"status": "Installed"},
    "DiagnosticsStatusNotification": {"status": "Uploaded"},
    "LogStatusNotification": {"status": "Uploaded", "requestId": 3},
    "SignedFirmwareStatusNotification": {"status": "SignatureVerified", "requestId": 4},
    "SecurityEventNotification": {"type": "FirmwareUpdated", "timestamp": T, "techInfo": "v2"},
}

VALID_RESPONSES: dict[str, dict[str, Any]] = {
    "BootNotification": {"status": "Accepted", "currentTime": T, "interval": 300},
    "Heartbeat": {"currentTime": T},
    "StatusNotification": {},
    "Authorize": {"idTagInfo": {"status": "Accepted", "expiryDate": T, "parentIdTag": "P"}},
    "StartTransaction": {"transactionId": 1, "idTagInfo": {"status": "ConcurrentTx"}},
    "MeterValues": {},
    "StopTransaction": {"idTagInfo": {"status": "Blocked"}},
    "DataTransfer": {"status": "UnknownVendorId"},
    "FirmwareStatusNotification": {},
    "DiagnosticsStatusNotification": {},
    "LogStatusNotification": {},
    "SignedFirmwareStatusNotification": {},
    "SecurityEventNotification": {},
    "RemoteStartTransaction": {"status": "Accepted"},
    "Reset": {"status": "Rejected"},
}


def _error_of(check: Callable[[], None]) -> OcppError:
    with pytest.raises(OcppError) as caught:
        check()
    return caught.value


def test_every_charger_action_has_a_valid_example() -> None:
    assert set(VALID_REQUESTS) == set(v16.CHARGER_ACTIONS)


@pytest.mark.parametrize("action", sorted(VALID_REQUESTS))
def test_valid_requests_pass(action: str) -> None:
    schemas.validate_request(V16, action, VALID_REQUESTS[action])


@pytest.mark.parametrize("action", sorted(VALID_RESPONSES))
def test_valid_responses_pass(action: str) -> None:
    schemas.validate_response(V16, action, VALID_RESPONSES[action])


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("RemoteStartTransaction", {"idTag": "T", "connectorId": 1}),
        ("RemoteStopTransaction", {"transactionId": 1}),
        ("Reset", {"type": "Soft"}),
        ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}),
        ("GetConfiguration", {}),
        ("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1}),
    ],
)
def test_valid_csms_requests_pass(action: str, payload: dict[str, Any]) -> None:
    schemas.validate_request(V16, action, payload)


def test_every_directional_action_has_a_schema() -> None:
    assert schemas.actions(V16) >= v16.CHARGER_ACTIONS
    assert schemas.actions(V16) >= v16.CSMS_ACTIONS
    assert "Foo" not in schemas.actions(V16)
    assert "BootNotificationResponse" not in schemas.actions(V16)


def _start(**changes: Any) -> dict[str, Any]:
    payload = dict(VALID_REQUESTS["StartTransaction"])
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


@pytest.mark.parametrize(
    ("payload", "error_class", "rule"),
    [
        (_start(connectorId="1"), TypeConstraintViolation, "type"),
        (_start(meterStart=1.5), TypeConstraintViolation, "type"),
        (_start(idTag=5), TypeConstraintViolation, "type"),
        (_start(connectorId=None), OccurenceConstraintViolation, "required"),
        (_start(timestamp=None), OccurenceConstraintViolation, "required"),
        (_start(extra=1), FormationViolation, "additionalProperties"),
        (_start(idTag="A" * 21), PropertyConstraintViolation, "maxLength"),
        (_start(timestamp="yesterday"), PropertyConstraintViolation, "format"),
        (_start(timestamp="2026-13-45T08:00:00Z"), PropertyConstraintViolation, "format"),
    ],
)
def test_violation_kinds_map_to_ocpp_errors(
    payload: dict[str, Any], error_class: type[OcppError], rule: str
) -> None:
    error = _error_of(lambda: schemas.validate_request(V16, "StartTransaction", payload))
    assert type(error) is error_class
    assert error.details["rule"] == rule
    assert error.description.startswith("StartTransaction request:")


def test_enum_violation_is_property_constraint() -> None:
    payload = dict(VALID_REQUESTS["StatusNotification"], status="Sleeping")
    error = _error_of(lambda: schemas.validate_request(V16, "StatusNotification", payload))
    assert type(error) is PropertyConstraintViolation
    assert error.details == {"field": "data.status", "rule": "enum"}


def test_nested_violation_names_the_field() -> None:
    payload = {"connectorId": 1, "meterValue": [{"timestamp": T, "sampledValue": [{}]}]}
    error = _error_of(lambda: schemas.validate_request(V16, "MeterValues", payload))
    assert type(error) is OccurenceConstraintViolation
    assert "sampledValue" in error.details["field"]


def test_empty_array_where_one_item_is_required_is_occurence_violation() -> None:
    error = _error_of(
        lambda: schemas.validate_request(V16, "MeterValues", {"connectorId": 1, "meterValue": []})
    )
    assert type(error) is OccurenceConstraintViolation
    assert error.details["rule"] == "minItems"


def test_response_violation_says_response() -> None:
    error = _error_of(
        lambda: schemas.validate_response(V16, "Authorize", {"idTagInfo": {"status": "Maybe"}})
    )
    assert type(error) is PropertyConstraintViolation
    assert error.description.startswith("Authorize response:")


def test_response_with_bad_expiry_date_is_refused() -> None:
    payload = {"idTagInfo": {"status": "Accepted", "expiryDate": "2026-01-05T08:00:00+02:00Z"}}
    error = _error_of(lambda: schemas.validate_response(V16, "Authorize", payload))
    assert type(error) is PropertyConstraintViolation


def test_request_schema_is_not_the_response_schema() -> None:
    # Heartbeat's request is empty; its response requires currentTime.
    schemas.validate_request(V16, "Heartbeat", {})
    error = _error_of(lambda: schemas.validate_response(V16, "Heartbeat", {}))
    assert type(error) is OccurenceConstraintViolation


@pytest.mark.parametrize("check", [schemas.validate_request, schemas.validate_response])
def test_unknown_action_is_not_implemented(
    check: Callable[[str, str, dict[str, Any]], None],
) -> None:
    error = _error_of(lambda: check(V16, "Foo", {}))
    assert type(error) is NotImplementedCall
    assert error.code == "NotImplemented"


def test_unsupported_version_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unsupported OCPP version"):
        schemas.validate_request("ocpp1.5", "Heartbeat", {})


def test_validators_are_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[object] = []
    real_compile = fastjsonschema.compile

    def counting_compile(schema: Any, *args: Any, **kwargs: Any) -> Any:
        compiled.append(schema)
        return real_compile(schema, *args, **kwargs)

    monkeypatch.setattr(fastjsonschema, "compile", counting_compile)
    schemas._validator.cache_clear()
    try:
        for _ in range(5):
            schemas.validate_request(V16, "Authorize", {"idTag": "A"})
            schemas.validate_response(V16, "Authorize", {"idTagInfo": {"status": "Accepted"}})
            with pytest.raises(TypeConstraintViolation):
                schemas.validate_request(V16, "Authorize", {"idTag": 1})
        assert len(compiled) == 2  # one request validator, one response validator
        first = schemas._validator(V16, "Authorize", False)
        assert schemas._validator(V16, "Authorize", False) is first
        assert schemas._validator(V16, "Authorize", True) is not first
    finally:
        schemas._validator.cache_clear()
