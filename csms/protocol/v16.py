"""The OCPP 1.6J adapter: 1.6 payloads to domain events, ledger replies to 1.6 payloads.

Also names which actions go in which direction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.domain.events import (
    AuthorizeRequested,
    BootReported,
    DataTransferReceived,
    DomainEvent,
    MeterSample,
    MeterValuesReported,
    StatusReported,
    TransactionStarted,
    TransactionStopped,
)
from csms.domain.replies import AuthorizeDecision, IdTagInfo, Reply, StartDecision, StopDecision
from csms.protocol.common import (
    Converter,
    common_payload,
    diagnostics_status,
    finite,
    firmware_status,
    heartbeat,
    meter_sample,
    notification,
)

# The simulator and the tests read OCPP time through this module.
from csms.protocol.common import iso as iso
from csms.protocol.common import parse_time as parse_time

VERSION = "ocpp1.6"

#: The 1.6 security whitepaper's notifications kept in the ledger's event log as they came,
#: by the kind logged. Its certificate request (SignCertificate) is answered NotSupported.
SECURITY_NOTIFICATIONS: dict[str, str] = {"SecurityEventNotification": "security_event"}

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
        # the security whitepaper's GetLog and SignedUpdateFirmware report through these
        "LogStatusNotification",
        "SignedFirmwareStatusNotification",
        *SECURITY_NOTIFICATIONS,
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
        # the security whitepaper's
        "ExtendedTriggerMessage",
        "GetLog",
        "SignedUpdateFirmware",
        "InstallCertificate",
        "GetInstalledCertificateIds",
        "DeleteCertificate",
        "CertificateSigned",
    }
)


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
            samples.append(
                meter_sample(
                    sampled,
                    timestamp,
                    measurand,
                    value,
                    finite(numeric),
                    unit,
                    sampled.get("format"),
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


_TO_EVENT: dict[str, Converter] = {
    "BootNotification": _boot,
    "Heartbeat": heartbeat,
    "StatusNotification": _status,
    "Authorize": lambda station, p, now: AuthorizeRequested(station, p["idTag"], now),
    "StartTransaction": _start,
    "MeterValues": _meter_values,
    "StopTransaction": _stop,
    "DataTransfer": lambda station, p, now: DataTransferReceived(
        station, p["vendorId"], p.get("messageId"), p.get("data"), now
    ),
    "FirmwareStatusNotification": firmware_status,
    "DiagnosticsStatusNotification": diagnostics_status,
    "LogStatusNotification": diagnostics_status,
    "SignedFirmwareStatusNotification": firmware_status,
    **{action: notification(kind) for action, kind in SECURITY_NOTIFICATIONS.items()},
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
    payload = common_payload(reply)
    if payload is not None:
        return payload
    raise TypeError(f"no 1.6 payload for {reply!r}")
