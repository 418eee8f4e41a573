"""The ledger actor: the single writer of the ledger, with group commit.

Connection actors `submit` domain events over one bounded channel (backpressure when full).
The actor takes everything that has arrived, runs it through the ledger rules in one
database transaction on a worker thread, commits durably, and only then fills each reply
slot. Nothing is answered that a crash could lose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import structlog
import trio

from csms.domain.events import DomainEvent
from csms.domain.ledger import LedgerRules
from csms.domain.ports import LedgerTx
from csms.domain.replies import Reply
from csms.runtime.slots import ReplySlot
from csms.storage.base import EventOutcome

log = structlog.get_logger("csms.ledger")


class BatchStore(Protocol):
    """What the ledger actor needs of a store: run work in one durable transaction."""

    def run_batch(self, work: Sequence[Callable[[LedgerTx], Any]]) -> list[EventOutcome]: ...


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
        store: BatchStore,
        rules: LedgerRules,
        *,
        queue_size: int = 8192,
        max_batch: int = 1024,
    ) -> None:
        self._store = store
        self._rules = rules
        self._max_batch = max_batch
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
        work = [partial(self._rules.apply, event=request.event) for request in batch]
        try:
            outcomes = await trio.to_thread.run_sync(self._store.run_batch, work)
        except Exception as exc:
            self.stats.failed_batches += 1
            log.error("ledger commit failed", error=repr(exc), events=len(batch))
            for request in batch:
                request.slot.fail(LedgerUnavailable(f"the ledger could not commit: {exc}"))
            return
        self.stats.batches += 1
        self.stats.events += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for request, outcome in zip(batch, outcomes, strict=True):
            if outcome.error is not None:
                log.error(
                    "ledger rule failed",
                    event=type(request.event).__name__,
                    error=repr(outcome.error),
                )
                request.slot.fail(outcome.error)
            else:
                request.slot.set(outcome.value)
