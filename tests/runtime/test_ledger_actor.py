"""The ledger actor: group commit, and what submitters get when the store fails."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

from csms.domain.events import (
    BootReported,
    DomainEvent,
    HeartbeatReceived,
    TransactionStarted,
)
from csms.domain.ledger import LedgerRules, UnknownStationPolicy
from csms.domain.ports import LedgerTx
from csms.domain.replies import Reply, StartDecision
from csms.runtime.ledger_actor import LedgerActor, LedgerUnavailable
from csms.storage.base import EventOutcome
from csms.storage.sqlite import SqliteStore

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
RULES = LedgerRules(unknown_stations=UnknownStationPolicy.ACCEPT)


def _start(i: int) -> TransactionStarted:
    return TransactionStarted(
        station_id=f"CP-{i % 7}",
        connector_id=i,
        id_tag="TAG1",
        meter_start_wh=1000 * i,
        timestamp=T0 + timedelta(seconds=i),
        reservation_id=None,
        received_at=T0 + timedelta(seconds=i),
    )


def _boot(station_id: str) -> BootReported:
    return BootReported(station_id, "V", "M", None, None, None, None, None, None, None, T0)


def _count(path: Path, table: str) -> int:
    """Count rows from a fresh connection: only what is committed is visible."""
    store = SqliteStore(str(path))
    try:
        return store.count(table)
    finally:
        store.close()


async def _submit_all(
    ledger: LedgerActor, events: Sequence[DomainEvent]
) -> dict[int, Reply | BaseException]:
    """Submit every event concurrently; return each one's reply or exception."""
    outcomes: dict[int, Reply | BaseException] = {}

    async def one(i: int, event: DomainEvent) -> None:
        try:
            outcomes[i] = await ledger.submit(event)
        except Exception as exc:
            outcomes[i] = exc

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i, event in enumerate(events):
                nursery.start_soon(one, i, event)
    return outcomes


async def _submit_to_running_ledger(
    store: Any, events: Sequence[DomainEvent], **options: Any
) -> tuple[LedgerActor, dict[int, Reply | BaseException]]:
    """Run a ledger actor on `store`, submit every event concurrently, stop, close the store."""
    ledger = LedgerActor(store, RULES, **options)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(ledger.run)
            outcomes = await _submit_all(ledger, events)
            nursery.cancel_scope.cancel()
    finally:
        store.close()
    return ledger, outcomes


class FailingStore:
    """Wraps a SqliteStore; fails `commit` (or `apply_batch`) while `failing` is set.

    A failing commit rolls the open batch back first, as `SqliteStore.commit` does. The
    actor does not call `run_batch`; it fails too, in case it ever does.
    """

    def __init__(self, inner: SqliteStore, *, fail_in: str = "commit") -> None:
        self.inner = inner
        self.fail_in = fail_in
        self.failing = True
        self.commits = 0

    def apply_batch(self, work: Sequence[Callable[[LedgerTx], Any]]) -> list[EventOutcome]:
        if self.failing and self.fail_in == "apply":
            raise OSError("disk I/O error (apply)")
        return self.inner.apply_batch(work)

    def commit(self) -> None:
        if self.failing and self.fail_in == "commit":
            self.inner.rollback()
            raise OSError("disk I/O error (commit)")
        self.inner.commit()
        self.commits += 1

    def rollback(self) -> None:
        self.inner.rollback()

    def run_batch(self, work: Sequence[Callable[[LedgerTx], Any]]) -> list[EventOutcome]:
        outcomes = self.apply_batch(work)
        self.commit()
        return outcomes

    def mark_all_offline(self) -> None:
        self.inner.mark_all_offline()

    def close(self) -> None:
        self.inner.close()


async def test_concurrent_events_are_group_committed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    store = SqliteStore(str(path))
    events: list[DomainEvent] = [_start(i) for i in range(300)]
    events += [HeartbeatReceived(f"CP-{i}", T0) for i in range(100)]
    ledger, outcomes = await _submit_to_running_ledger(store, events)

    assert len(outcomes) == len(events)
    assert not [o for o in outcomes.values() if isinstance(o, BaseException)]
    starts = [outcomes[i] for i in range(300)]
    assert all(isinstance(reply, StartDecision) for reply in starts)
    transaction_ids = {reply.transaction_id for reply in starts}  # type: ignore[union-attr]
    assert len(transaction_ids) == 300

    assert ledger.stats.events == len(events)
    assert ledger.stats.batches < len(events) // 10  # batched, not one commit per event
    assert ledger.stats.largest_batch > 1
    assert ledger.stats.failed_batches == 0
    assert _count(path, "transactions") == 300


async def test_max_batch_bounds_a_batch(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    store = SqliteStore(str(path))
    ledger, outcomes = await _submit_to_running_ledger(
        store, [_start(i) for i in range(50)], max_batch=8
    )
    assert all(isinstance(o, StartDecision) for o in outcomes.values())
    assert ledger.stats.largest_batch <= 8
    assert ledger.stats.batches >= 50 // 8
    assert _count(path, "transactions") == 50


async def test_failed_commit_fails_every_waiting_submitter(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    store = FailingStore(SqliteStore(str(path)), fail_in="commit")
    ledger = LedgerActor(store, RULES)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(ledger.run)
            outcomes = await _submit_all(ledger, [_start(i) for i in range(40)])

            assert len(outcomes) == 40
            assert all(isinstance(o, LedgerUnavailable) for o in outcomes.values()), outcomes
            assert ledger.stats.failed_batches >= 1
            assert ledger.stats.events == 0
            assert _count(path, "transactions") == 0
            assert _count(path, "events") == 0

            # Once the store recovers, the ledger works again: it did not die with it.
            store.failing = False
            with trio.fail_after(10):
                reply = await ledger.submit(_start(99))
            assert isinstance(reply, StartDecision)
            assert _count(path, "transactions") == 1
            nursery.cancel_scope.cancel()
    finally:
        store.close()


async def test_failed_apply_fails_every_submitter_of_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    store = FailingStore(SqliteStore(str(path)), fail_in="apply")
    events: list[DomainEvent] = [_start(i) for i in range(20)]
    events += [HeartbeatReceived("CP-1", T0), _boot("CP-NEW")]
    _ledger, outcomes = await _submit_to_running_ledger(store, events)
    # Non-transaction events too: nothing of the batch was applied.
    assert len(outcomes) == len(events)
    assert all(isinstance(o, LedgerUnavailable) for o in outcomes.values()), outcomes
    assert store.commits == 0
    assert _count(path, "transactions") == 0
    assert _count(path, "stations") == 0


async def test_a_bad_event_fails_alone(tmp_path: Path) -> None:
    """One event whose rule raises gets its own error; its neighbours commit."""
    path = tmp_path / "ledger.db"
    store = SqliteStore(str(path))

    class Unknown:
        station_id = "CP-X"

    events: list[Any] = [_start(1), Unknown(), _start(2)]
    _ledger, outcomes = await _submit_to_running_ledger(store, events)
    assert isinstance(outcomes[0], StartDecision)
    assert isinstance(outcomes[2], StartDecision)
    assert isinstance(outcomes[1], KeyError)  # no rule for that event type
    assert _count(path, "transactions") == 2


async def test_submit_after_the_ledger_stopped_is_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "ledger.db"))
    ledger = LedgerActor(store, RULES)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(ledger.run)
            nursery.cancel_scope.cancel()
        with trio.fail_after(5), pytest.raises(LedgerUnavailable):
            await ledger.submit(_start(1))
    finally:
        store.close()
