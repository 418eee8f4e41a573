"""The ledger actor: the single writer of the ledger, with group commit.

Connection actors `submit` domain events over one bounded channel (backpressure when full).
The actor takes everything that has arrived, runs it through the ledger rules in one
database transaction, commits durably, and only then answers transaction data (start, meter
values, stop). Nothing is answered that a crash could lose.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import structlog
import trio

from csms.domain.events import ANSWERED_AFTER_COMMIT, DomainEvent
from csms.domain.ledger import LedgerRules
from csms.domain.replies import Reply
from csms.runtime.slots import ReplySlot
from csms.storage.base import EventOutcome, Store

log = structlog.get_logger("csms.ledger")


#: Told of every durable batch: its events with their replies, and the seconds it took.
CommitObserver = Callable[[Sequence[tuple[DomainEvent, Reply]], float], None]


class LedgerUnavailable(Exception):
    """The ledger could not record the event; nothing of it was committed."""


@dataclass(slots=True)
class _Request:
    event: DomainEvent
    slot: ReplySlot[Reply]


@dataclass
class LedgerStats:
    batches: int = 0
    events: int = 0
    largest_batch: int = 0
    failed_batches: int = 0


class LedgerActor:
    def __init__(
        self,
        store: Store,
        rules: LedgerRules,
        *,
        queue_size: int = 8192,
        max_batch: int = 1024,
        commit_in_thread: bool = True,
        on_commit: CommitObserver | None = None,
    ) -> None:
        self._store = store
        self._on_commit = on_commit
        self._rules = rules
        self._max_batch = max_batch
        # Virtual time (a MockClock that jumps when the loop is idle) must not see the loop
        # idle while a thread commits: it would jump past every deadline. Commit inline there.
        self._commit_in_thread = commit_in_thread
        self._send, self._receive = trio.open_memory_channel[_Request](queue_size)
        self.stats = LedgerStats()

    async def submit(self, event: DomainEvent) -> Reply:
        """Record an event; return the ledger's reply once it is durable."""
        slot: ReplySlot[Reply] = ReplySlot()
        try:
            await self._send.send(_Request(event, slot))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise LedgerUnavailable("the ledger has stopped") from None
        return await slot.wait()

    def queue_statistics(self) -> trio.MemoryChannelStatistics:
        return self._send.statistics()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with self._receive:
            while True:
                batch = [await self._receive.receive()]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self._commit(batch)

    async def _commit(self, batch: list[_Request]) -> None:
        # The rules are CPU work and run here, on the event loop: on a worker thread every
        # store call would hand the GIL back and forth with the loop. Only the commit, which
        # waits for the disk, goes to a thread. That holds on PostgreSQL too, although there
        # each statement also waits a loopback round trip: measured with
        # `loadtest.bench_workers`, the batch on a worker thread gave 0.69x the throughput.
        started = time.perf_counter()
        work = [partial(self._rules.apply, event=request.event) for request in batch]
        try:
            outcomes = self._store.apply_batch(work)
        except Exception as exc:
            self._fail(batch, exc)
            return
        durable_only: list[tuple[_Request, EventOutcome]] = []
        for request, outcome in zip(batch, outcomes, strict=True):
            if isinstance(request.event, ANSWERED_AFTER_COMMIT):
                durable_only.append((request, outcome))
            else:
                # Heartbeat, status, authorize: answered before the commit.
                self._deliver(request, outcome)
        try:
            if self._commit_in_thread:
                await trio.to_thread.run_sync(self._store.commit)
            else:
                self._store.commit()
                await trio.lowlevel.checkpoint()
        except Exception as exc:
            self._store.rollback()
            self._fail([request for request, _ in durable_only], exc)
            return
        self.stats.batches += 1
        self.stats.events += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for request, outcome in durable_only:
            self._deliver(request, outcome)
        if self._on_commit is not None:
            committed = [
                (r.event, o.value) for r, o in zip(batch, outcomes, strict=True) if o.error is None
            ]
            try:
                self._on_commit(committed, time.perf_counter() - started)
            except Exception as exc:  # an observer's bug must not stop the ledger
                log.error("commit observer failed", error=repr(exc))

    def _fail(self, requests: list[_Request], exc: Exception) -> None:
        self.stats.failed_batches += 1
        log.error("ledger commit failed", error=repr(exc), events=len(requests))
        for request in requests:
            request.slot.fail(LedgerUnavailable(f"the ledger could not commit: {exc}"))

    @staticmethod
    def _deliver(request: _Request, outcome: EventOutcome) -> None:
        if outcome.error is not None:
            log.error(
                "ledger rule failed",
                # Not `event=`: that is structlog's name for the message itself.
                event_type=type(request.event).__name__,
                error=repr(outcome.error),
            )
            request.slot.fail(outcome.error)
        else:
            request.slot.set(outcome.value)
