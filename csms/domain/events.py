"""Domain events: what a charger told the CSMS, in version-neutral form.

Every protocol adapter (1.6 today, 2.0.1 later) turns its payloads into these; the ledger
consumes only these. `received_at` is the CSMS's arrival time, kept apart from the
charger's own `timestamp`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One sampled value, with energy normalised to Wh (`wh`) when it is an energy register."""

    timestamp: datetime
    measurand: str
    value: str
    numeric: float | None
    unit: str | None
    phase: str | None
    context: str | None
    location: str | None
    format: str | None
    wh: float | None


@dataclass(frozen=True, slots=True)
class BootReported:
    station_id: str
    vendor: str
    model: str
    serial_number: str | None
    charge_box_serial: str | None
    firmware_version: str | None
    iccid: str | None
    imsi: str | None
    meter_type: str | None
    meter_serial: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class HeartbeatReceived:
    station_id: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class StatusReported:
    station_id: str
    connector_id: int
    status: str
    error_code: str
    info: str | None
    vendor_error_code: str | None
    timestamp: datetime | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class AuthorizeRequested:
    station_id: str
    id_tag: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class TransactionStarted:
    station_id: str
    connector_id: int
    id_tag: str
    meter_start_wh: int
    timestamp: datetime
    reservation_id: int | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class MeterValuesReported:
    station_id: str
    connector_id: int
    transaction_id: int | None
    samples: tuple[MeterSample, ...]
    received_at: datetime


@dataclass(frozen=True, slots=True)
class TransactionStopped:
    station_id: str
    transaction_id: int
    id_tag: str | None
    meter_stop_wh: int
    timestamp: datetime
    reason: str | None
    samples: tuple[MeterSample, ...]
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DataTransferReceived:
    station_id: str
    vendor_id: str
    message_id: str | None
    data: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class FirmwareStatusReported:
    station_id: str
    status: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DiagnosticsStatusReported:
    station_id: str
    status: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    """The runtime's note that a station connected, disconnected or went silent."""

    station_id: str
    state: str  # "connected" | "disconnected" | "offline" | "replaced"
    received_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


DomainEvent = (
    BootReported
    | HeartbeatReceived
    | StatusReported
    | AuthorizeRequested
    | TransactionStarted
    | MeterValuesReported
    | TransactionStopped
    | DataTransferReceived
    | FirmwareStatusReported
    | DiagnosticsStatusReported
    | ConnectionChanged
)

#: Events that a crash must not lose: answered only after their records are committed.
TRANSACTION_EVENTS = (TransactionStarted, MeterValuesReported, TransactionStopped)

#: Answered only after the commit: transaction data, and the rare events whose answer an
#: operator or the charger acts on (a registration, a connection's state). Heartbeats,
#: status notifications and authorizations are answered as soon as their rules have run.
ANSWERED_AFTER_COMMIT = (*TRANSACTION_EVENTS, BootReported, ConnectionChanged)
