"""The storage port the ledger rules run against: one open database transaction.

Adapters in `csms.storage` implement it; the rules never see SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from csms.domain.cdr import Cdr
from csms.domain.events import (
    BootReported,
    DeviceVariable,
    MeterSample,
    PasswordStage,
    StatusReported,
    TransactionEventReported,
)
from csms.domain.payments import PaymentAction
from csms.domain.postings import Posting
from csms.domain.records import (
    DriverRecord,
    StationRecord,
    StationTransactionRecord,
    TokenRecord,
    TransactionRecord,
    TransactionStatus,
)
from csms.domain.tariffs import Tariff


class LedgerTx(Protocol):
    """Reads and writes inside one ledger batch; committed together or not at all."""

    def get_station(self, station_id: str) -> StationRecord | None: ...

    def save_boot(self, boot: BootReported, registration_status: str, register: bool) -> None: ...

    def touch_station(self, station_id: str, at: datetime, *, heartbeat: bool) -> None: ...

    def set_station_field(self, station_id: str, field: str, value: str) -> None: ...

    def set_connection_state(self, station_id: str, online: bool, at: datetime) -> None: ...

    def record_status(self, status: StatusReported) -> None: ...

    def get_token(self, id_tag: str) -> TokenRecord | None: ...

    def count_active_transactions(self, id_tag: str) -> int: ...

    def find_started_transaction(
        self, station_id: str, connector_id: int, id_tag: str, started_at: datetime
    ) -> TransactionRecord | None: ...

    def active_transaction_on_connector(
        self, station_id: str, connector_id: int
    ) -> TransactionRecord | None: ...

    def get_transaction(self, transaction_id: int) -> TransactionRecord | None: ...

    def find_unmatched_stop(
        self, station_id: str, reported_id: int, ended_at: datetime
    ) -> TransactionRecord | None: ...

    def insert_transaction(self, values: dict[str, Any]) -> int: ...

    def update_transaction(self, transaction_id: int, values: dict[str, Any]) -> None: ...

    def insert_samples(
        self,
        station_id: str,
        connector_id: int,
        transaction_id: int | None,
        reported_transaction_id: int | None,
        samples: Sequence[tuple[MeterSample, str | None]],
        received_at: datetime,
    ) -> int: ...

    def log_event(
        self, station_id: str | None, kind: str, at: datetime, data: dict[str, Any]
    ) -> None: ...

    def rotate_password(self, station_id: str, stage: PasswordStage, password_hash: str) -> bool:
        """Apply a password rotation step (see `PasswordStage`); False if it no longer fits:
        not a profile 1/2 station, or `password_hash` is not the pending password."""
        ...


class StationTransactionsTx(Protocol):
    """The 2.x bookkeeping's reads and writes: station transaction ids, their events'
    sequence numbers, the device model."""

    def get_station_transaction(
        self, station_id: str, station_tx_id: str
    ) -> StationTransactionRecord | None: ...

    def insert_station_transaction(
        self, record: StationTransactionRecord, at: datetime
    ) -> None: ...

    def update_station_transaction(
        self, station_id: str, station_tx_id: str, values: dict[str, Any]
    ) -> None: ...

    def record_transaction_event(self, event: TransactionEventReported) -> bool:
        """Keep the event's sequence number; False if it was kept already (a retry)."""
        ...

    def transaction_event_seq_nos(self, station_id: str, station_tx_id: str) -> list[int]: ...

    def save_device_variables(
        self, station_id: str, report_id: int, variables: Sequence[DeviceVariable], at: datetime
    ) -> None: ...


class BillingTx(Protocol):
    """Billing's reads and writes inside the same ledger batch as the transaction they price."""

    def tariff_in_force(
        self, station_id: str, connector_id: int, at: datetime
    ) -> tuple[Tariff, int] | None:
        """The tariff (and its version) that applies to a session starting then and there:
        the connector's, else the station's, else the default."""
        ...

    def register_readings(self, transaction_id: int) -> list[tuple[datetime, float]]:
        """The transaction's energy import register readings (Wh), in time order."""
        ...

    def save_cdr(self, transaction_id: int, cdr: Cdr, tariff: Tariff, version: int) -> None: ...

    def get_driver(self, id_tag: str) -> DriverRecord | None:
        """The driver who owns the token, if any."""
        ...

    def balance(self, account: str, currency: str) -> Decimal:
        """The account's raw balance (debit positive) over every recorded posting."""
        ...

    def record_postings(self, postings: Sequence[Posting]) -> None:
        """Record idempotently (`csms.domain.postings.plan_recording`): all or nothing."""
        ...

    def enqueue_payment_actions(self, actions: Sequence[PaymentAction], at: datetime) -> None:
        """Add provider calls to the outbox (a key already there is left as it is)."""
        ...

    def payment_result(self, key: str) -> dict[str, Any] | None:
        """The successful outcome recorded for the provider call under `key`, if any."""
        ...


class LedgerStore(LedgerTx, StationTransactionsTx, BillingTx, Protocol):
    """Everything the ledger rules read and write in one batch."""


__all__ = ["BillingTx", "LedgerStore", "LedgerTx", "StationTransactionsTx", "TransactionStatus"]
