"""What the version adapters (`v16`, `v201`, and through it `v21`) share: OCPP timestamps,
the meter sample a sampled value becomes, the converters of the messages that mean the same
in every version, and the payloads of the replies every version spells alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from csms.domain.events import (
    DiagnosticsStatusReported,
    DomainEvent,
    FirmwareStatusReported,
    HeartbeatReceived,
    MeterSample,
    NotificationReported,
)
from csms.domain.metering import energy_wh
from csms.domain.replies import (
    Ack,
    BootDecision,
    DataTransferDecision,
    HeartbeatAck,
    NotificationAck,
    Reply,
)
from csms.protocol.errors import PropertyConstraintViolation

#: A CALL's payload, with the station's id and the time it came, to its domain event.
Converter = Callable[[str, dict[str, Any], datetime], DomainEvent]


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


def finite(numeric: float | None) -> float | None:
    """A reading, or None for "NaN" and "inf": they are no meter reading (and SQLite stores
    NaN as NULL)."""
    return numeric if numeric is not None and math.isfinite(numeric) else None


def meter_sample(
    sampled: dict[str, Any],
    timestamp: datetime,
    measurand: str,
    value: str,
    numeric: float | None,
    unit: str | None,
    format: str | None,
) -> MeterSample:
    """The sample of one sampled value, once the version has read its value and unit."""
    return MeterSample(
        timestamp=timestamp,
        measurand=measurand,
        value=value,
        numeric=numeric,
        unit=unit,
        phase=sampled.get("phase"),
        context=sampled.get("context", "Sample.Periodic"),
        location=sampled.get("location"),
        format=format,
        wh=energy_wh(measurand, numeric, unit),
    )


def heartbeat(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    return HeartbeatReceived(station, now)


def firmware_status(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    return FirmwareStatusReported(station, p["status"], now, p.get("requestId"))


def diagnostics_status(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
    """1.6's DiagnosticsStatusNotification, 2.0.1's LogStatusNotification."""
    return DiagnosticsStatusReported(station, p["status"], now)


def notification(kind: str) -> Converter:
    """The converter of a notification kept in the ledger's event log as `kind`."""

    def convert(station: str, p: dict[str, Any], now: datetime) -> DomainEvent:
        return NotificationReported(station, kind, p, now)

    return convert


def common_payload(reply: Reply) -> dict[str, Any] | None:
    """The CALLRESULT payload of a reply that every version spells alike, else None."""
    match reply:
        case BootDecision():
            return {
                "status": reply.status.value,
                "currentTime": iso(reply.current_time),
                "interval": reply.interval,
            }
        case HeartbeatAck():
            return {"currentTime": iso(reply.current_time)}
        case NotificationAck():
            return {} if reply.status is None else {"status": reply.status}
        case DataTransferDecision():
            return {"status": reply.status} | ({"data": reply.data} if reply.data else {})
        case Ack():
            return {}
    return None
