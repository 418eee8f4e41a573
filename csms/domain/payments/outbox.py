"""Running the outbox: perform an action, turn its outcome into postings and next actions.

An I/O worker runs each action (`perform`), records the outcome and feeds it back
(`apply_outcome`), which gives the postings to record and the next actions. A timeout or a
retryable provider error runs the same action again with the same key after `retry_delay`; a
declined capture releases its hold and leaves the amount on the receivable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from csms.domain.payments.actions import (
    ActionOutcome,
    AuthorizeHold,
    CaptureHold,
    Declined,
    Failed,
    PaymentAction,
    RefundCapture,
    ReleaseHold,
    Succeeded,
    TimedOut,
)
from csms.domain.payments.provider import (
    Capture,
    DeclineReason,
    Hold,
    IdempotencyKeyReused,
    PaymentDeclined,
    PaymentProvider,
    PaymentTimeout,
    ProviderError,
    Refund,
    Release,
)
from csms.domain.postings import (
    PROVIDER_CLEARING,
    Posting,
    PostingKind,
    driver_receivable,
    transfer,
)


async def perform(provider: PaymentProvider, action: PaymentAction) -> ActionOutcome:
    """Run one action against the provider; every answer, errors included, as an outcome."""
    key = action.idempotency_key
    try:
        result: Hold | Capture | Release | Refund
        match action:
            case AuthorizeHold():
                result = await provider.authorize_hold(
                    key, action.card_ref, action.amount, action.currency
                )
            case CaptureHold():
                result = await provider.capture(key, action.hold_id, action.amount)
            case ReleaseHold():
                result = await provider.release(key, action.hold_id)
            case RefundCapture():
                result = await provider.refund(key, action.capture_id, action.amount)
    except PaymentDeclined as declined:
        return Declined(declined.reason, declined.message)
    except PaymentTimeout:
        return TimedOut()
    except IdempotencyKeyReused as error:
        return Failed(str(error), retryable=False)
    except ProviderError as error:
        return Failed(str(error), retryable=True)
    return Succeeded(result)


class ActionStatus(StrEnum):
    #: The outcome is final; record the follow-up.
    DONE = "done"
    #: Run the same action again, with the same key, after a back-off.
    RETRY = "retry"
    #: Neither final nor worth retrying: an operator has to look.
    STUCK = "stuck"


@dataclass(frozen=True, slots=True)
class Settlement:
    """What to record (postings) and what to ask the provider next (actions)."""

    postings: tuple[Posting, ...] = ()
    actions: tuple[PaymentAction, ...] = ()


@dataclass(frozen=True, slots=True)
class FollowUp:
    status: ActionStatus
    postings: tuple[Posting, ...] = ()
    actions: tuple[PaymentAction, ...] = ()


#: A capture declined for these reasons leaves no open hold to release.
_NO_OPEN_HOLD = frozenset(
    {DeclineReason.HOLD_EXPIRED, DeclineReason.HOLD_NOT_ACTIVE, DeclineReason.UNKNOWN_HOLD}
)


def apply_outcome(action: PaymentAction, outcome: ActionOutcome, at: datetime) -> FollowUp:
    """The postings and next actions an outcome calls for.

    `at` is when the outcome was recorded; replaying a stored outcome with its stored time
    gives the same postings, so recording them again is a no-op.
    """
    match outcome:
        case TimedOut():
            return FollowUp(ActionStatus.RETRY)
        case Failed(retryable=retryable):
            return FollowUp(ActionStatus.RETRY if retryable else ActionStatus.STUCK)
        case Declined(reason=reason):
            if isinstance(action, CaptureHold) and reason not in _NO_OPEN_HOLD:
                release = ReleaseHold(action.stage, action.driver_id, action.hold_id)
                return FollowUp(ActionStatus.DONE, actions=(release,))
            # A declined hold, release or refund: the receivable keeps what is owed.
            return FollowUp(ActionStatus.DONE)
        case Succeeded(result=result):
            return FollowUp(ActionStatus.DONE, *_on_success(action, result, at))


def _on_success(
    action: PaymentAction, result: Hold | Capture | Release | Refund, at: datetime
) -> tuple[tuple[Posting, ...], tuple[PaymentAction, ...]]:
    key, receivable = action.idempotency_key, driver_receivable(action.driver_id)
    if isinstance(action, AuthorizeHold) and isinstance(result, Hold):
        if not action.then_capture:
            return (), ()
        capture = CaptureHold(
            action.stage, action.driver_id, result.hold_id, result.amount, result.currency
        )
        return (), (capture,)
    if isinstance(action, CaptureHold) and isinstance(result, Capture):
        memo = f"Card capture {result.capture_id} for {action.stage}"
        posting = transfer(
            key,
            at,
            PostingKind.CARD_CAPTURE,
            memo,
            result.currency,
            {PROVIDER_CLEARING: result.amount},
            {receivable: result.amount},
        )
        return (posting,), ()
    if isinstance(action, RefundCapture) and isinstance(result, Refund):
        memo = f"Card refund {result.refund_id} for {action.stage}"
        posting = transfer(
            key,
            at,
            PostingKind.CARD_REFUND,
            memo,
            result.currency,
            {receivable: result.amount},
            {PROVIDER_CLEARING: result.amount},
        )
        return (posting,), ()
    if isinstance(action, ReleaseHold) and isinstance(result, Release):
        return (), ()
    raise TypeError(f"{type(result).__name__} is no result of {type(action).__name__}")


def retry_delay(attempt: int, base: timedelta = timedelta(seconds=2)) -> timedelta:
    """Back-off after failed attempt number `attempt` (1, 2, ...): doubling, at most an hour."""
    return min(base * (1 << min(max(attempt - 1, 0), 20)), timedelta(hours=1))
