"""The card payment provider port (`PaymentProvider`), its results and its errors.

The rules never call the provider: the outbox (`csms.domain.payments.outbox.perform`) does, and
turns every answer, errors included, into an outcome. A decline is final for its key; a
timeout or a provider error may be retried with the same key, except `IdempotencyKeyReused`,
which is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol


class DeclineReason(StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CARD_EXPIRED = "card_expired"
    DO_NOT_HONOR = "do_not_honor"
    INVALID_AMOUNT = "invalid_amount"
    UNKNOWN_HOLD = "unknown_hold"
    HOLD_EXPIRED = "hold_expired"
    #: Already captured or released.
    HOLD_NOT_ACTIVE = "hold_not_active"
    AMOUNT_EXCEEDS_HOLD = "amount_exceeds_hold"
    UNKNOWN_CAPTURE = "unknown_capture"
    AMOUNT_EXCEEDS_CAPTURED = "amount_exceeds_captured"


class PaymentError(Exception):
    pass


class PaymentDeclined(PaymentError):
    """The provider said no; final for this key."""

    def __init__(self, reason: DeclineReason, message: str = "") -> None:
        super().__init__(f"{reason.value}: {message}" if message else reason.value)
        self.reason = reason
        self.message = message


class PaymentTimeout(PaymentError):
    """No answer: the operation may or may not have happened. Retry with the same key."""


class ProviderError(PaymentError):
    """The provider failed; the same key may be retried."""


class IdempotencyKeyReused(ProviderError):
    """The key was used before with other parameters: a bug, never worth retrying."""


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    card_ref: str
    amount: Decimal
    currency: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Capture:
    capture_id: str
    hold_id: str
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Release:
    hold_id: str


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    capture_id: str
    amount: Decimal
    currency: str


class PaymentProvider(Protocol):
    """A card payment provider. Every call is idempotent per key: the same key and arguments
    give the same result, even when an earlier call with that key timed out."""

    async def authorize_hold(
        self, idempotency_key: str, card_ref: str, amount: Decimal, currency: str
    ) -> Hold: ...

    async def capture(self, idempotency_key: str, hold_id: str, amount: Decimal) -> Capture: ...

    async def release(self, idempotency_key: str, hold_id: str) -> Release: ...

    async def refund(self, idempotency_key: str, capture_id: str, amount: Decimal) -> Refund: ...
