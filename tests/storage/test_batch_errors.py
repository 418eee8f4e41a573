"""A ledger batch on either backend when the database, not the rules, refuses a statement:
the error belongs to its own event (on PostgreSQL the batch's writes are pipelined, so the
server reports it later than it was sent), and rowcounts read inside a batch are exact."""

from __future__ import annotations

from functools import partial
from typing import Any

from ledger_harness import ACCEPT_ALL, arrived, at, boot, count, register, rows

from csms.domain.ports import LedgerTx
from csms.storage.sqlite import SqliteStore

RULES = ACCEPT_ALL


def refused_write(tx: LedgerTx) -> Any:
    """An event log entry without a kind: the database's NOT NULL refuses it."""
    no_kind: Any = None
    tx.log_event("CP1", no_kind, arrived(), {})


def test_a_write_the_database_refuses_fails_only_its_own_event(
    store: SqliteStore, path: str
) -> None:
    outcomes = store.run_batch(
        [
            partial(RULES.apply, event=boot("CP1")),
            refused_write,
            partial(RULES.apply, event=boot("CP2")),
        ]
    )
    assert [o.error is None for o in outcomes] == [True, False, True]
    assert [r["id"] for r in rows(path, "SELECT id FROM stations ORDER BY id")] == ["CP1", "CP2"]
    assert count(path, "events") == 2  # the two boots'


def test_a_refused_write_at_the_end_of_a_batch_is_still_its_own(
    store: SqliteStore, path: str
) -> None:
    outcomes = store.run_batch([partial(RULES.apply, event=boot("CP1")), refused_write])
    assert [o.error is None for o in outcomes] == [True, False]
    assert count(path, "stations") == 1


def test_rowcounts_inside_a_batch_count_what_each_statement_did(
    store: SqliteStore, path: str
) -> None:
    reading = register(1500.0, at(1))

    def insert_twice(tx: LedgerTx) -> tuple[int, int]:
        first = tx.insert_samples("CP1", 1, None, 7, [(reading, None)], arrived())
        again = tx.insert_samples("CP1", 1, None, 7, [(reading, None)], arrived())
        return first, again

    outcomes = store.run_batch([insert_twice, insert_twice])
    assert [o.value for o in outcomes] == [(1, 0), (0, 0)]
    assert count(path, "meter_samples") == 1
