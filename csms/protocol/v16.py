"""The OCPP 1.6J adapter: 1.6 payloads to domain events, ledger replies to 1.6 payloads.

Also names which actions go in which direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from csms.domain.events import (
    AuthorizeRequested,
    BootReported,
    DataTransferReceived,
    DiagnosticsStatusReported,
    DomainEvent,
    FirmwareStatusReported,
    HeartbeatReceived,
    MeterSample,
    MeterValuesReported,
    StatusReported,
    TransactionStarted,
    TransactionStopped,
)
from csms.domain.metering import energy_wh
from csms.domain.replies import (
    Ack,
    AuthorizeDecision,
    BootDecision,
    DataTransferDecision,
    HeartbeatAck,
    IdTagInfo,
    Reply,
    StartDecision,
    StopDecision,
)
from csms.protocol.errors import PropertyConstraintViolation

VERSION = "ocpp1.6"

#: Actions a 1.6 charge point initiates, which the CSMS handles.
CHARGER_ACTIONS = frozenset(
    {
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "Authorize",
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
        "DataTransfer",
        "FirmwareStatusNotification",
        "DiagnosticsStatusNotification",
    }
)

#: Actions the CSMS initiates on a 1.6 charge point.
CSMS_ACTIONS = frozenset(
    {
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "Reset",
        "UnlockConnector",
        "ChangeConfiguration",
        "GetConfiguration",
        "ChangeAvailability",
        "ClearCache",
        "TriggerMessage",
        "GetDiagnostics",
        "UpdateFirmware",
        "SendLocalList",
        "GetLocalListVersion",
        "ReserveNow",
        "CancelReservation",
        "SetChargingProfile",
        "ClearChargingProfile",
        "GetCompositeSchedule",
        "DataTransfer",
    }
)


def iso(moment: datetime) -> str:
    """An OCPP timestamp: ISO 8601 in UTC with a Z (a naive moment is taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    text = moment.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if text.endswith("+00:00") else text + "Z"


def parse_time(text: str, field: str = "timestamp") -> datetime:
    try:
        # RFC 3339 (the schemas' date-time) allows a lower-case "t" and "z".
        return datetime.fromisoformat(text.upper())
    except ValueError:
        raise PropertyConstraintViolation(f"{field} is not an ISO 8601 date-time") from None


def _samples(meter_values: list[dict[str, Any]]) -> tuple[MeterSample, ...]:
    samples: list[MeterSample] = []
    for meter_value in meter_values:
        timestamp = parse_time(meter_value["timestamp"])
        for sampled in meter_value["sampledValue"]:
            measurand = sampled.get("measurand", "Energy.Active.Import.Register")
            unit = sampled.get("unit")
            value = sampled["value"]
            try:
                numeric: float | None = float(value)
            except ValueError:
                numeric = None
            if numeric is not None and not math.isfinite(numeric):
                numeric = None  # "NaN", "inf" are no meter reading (and SQLite stores NaN as NULL)
            samples.append(
                MeterSample(
                    timestamp=timestamp,
                    measurand=measurand,
                    value=value,
                    numeric=numeric,
                    unit=unit,
                    phase=sampled.get("phase"),
                    context=sampled.get("context", "Sample.Periodic"),
                    location=sampled.get("location"),
                    format=sampled.get("format"),
                    wh=energy_wh(measurand, numeric, unit),
                )
            )
    return tuple(samples)


def _boot(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    return BootReported(
        station_id=station,
        vendor=p["chargePointVendor"],
        model=p["chargePointModel"],
        serial_number=p.get("chargePointSerialNumber"),
        charge_box_serial=p.get("chargeBoxSerialNumber"),
        firmware_version=p.get("firmwareVersion"),
        iccid=p.get("iccid"),
        imsi=p.get("imsi"),
        meter_type=p.get("meterType"),
        meter_serial=p.get("meterSerialNumber"),
        received_at=now,
    )


def _status(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    timestamp = p.get("timestamp")
    return StatusReported(
        station_id=station,
        connector_id=p["connectorId"],
        status=p["status"],
        error_code=p["errorCode"],
        info=p.get("info"),
        vendor_error_code=p.get("vendorErrorCode"),
        timestamp=parse_time(timestamp) if timestamp else None,
        received_at=now,
    )


def _start(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    return TransactionStarted(
        station_id=station,
        connector_id=p["connectorId"],
        id_tag=p["idTag"],
        meter_start_wh=p["meterStart"],
        timestamp=parse_time(p["timestamp"]),
        reservation_id=p.get("reservationId"),
        received_at=now,
    )


def _meter_values(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    return MeterValuesReported(
        station_id=station,
        connector_id=p["connectorId"],
        transaction_id=p.get("transactionId"),
        samples=_samples(p["meterValue"]),
        received_at=now,
    )


def _stop(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    return TransactionStopped(
        station_id=station,
        transaction_id=p["transactionId"],
        id_tag=p.get("idTag"),
        meter_stop_wh=p["meterStop"],
        timestamp=parse_time(p["timestamp"]),
        reason=p.get("reason"),
        samples=_samples(p.get("transactionData", [])),
        received_at=now,
    )


_TO_EVENT: dict[str, Callable[[str, dict[str, Any], datetime], DomainEvent]] = {
    "BootNotification": _boot,
    "Heartbeat": lambda station, p, now: HeartbeatReceived(station, now),
    "StatusNotification": _status,
    "Authorize": lambda station, p, now: AuthorizeRequested(station, p["idTag"], now),
    "StartTransaction": _start,
    "MeterValues": _meter_values,
    "StopTransaction": _stop,
    "DataTransfer": lambda station, p, now: DataTransferReceived(
        station, p["vendorId"], p.get("messageId"), p.get("data"), now
    ),
    "FirmwareStatusNotification": lambda station, p, now: FirmwareStatusReported(
        station, p["status"], now
    ),
    "DiagnosticsStatusNotification": lambda station, p, now: DiagnosticsStatusReported(
        station, p["status"], now
    ),
}


def to_event(station_id: str, action: str, payload: dict[str, Any], now: datetime) -> DomainEvent:
    """The domain event a schema-valid 1.6 CALL from a charger means."""
    return _TO_EVENT[action](station_id, payload, now)


def _id_tag_info(info: IdTagInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"status": info.status.value}
    if info.expiry is not None:
        out["expiryDate"] = iso(info.expiry)
    if info.parent_id_tag is not None:
        out["parentIdTag"] = info.parent_id_tag
    return out


def to_payload(reply: Reply) -> dict[str, Any]:
    """The 1.6 CALLRESULT payload of a ledger reply."""
    match reply:
        case BootDecision():
            return {
                "status": reply.status.value,
                "currentTime": iso(reply.current_time),
                "interval": reply.interval,
            }
        case HeartbeatAck():
            return {"currentTime": iso(reply.current_time)}
        case AuthorizeDecision():
            return {"idTagInfo": _id_tag_info(reply.id_tag_info)}
        case StartDecision():
            return {
                "transactionId": reply.transaction_id,
                "idTagInfo": _id_tag_info(reply.id_tag_info),
            }
        case StopDecision():
            return (
                {} if reply.id_tag_info is None else {"idTagInfo": _id_tag_info(reply.id_tag_info)}
            )
        case DataTransferDecision():
            return {"status": reply.status} | ({"data": reply.data} if reply.data else {})
        case Ack():
            return {}
    raise TypeError(f"no 1.6 payload for {reply!r}")
