"""Domain events: what a charger told the CSMS, in version-neutral form.

Every protocol adapter (1.6, 2.0.1, 2.1) turns its payloads into these; the ledger consumes
only these. `received_at` is the CSMS's arrival time, kept apart from the charger's own
`timestamp`. The same event means the same thing whichever version sent it: a 2.0.1
Heartbeat is a `HeartbeatReceived`, a LogStatusNotification a `DiagnosticsStatusReported`.
What only a station-numbered transaction has (its own id, sequence numbers, trigger reasons)
is a `TransactionEventReported`, which the ledger turns into the same transaction records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
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
    #: Why the station booted (2.x BootReason); None from 1.6.
    reason: str | None = None


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
    #: The 2.x IdToken type (ISO14443, eMAID, NoAuthorization, ...); None for a 1.6 idTag.
    token_type: str | None = None


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
class TransactionEventReported:
    """One event of a transaction the station numbers itself (2.x TransactionEvent).

    `station_tx_id` is the station's id for the transaction; `seq_no` orders its events
    (Started is usually 0). `evse_id` is the unit that runs one transaction at a time, the
    ledger's connector; `connector_id` the socket on it. `id_tag` is the token the event
    carries, if any: it authorizes (or, with `trigger_reason` StopAuthorized or on Ended,
    stops) the transaction. `offline` says the event happened while the station was offline.
    """

    station_id: str
    station_tx_id: str
    event_type: str  # "Started" | "Updated" | "Ended"
    seq_no: int
    timestamp: datetime
    trigger_reason: str
    offline: bool
    evse_id: int | None
    connector_id: int | None
    id_tag: str | None
    token_type: str | None
    charging_state: str | None
    stopped_reason: str | None
    remote_start_id: int | None
    reservation_id: int | None
    samples: tuple[MeterSample, ...]
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceVariable:
    """One attribute of one variable of one component of a station's device model."""

    component: str
    component_instance: str | None
    evse_id: int | None
    connector_id: int | None
    variable: str
    variable_instance: str | None
    attribute_type: str
    value: str | None
    mutability: str | None
    data_type: str | None
    unit: str | None


@dataclass(frozen=True, slots=True)
class DeviceModelReported:
    """One part of a station's report of its device model (2.x NotifyReport).

    A report comes in parts with increasing `seq_no`; `more_to_come` is False on the last.
    """

    station_id: str
    request_id: int
    seq_no: int
    more_to_come: bool
    generated_at: datetime
    variables: tuple[DeviceVariable, ...]
    received_at: datetime


@dataclass(frozen=True, slots=True)
class NotificationReported:
    """Something a station reports that the ledger keeps in its event log as it came
    (2.x NotifyEvent, SecurityEventNotification, NotifyChargingLimit, ...).

    `kind` names it (for example "security_event"); `data` is what the station said.
    """

    station_id: str
    kind: str
    data: dict[str, Any]
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
    #: 2.x: the UpdateFirmware request the status is about (1.6 and idle statuses: None).
    request_id: int | None = None


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


class PasswordStage(StrEnum):
    """Where a station's Basic-auth password rotation is (see `PasswordRotation`)."""

    #: The new password's hash is kept beside the old one; both are accepted.
    OFFERED = "offered"
    #: The station logged in with the new password: it replaces the old one.
    CONFIRMED = "confirmed"
    #: The station refused the new password: it is forgotten.
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class PasswordRotation:
    """A step of rotating a profile 1/2 station's password (never the password itself:
    `password_hash` is its salted hash, which names the pending password the step is about).
    """

    station_id: str
    stage: PasswordStage
    password_hash: str
    received_at: datetime


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
    | TransactionEventReported
    | DeviceModelReported
    | NotificationReported
    | PasswordRotation
)

#: Events that a crash must not lose: answered only after their records are committed.
TRANSACTION_EVENTS = (
    TransactionStarted,
    MeterValuesReported,
    TransactionStopped,
    TransactionEventReported,
)

#: Answered only after the commit: transaction data, and the rare events whose answer an
#: operator or the charger acts on (a registration, a connection's state, a password
#: rotation step: a password must not reach a station before its hash is durable), or that
#: an audit needs (security events and the other kept notifications). Heartbeats, status
#: notifications and authorizations are answered as soon as their rules have run.
ANSWERED_AFTER_COMMIT = (
    *TRANSACTION_EVENTS,
    BootReported,
    ConnectionChanged,
    PasswordRotation,
    NotificationReported,
)
