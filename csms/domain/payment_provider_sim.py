"""`SimulatedCardProvider`: a built-in card provider that behaves like a real one, offline.

It implements the `PaymentProvider` port for tests, demos and the fleet simulator:

- Test card refs that always decline (`CARD_INSUFFICIENT_FUNDS`, `CARD_EXPIRED`) and one whose
  first call per key times out after the provider has done the work (`CARD_TIMEOUT_ONCE`, the
  classic "timeout, but charged"). Any other card ref is a good card.
- Declines (of new holds), timeouts and provider errors (of any call, retries too) at
  configurable rates, drawn from the random source passed in (a seeded `random.Random` or
  `numpy.random.Generator`), so a run is reproducible. A simulated timeout of a new key has
  gone through on the provider's side with probability `applied_on_timeout`; the timeout is
  raised at once, nothing sleeps.
- Idempotency keys: a key answers with its first result, declines included, forever; a key
  reused with other arguments raises `IdempotencyKeyReused`. Keys whose call timed out before
  the work was done, or hit a provider error, are not remembered: a retry does the work.
- Holds expire `hold_ttl` after they were granted (time from the clock passed in); a capture
  may not exceed its hold, a hold is captured at most once (a partial capture releases the
  rest), refunds add up to at most the captured amount.

The methods are coroutines for the port's sake; they never await anything, so no event loop is
needed beyond whatever awaits them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, TypeVar

from csms.domain.money import check_currency, money
from csms.domain.payments import (
    Capture,
    DeclineReason,
    Hold,
    IdempotencyKeyReused,
    PaymentDeclined,
    PaymentTimeout,
    ProviderError,
    Refund,
    Release,
)

CARD_OK = "sim_card_ok"
CARD_INSUFFICIENT_FUNDS = "sim_card_insufficient_funds"
CARD_EXPIRED = "sim_card_expired"
CARD_TIMEOUT_ONCE = "sim_card_timeout_once"

_CARD_DECLINES = {
    CARD_INSUFFICIENT_FUNDS: DeclineReason.INSUFFICIENT_FUNDS,
    CARD_EXPIRED: DeclineReason.CARD_EXPIRED,
}

T = TypeVar("T", Hold, Capture, Release, Refund)


class RandomSource(Protocol):
    """What the simulator draws from: `random.Random` and `numpy.random.Generator` both fit."""

    def random(self) -> float: ...


class HoldStatus(StrEnum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass(slots=True)
class _HoldState:
    hold: Hold
    status: HoldStatus = HoldStatus.AUTHORIZED


@dataclass(slots=True)
class _CaptureState:
    capture: Capture
    card_ref: str
    refunded: Decimal = field(default_factory=Decimal)


@dataclass(frozen=True, slots=True)
class _Answer:
    request: tuple[object, ...]
    result: Hold | Capture | Release | Refund | None
    declined: PaymentDeclined | None


class SimulatedCardProvider:
    def __init__(
        self,
        rng: RandomSource,
        clock: Callable[[], datetime],
        *,
        decline_rate: float = 0.0,
        timeout_rate: float = 0.0,
        error_rate: float = 0.0,
        applied_on_timeout: float = 0.5,
        hold_ttl: timedelta = timedelta(days=7),
    ) -> None:
        if not 0 <= error_rate + timeout_rate <= 1 or min(decline_rate, applied_on_timeout) < 0:
            raise ValueError("rates are probabilities; error_rate + timeout_rate at most 1")
        self._rng = rng
        self._clock = clock
        self.decline_rate = decline_rate
        self.timeout_rate = timeout_rate
        self.error_rate = error_rate
        self.applied_on_timeout = applied_on_timeout
        self.hold_ttl = hold_ttl
        self._answers: dict[str, _Answer] = {}
        self._timed_out_once: set[str] = set()
        self._holds: dict[str, _HoldState] = {}
        self._captures: dict[str, _CaptureState] = {}
        self._ids = 0
        #: Calls that reached the provider, answered or not (a retry counts again).
        self.calls = 0

    # -- the port ------------------------------------------------------------------------------

    async def authorize_hold(
        self, idempotency_key: str, card_ref: str, amount: Decimal, currency: str
    ) -> Hold:
        request = ("authorize_hold", card_ref, amount, currency)
        return self._call(idempotency_key, request, card_ref, Hold, self._authorize)

    async def capture(self, idempotency_key: str, hold_id: str, amount: Decimal) -> Capture:
        card_ref = self._card_of_hold(hold_id)
        request = ("capture", hold_id, amount)
        return self._call(idempotency_key, request, card_ref, Capture, self._capture)

    async def release(self, idempotency_key: str, hold_id: str) -> Release:
        card_ref = self._card_of_hold(hold_id)
        request = ("release", hold_id)
        return self._call(idempotency_key, request, card_ref, Release, self._release)

    async def refund(self, idempotency_key: str, capture_id: str, amount: Decimal) -> Refund:
        state = self._captures.get(capture_id)
        card_ref = state.card_ref if state else ""
        request = ("refund", capture_id, amount)
        return self._call(idempotency_key, request, card_ref, Refund, self._refund)

    # -- what a test may look at ---------------------------------------------------------------

    def hold_status(self, hold_id: str) -> HoldStatus:
        state = self._holds[hold_id]
        if state.status is HoldStatus.AUTHORIZED and self._clock() >= state.hold.expires_at:
            return HoldStatus.EXPIRED
        return state.status

    def charged(self, card_ref: str) -> Decimal:
        """What the card has paid: captured less refunded."""
        return sum(
            (
                s.capture.amount - s.refunded
                for s in self._captures.values()
                if s.card_ref == card_ref
            ),
            Decimal(0),
        )

    # -- idempotency and faults ----------------------------------------------------------------

    def _call(
        self,
        key: str,
        request: tuple[object, ...],
        card_ref: str,
        kind: type[T],
        work: Callable[..., T],
    ) -> T:
        self.calls += 1
        fault, applied = self._rng.random(), self._rng.random()
        if fault < self.error_rate:
            raise ProviderError("simulated provider error")
        answer = self._answers.get(key)
        if fault < self.error_rate + self.timeout_rate:
            if answer is None and applied < self.applied_on_timeout:
                self._answer(key, request, work)
            raise PaymentTimeout(f"simulated timeout for {key!r}")
        if answer is None:
            if card_ref == CARD_TIMEOUT_ONCE and key not in self._timed_out_once:
                self._timed_out_once.add(key)
                self._answer(key, request, work)
                raise PaymentTimeout(f"simulated timeout for {key!r} (done on our side)")
            answer = self._answer(key, request, work)
        if answer.request != request:
            raise IdempotencyKeyReused(f"key {key!r} was used for {answer.request}")
        if answer.declined is not None:
            # A fresh exception each time: raising one instance twice chains its tracebacks.
            raise PaymentDeclined(answer.declined.reason, answer.declined.message)
        assert isinstance(answer.result, kind)
        return answer.result

    def _answer(
        self,
        key: str,
        request: tuple[object, ...],
        work: Callable[..., Hold | Capture | Release | Refund],
    ) -> _Answer:
        try:
            result = work(*request[1:])
        except PaymentDeclined as declined:
            answer = _Answer(request, None, declined)
        else:
            answer = _Answer(request, result, None)
        self._answers[key] = answer
        return answer

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"sim_{prefix}_{self._ids}"

    def _card_of_hold(self, hold_id: str) -> str:
        state = self._holds.get(hold_id)
        return state.hold.card_ref if state else ""

    # -- the work, once per key ----------------------------------------------------------------

    def _authorize(self, card_ref: str, amount: Decimal, currency: str) -> Hold:
        check_currency(currency)
        _check_amount(amount, currency)
        reason = _CARD_DECLINES.get(card_ref)
        if reason is not None:
            raise PaymentDeclined(reason)
        if self._rng.random() < self.decline_rate:
            raise PaymentDeclined(DeclineReason.DO_NOT_HONOR, "simulated decline")
        hold = Hold(self._new_id("hold"), card_ref, amount, currency, self._clock() + self.hold_ttl)
        self._holds[hold.hold_id] = _HoldState(hold)
        return hold

    def _open_hold(self, hold_id: str) -> _HoldState:
        state = self._holds.get(hold_id)
        if state is None:
            raise PaymentDeclined(DeclineReason.UNKNOWN_HOLD, hold_id)
        if state.status is not HoldStatus.AUTHORIZED:
            raise PaymentDeclined(DeclineReason.HOLD_NOT_ACTIVE, f"{hold_id} is {state.status}")
        if self._clock() >= state.hold.expires_at:
            raise PaymentDeclined(DeclineReason.HOLD_EXPIRED, hold_id)
        return state

    def _capture(self, hold_id: str, amount: Decimal) -> Capture:
        state = self._open_hold(hold_id)
        hold = state.hold
        _check_amount(amount, hold.currency)
        if amount > hold.amount:
            raise PaymentDeclined(
                DeclineReason.AMOUNT_EXCEEDS_HOLD, f"{amount} > {hold.amount} {hold.currency}"
            )
        state.status = HoldStatus.CAPTURED
        capture = Capture(self._new_id("capture"), hold_id, amount, hold.currency)
        self._captures[capture.capture_id] = _CaptureState(capture, hold.card_ref)
        return capture

    def _release(self, hold_id: str) -> Release:
        self._open_hold(hold_id).status = HoldStatus.RELEASED
        return Release(hold_id)

    def _refund(self, capture_id: str, amount: Decimal) -> Refund:
        state = self._captures.get(capture_id)
        if state is None:
            raise PaymentDeclined(DeclineReason.UNKNOWN_CAPTURE, capture_id)
        currency = state.capture.currency
        _check_amount(amount, currency)
        if state.refunded + amount > state.capture.amount:
            raise PaymentDeclined(
                DeclineReason.AMOUNT_EXCEEDS_CAPTURED,
                f"{state.refunded} refunded, {amount} more asked, {state.capture.amount} captured",
            )
        state.refunded += amount
        return Refund(self._new_id("refund"), capture_id, amount, currency)


def _check_amount(amount: Decimal, currency: str) -> None:
    if not amount.is_finite() or amount <= 0 or money(amount, currency) != amount:
        raise PaymentDeclined(DeclineReason.INVALID_AMOUNT, f"{amount} {currency}")
