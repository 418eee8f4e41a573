"""The ledger's answers to domain events, which the protocol adapters put on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class AuthorizationStatus(StrEnum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"


class RegistrationStatus(StrEnum):
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


@dataclass(frozen=True, slots=True)
class IdTagInfo:
    status: AuthorizationStatus
    expiry: datetime | None = None
    parent_id_tag: str | None = None


@dataclass(frozen=True, slots=True)
class BootDecision:
    status: RegistrationStatus
    interval: int
    current_time: datetime


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    current_time: datetime


@dataclass(frozen=True, slots=True)
class AuthorizeDecision:
    id_tag_info: IdTagInfo


@dataclass(frozen=True, slots=True)
class StartDecision:
    transaction_id: int
    id_tag_info: IdTagInfo


@dataclass(frozen=True, slots=True)
class StopDecision:
    id_tag_info: IdTagInfo | None
    #: The session's price including VAT, when billing rated it in this batch.
    total_cost: Decimal | None = None


@dataclass(frozen=True, slots=True)
class TransactionEventDecision:
    """The answer to a station-numbered transaction's event.

    `id_tag_info` answers the token the event carried (None when it carried none);
    `total_cost` is the final price once the transaction ended and was rated;
    `running_cost` the price so far, when it is due to be pushed to the station.
    """

    transaction_id: int
    station_tx_id: str
    id_tag_info: IdTagInfo | None = None
    total_cost: Decimal | None = None
    running_cost: Decimal | None = None


@dataclass(frozen=True, slots=True)
class NotificationAck:
    """Recorded; `status` is what the response says, when it says anything."""

    status: str | None = None


@dataclass(frozen=True, slots=True)
class DataTransferDecision:
    status: str
    data: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionAck:
    """A connection change is recorded; `registered` says whether the station is accepted."""

    registered: bool


@dataclass(frozen=True, slots=True)
class Ack:
    """Recorded; the message's response carries nothing."""


@dataclass(frozen=True, slots=True)
class RotationApplied:
    """A password rotation step was recorded; `applied` says whether it changed anything."""

    applied: bool


Reply = (
    BootDecision
    | HeartbeatAck
    | AuthorizeDecision
    | StartDecision
    | StopDecision
    | DataTransferDecision
    | ConnectionAck
    | TransactionEventDecision
    | NotificationAck
    | RotationApplied
    | Ack
)
