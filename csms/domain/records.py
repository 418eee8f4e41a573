"""Records the ledger keeps, as the storage port hands them to the rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class TransactionStatus(StrEnum):
    ACTIVE = "Active"
    COMPLETED = "Completed"
    #: A newer StartTransaction on the same connector arrived before this one's stop.
    INTERRUPTED = "Interrupted"
    #: A stop (or meter data) for a transaction id the ledger never assigned.
    UNMATCHED = "Unmatched"


@dataclass(frozen=True, slots=True)
class StationRecord:
    id: str
    registered: bool
    registration_status: str | None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id_tag: str
    status: str
    expiry: datetime | None
    parent_id_tag: str | None
    max_active_transactions: int | None


@dataclass(frozen=True, slots=True)
class RegisterReading:
    """An energy register value (Wh) and when the meter read it."""

    wh: float
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    id: int
    station_id: str
    connector_id: int
    id_tag: str | None
    meter_start_wh: int | None
    started_at: datetime | None
    meter_stop_wh: int | None
    ended_at: datetime | None
    status: TransactionStatus
    reported_transaction_id: int | None
    #: The last energy register reading the ledger holds (the start value at first).
    last_register: RegisterReading | None = None
    #: The anomalies flagged on this transaction so far.
    anomalies: tuple[str, ...] = ()
    #: Energy (Wh) the register counted before it was reset during the transaction: the
    #: session's energy is meter stop - meter start + this.
    register_offset_wh: float = 0.0


@dataclass(frozen=True, slots=True)
class StationTransactionRecord:
    """A transaction a 2.x station numbers itself, and the ledger transaction it is."""

    station_id: str
    station_tx_id: str
    transaction_id: int
    evse_id: int | None = None
    connector_id: int | None = None
    token_type: str | None = None
    #: The seqNo of its Started and Ended events; None until that event arrived.
    started_seq_no: int | None = None
    ended_seq_no: int | None = None
    charging_state: str | None = None
    remote_start_id: int | None = None
    #: The token that stopped it, when an Updated event named it before its Ended.
    stop_id_tag: str | None = None
    #: When the running cost was last pushed to the station (the arrival time that did it).
    cost_pushed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DriverRecord:
    """A driver who owns tokens, and how they pay."""

    id: str
    currency: str
    #: "card", "wallet", "subscription" or "invoice" (billed on the period's invoice).
    payment_method: str
    card_ref: str | None = None
    plan_id: str | None = None
    #: Wallets: the balance a session needs to start.
    wallet_minimum: Decimal | None = None
