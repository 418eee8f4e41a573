"""The ledger's answers to domain events, which the protocol adapters put on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


Reply = (
    BootDecision
    | HeartbeatAck
    | AuthorizeDecision
    | StartDecision
    | StopDecision
    | DataTransferDecision
    | ConnectionAck
    | Ack
)
