"""The storage port the ledger rules run against: one open database transaction.

Adapters in `csms.storage` implement it; the rules never see SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from csms.domain.events import BootReported, MeterSample, StatusReported
from csms.domain.records import (
    StationRecord,
    TokenRecord,
    TransactionRecord,
    TransactionStatus,
)


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


__all__ = ["LedgerTx", "TransactionStatus"]
