"""The OCPP 2.0.1 adapter: 2.0.1 payloads to domain events, ledger replies to 2.0.1 payloads.

Also names which actions go in which direction, and the calls the CSMS sends on its own
after an answer (`commands_after`: CostUpdated with a session's running cost).

How 2.0.1 maps onto the version-neutral domain: an EVSE (the unit that runs one transaction
at a time) is the ledger's connector; a TransactionEvent is a `TransactionEventReported`,
keyed by the station's own transaction id; an IdToken is its value (the ledger's id tag)
and its type; LogStatusNotification is the 1.6 diagnostics status; NotifyReport feeds the
device model; the other notifications go to the event log as they came.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from csms.domain.events import (
    AuthorizeRequested,
    BootReported,
    DataTransferReceived,
    DeviceModelReported,
    DeviceVariable,
    DomainEvent,
    MeterSample,
    MeterValuesReported,
    StatusReported,
    TransactionEventReported,
)
from csms.domain.metering import ENERGY_REGISTER
from csms.domain.replies import (
    AuthorizeDecision,
    IdTagInfo,
    Reply,
    TransactionEventDecision,
)
from csms.protocol.common import (
    Converter,
    common_payload,
    diagnostics_status,
    finite,
    firmware_status,
    heartbeat,
    iso,
    meter_sample,
    notification,
    parse_time,
)
from csms.protocol.errors import PropertyConstraintViolation

VERSION = "ocpp2.0.1"

#: Notifications kept in the ledger's event log as they came, by the kind logged.
NOTIFICATIONS: dict[str, str] = {
    "NotifyEvent": "station_event",
    "SecurityEventNotification": "security_event",
    "NotifyChargingLimit": "charging_limit",
    "ClearedChargingLimit": "charging_limit_cleared",
    "ReportChargingProfiles": "charging_profiles",
    "NotifyEVChargingNeeds": "ev_charging_needs",
    "NotifyMonitoringReport": "monitoring_report",
    "NotifyCustomerInformation": "customer_information",
    "NotifyDisplayMessages": "display_messages",
    "PublishFirmwareStatusNotification": "publish_firmware_status",
    "NotifyEVChargingSchedule": "ev_charging_schedule",
    "ReservationStatusUpdate": "reservation_status",
}

#: Actions a 2.0.1 charging station initiates, which the CSMS handles. The station's
#: certificate requests (SignCertificate, Get15118EVCertificate, GetCertificateStatus) are
#: not among them: they are answered NotSupported.
CHARGER_ACTIONS = frozenset(
    {
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "Authorize",
        "TransactionEvent",
        "MeterValues",
        "NotifyReport",
        "LogStatusNotification",
        "FirmwareStatusNotification",
        "DataTransfer",
        *NOTIFICATIONS,
    }
)

#: Actions the CSMS initiates on a 2.0.1 charging station (through the runtime's registry).
CSMS_ACTIONS = frozenset(
    {
        "RequestStartTransaction",
        "RequestStopTransaction",
        "Reset",
        "UnlockConnector",
        "TriggerMessage",
        "ChangeAvailability",
        "ClearCache",
        "GetVariables",
        "SetVariables",
        "GetBaseReport",
        "GetReport",
        "GetLog",
        "UpdateFirmware",
        "SetChargingProfile",
        "ClearChargingProfile",
        "GetCompositeSchedule",
        "GetChargingProfiles",
        "SendLocalList",
        "GetLocalListVersion",
        "ReserveNow",
        "CancelReservation",
        "GetTransactionStatus",
        "CostUpdated",
        "DataTransfer",
        "SetNetworkProfile",
        "ClearVariableMonitoring",
        "SetVariableMonitoring",
        "SetMonitoringBase",
        "SetMonitoringLevel",
        "GetMonitoringReport",
        "CustomerInformation",
        "SetDisplayMessage",
        "GetDisplayMessages",
        "ClearDisplayMessage",
        "PublishFirmware",
        "UnpublishFirmware",
    }
)

#: What the ledger stores as 64-bit integers: larger numbers are refused up front.
_INT_RANGE = range(-(2**63), 2**63)

# -- payloads to events ---------------------------------------------------------------------


def _int(value: Any, field: str) -> Any:
    if value is not None and value not in _INT_RANGE:
        raise PropertyConstraintViolation(f"{field} is out of range", {"field": field})
    return value


def _number_text(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def samples(meter_values: list[dict[str, Any]]) -> tuple[MeterSample, ...]:
    """2.0.1 MeterValueType entries as samples. A value's multiplier is applied: `value`
    and `numeric` are in `unit` (Wh when an energy measurand names none)."""
    found: list[MeterSample] = []
    for meter_value in meter_values:
        timestamp = parse_time(meter_value["timestamp"])
        for sampled in meter_value["sampledValue"]:
            measurand = sampled.get("measurand", ENERGY_REGISTER)
            unit_of_measure = sampled.get("unitOfMeasure") or {}
            unit = unit_of_measure.get("unit")
            multiplier = _int(unit_of_measure.get("multiplier", 0), "multiplier")
            raw = sampled["value"]
            try:
                numeric = finite(float(raw) * 10.0**multiplier)
            except OverflowError:
                numeric = None
            text = _number_text(raw) if multiplier == 0 or numeric is None else repr(numeric)
            found.append(
                meter_sample(
                    sampled,
                    timestamp,
                    measurand,
                    text,
                    numeric,
                    unit,
                    "SignedData" if "signedMeterValue" in sampled else None,
                )
            )
    return tuple(found)


def _boot(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    info = p["chargingStation"]
    modem = info.get("modem") or {}
    return BootReported(
        station_id=station,
        vendor=info["vendorName"],
        model=info["model"],
        serial_number=info.get("serialNumber"),
        charge_box_serial=None,
        firmware_version=info.get("firmwareVersion"),
        iccid=modem.get("iccid"),
        imsi=modem.get("imsi"),
        meter_type=None,
        meter_serial=None,
        received_at=now,
        reason=p["reason"],
    )


def _status(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    status = p["connectorStatus"]
    return StatusReported(
        station_id=station,
        connector_id=_int(p["evseId"], "evseId"),
        status=status,
        # 2.0.1 reports errors with NotifyEvent; a status carries none.
        error_code="NoError",
        info=None,
        vendor_error_code=None,
        timestamp=parse_time(p["timestamp"]),
        received_at=now,
    )


def _authorize(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    token = p["idToken"]
    return AuthorizeRequested(station, token["idToken"], now, token_type=token["type"])


def _transaction_event(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    info = p["transactionInfo"]
    evse = p.get("evse") or {}
    token = p.get("idToken")
    return TransactionEventReported(
        station_id=station,
        station_tx_id=info["transactionId"],
        event_type=p["eventType"],
        seq_no=_int(p["seqNo"], "seqNo"),
        timestamp=parse_time(p["timestamp"]),
        trigger_reason=p["triggerReason"],
        offline=bool(p.get("offline", False)),
        evse_id=_int(evse.get("id"), "evse.id"),
        connector_id=_int(evse.get("connectorId"), "evse.connectorId"),
        id_tag=token["idToken"] if token else None,
        token_type=token["type"] if token else None,
        charging_state=info.get("chargingState"),
        stopped_reason=info.get("stoppedReason"),
        remote_start_id=_int(info.get("remoteStartId"), "remoteStartId"),
        reservation_id=_int(p.get("reservationId"), "reservationId"),
        samples=samples(p.get("meterValue", [])),
        received_at=now,
    )


def _meter_values(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    return MeterValuesReported(
        station_id=station,
        connector_id=_int(p["evseId"], "evseId"),
        transaction_id=None,
        samples=samples(p["meterValue"]),
        received_at=now,
    )


def _variables(report: dict[str, Any]) -> list[DeviceVariable]:
    component, variable = report["component"], report["variable"]
    evse = component.get("evse") or {}
    characteristics = report.get("variableCharacteristics") or {}
    return [
        DeviceVariable(
            component=component["name"],
            component_instance=component.get("instance"),
            evse_id=_int(evse.get("id"), "evse.id"),
            connector_id=_int(evse.get("connectorId"), "evse.connectorId"),
            variable=variable["name"],
            variable_instance=variable.get("instance"),
            attribute_type=attribute.get("type", "Actual"),
            value=attribute.get("value"),
            mutability=attribute.get("mutability"),
            data_type=characteristics.get("dataType"),
            unit=characteristics.get("unit"),
        )
        for attribute in report["variableAttribute"]
    ]


def _notify_report(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    return DeviceModelReported(
        station_id=station,
        request_id=_int(p["requestId"], "requestId"),
        seq_no=_int(p["seqNo"], "seqNo"),
        more_to_come=bool(p.get("tbc", False)),
        generated_at=parse_time(p["generatedAt"], "generatedAt"),
        variables=tuple(v for report in p.get("reportData", ()) for v in _variables(report)),
        received_at=now,
    )


def _data_transfer(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    data = p.get("data")
    # 2.0.1 data may be any JSON value; the ledger keeps text.
    text = data if isinstance(data, str) or data is None else orjson.dumps(data).decode()
    return DataTransferReceived(station, p["vendorId"], p.get("messageId"), text, now)


TO_EVENT: dict[str, Converter] = {
    "BootNotification": _boot,
    "Heartbeat": heartbeat,
    "StatusNotification": _status,
    "Authorize": _authorize,
    "TransactionEvent": _transaction_event,
    "MeterValues": _meter_values,
    "NotifyReport": _notify_report,
    "LogStatusNotification": diagnostics_status,
    "FirmwareStatusNotification": firmware_status,
    "DataTransfer": _data_transfer,
    **{action: notification(kind) for action, kind in NOTIFICATIONS.items()},
}


def to_event(station_id: str, action: str, payload: dict[str, Any], now: datetime) -> DomainEvent:
    """The domain event a schema-valid 2.0.1 CALL from a station means."""
    return TO_EVENT[action](station_id, payload, now)


# -- replies to payloads ---------------------------------------------------------------------


def id_token_info(info: IdTagInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"status": info.status.value}
    if info.expiry is not None:
        out["cacheExpiryDateTime"] = iso(info.expiry)
    if info.parent_id_tag is not None:
        # The group is the CSMS's own notion: it has no token type of its own.
        out["groupIdToken"] = {"idToken": info.parent_id_tag, "type": "Central"}
    return out


def _money(amount: Decimal) -> float:
    return float(amount)


def to_payload(reply: Reply) -> dict[str, Any]:
    """The 2.0.1 CALLRESULT payload of a ledger reply."""
    match reply:
        case AuthorizeDecision():
            return {"idTokenInfo": id_token_info(reply.id_tag_info)}
        case TransactionEventDecision():
            out: dict[str, Any] = {}
            if reply.id_tag_info is not None:
                out["idTokenInfo"] = id_token_info(reply.id_tag_info)
            if reply.total_cost is not None:
                out["totalCost"] = _money(reply.total_cost)
            return out
    payload = common_payload(reply)
    if payload is not None:
        return payload
    raise TypeError(f"no 2.0.1 payload for {reply!r}")


def commands_after(reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    """Calls the CSMS sends the station once it has answered: the running cost of a
    session (CostUpdated), when the ledger says it is due."""
    if isinstance(reply, TransactionEventDecision) and reply.running_cost is not None:
        return [
            (
                "CostUpdated",
                {"totalCost": _money(reply.running_cost), "transactionId": reply.station_tx_id},
            )
        ]
    return []
