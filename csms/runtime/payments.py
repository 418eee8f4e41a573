"""The payments worker: runs the payment outbox's provider calls after the ledger commits them.

The ledger never calls a card provider inside its transaction (a network call there would hold
every charger's reply hostage). It writes `PaymentAction`s to the outbox in the same commit as
the session; this task takes the due ones, calls the provider (`perform`, bounded by a timeout
that counts as the provider's), and records the outcome, its postings and the next actions in
one transaction on its own connection. A crash between the call and that record only repeats
the call, with the same idempotency key, so nothing is charged twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TypeVar

import structlog
import trio

from csms.config import Settings
from csms.domain.payment_provider_sim import SimulatedCardProvider
from csms.domain.payments import (
    ActionOutcome,
    PaymentProvider,
    TimedOut,
    apply_outcome,
    perform,
    retry_delay,
)
from csms.storage.sqlite import SqliteStore

log = structlog.get_logger("csms.payments")

T = TypeVar("T")

#: Longest a provider call may take before it counts as a timeout (and is retried).
CALL_TIMEOUT_S = 30.0


def provider_from(settings: Settings, clock: Callable[[], datetime]) -> PaymentProvider | None:
    if settings.payment_provider == "none":
        return None
    return SimulatedCardProvider(
        random.Random(),
        clock,
        decline_rate=settings.payment_decline_rate,
        timeout_rate=settings.payment_timeout_rate,
    )


async def run_payments(
    settings: Settings,
    provider: PaymentProvider,
    wall_clock: Callable[[], datetime],
    *,
    in_thread: bool = True,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    store = SqliteStore.from_url(settings.database_url)  # SQLite or PostgreSQL

    async def on_store(call: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(call) if in_thread else call()

    try:
        task_status.started()
        while True:
            due = await on_store(lambda: store.due_payment_actions(wall_clock()))
            for action, attempts in due:
                outcome: ActionOutcome = TimedOut()
                with trio.move_on_after(CALL_TIMEOUT_S):
                    outcome = await perform(provider, action)
                now = wall_clock()
                follow_up = apply_outcome(action, outcome, now)
                attempt = attempts + 1
                retry_at = now + retry_delay(attempt)
                await on_store(
                    partial(
                        store.record_payment_outcome,
                        action,
                        attempt,
                        outcome,
                        follow_up,
                        now,
                        retry_at,
                    )
                )
                log.info(
                    "payment action",
                    key=action.idempotency_key,
                    outcome=type(outcome).__name__,
                    status=follow_up.status.value,
                )
            if not due:
                await trio.sleep(settings.payment_poll_interval)
    finally:
        store.close()
