"""The Store protocol every adapter offers, and `open_store` that picks one by URL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from csms.domain.ports import LedgerTx


@dataclass(frozen=True)
class EventOutcome:
    """What one event of a batch came to: a value, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None


class StoreError(Exception):
    """A request the store refuses, with a message fit for an operator."""


class Store(Protocol):
    """A ledger database: group-committed batches for the ledger actor.

    `apply_batch` is CPU work and runs on the event loop; `commit` waits for the disk and
    runs on a worker thread.
    """

    def apply_batch(self, work: Sequence[Callable[[LedgerTx], Any]]) -> list[EventOutcome]: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def run_batch(self, work: Sequence[Callable[[LedgerTx], Any]]) -> list[EventOutcome]: ...

    def mark_all_offline(self) -> None: ...

    def close(self) -> None: ...


#: The server's ledger connection as PostgreSQL lists it (`pg_stat_activity.application_name`).
LEDGER_APPLICATION_NAME = "csms-ledger"


def open_store(url: str) -> Any:
    """Open (and migrate) the ledger's store a database URL names: `sqlite:///PATH` or
    `postgresql://USER@HOST:PORT/DB`."""
    if url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        from csms.storage.sqlite import SqliteStore

        return SqliteStore.from_url(url, application_name=LEDGER_APPLICATION_NAME)
    raise StoreError(f"unsupported database URL {url!r}")
