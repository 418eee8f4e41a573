"""Prepaid wallet: top-ups, the check before a session starts, the payment at its end.

Top-ups credit the wallet; a session may start while the wallet holds at least the minimum
(`wallet_authorization`); the session's full cost is debited at its end. A wallet thus goes
negative by at most what that session cost beyond the balance (its overrun), and no new
session starts until a top-up brings it back to the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from csms.domain.payments.costs import ZERO, SessionCost, session_charge_posting
from csms.domain.payments.outbox import Settlement
from csms.domain.postings import (
    CASH_TOPUPS,
    Posting,
    PostingKind,
    driver_receivable,
    driver_wallet,
    transfer,
)


@dataclass(frozen=True, slots=True)
class PrepaidWallet:
    pass


@dataclass(frozen=True, slots=True)
class WalletAuthorization:
    allowed: bool
    #: Balance less what the driver's running sessions are expected to cost.
    available: Decimal
    minimum: Decimal
    #: How much a top-up must add before a session may start (zero when allowed).
    shortfall: Decimal


def wallet_authorization(
    balance: Decimal, minimum: Decimal, reserved: Decimal = ZERO
) -> WalletAuthorization:
    """May a wallet-paid session start? Only while `balance - reserved >= minimum`.

    `reserved` is what the driver's sessions still running are expected to cost, so parallel
    sessions cannot each count the same money. A minimum above zero keeps a session from
    starting on an empty wallet; a negative one is a credit line.
    """
    available = balance - reserved
    allowed = available >= minimum
    return WalletAuthorization(
        allowed, available, minimum, ZERO if allowed else minimum - available
    )


def wallet_balance(raw_balance: Decimal) -> Decimal:
    """The driver's view of `driver:{id}:wallet` (credit-normal): positive while in credit."""
    return -raw_balance


def topup_posting(
    key: str,
    driver_id: str,
    amount: Decimal,
    currency: str,
    at: datetime,
    source: str = CASH_TOPUPS,
) -> Posting:
    """Money in for the wallet; `key` is the top-up's own reference (a payment id)."""
    if amount <= 0:
        raise ValueError("a top-up adds a positive amount")
    return transfer(
        key,
        at,
        PostingKind.TOPUP,
        f"Wallet top-up for {driver_id}",
        currency,
        {source: amount},
        {driver_wallet(driver_id): amount},
    )


def pay_from_wallet(
    key: str, driver_id: str, amount: Decimal, currency: str, at: datetime
) -> Posting:
    """The wallet pays what the receivable holds; the wallet may go below zero doing so."""
    return transfer(
        key,
        at,
        PostingKind.WALLET_PAYMENT,
        f"Paid from the wallet of {driver_id}",
        currency,
        {driver_wallet(driver_id): amount},
        {driver_receivable(driver_id): amount},
    )


def settle_wallet_session(cost: SessionCost) -> Settlement:
    charge = session_charge_posting(cost)
    if charge is None:
        return Settlement()
    payment = pay_from_wallet(
        f"{cost.reference}:wallet",
        cost.driver_id,
        cost.amount_incl_vat,
        cost.currency,
        cost.ended_at,
    )
    return Settlement((charge, payment))
