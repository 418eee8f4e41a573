"""The double-entry journal: money, the chart of accounts, postings, reversals and balances.

A posting moves money between accounts. Its legs carry signed amounts, debit positive and
credit negative, and sum to zero in every currency; an unbalanced posting cannot be built.
Postings are recorded once per idempotency key and never edited: a correction is a reversal,
a new posting with every leg negated, keyed from the one it reverses.

`Journal` is the in-memory implementation and the reference semantics for the storage
adapters: same key and same content is a no-op, same key and other content is a conflict.

Money is `Decimal`, held at the currency's ISO 4217 minor unit (two places unless the table
below says otherwise). `money` rounds half up (away from zero at exactly half a minor unit,
"commercial rounding"); the rules round once per line item, never a running total, so totals
are exact sums of rounded lines. A leg refuses an amount finer than the minor unit rather than
round it, because rounding legs one by one could unbalance a posting silently.

Chart of accounts (raw balances are debit positive; credit-normal accounts read negative when
they hold money):

    driver:{id}:wallet       liability, credit-normal: prepaid money held for the driver
    driver:{id}:receivable   asset, debit-normal: billed to the driver and not yet paid
                             (negative: a credit the driver has with us)
    provider:card:clearing   asset, debit-normal: captured on cards at the payment provider,
                             not yet paid out to us
    cash:topups              asset, debit-normal: money received for wallet top-ups
    revenue:charging         income, credit-normal: charging sales excl. VAT
    subscription:fees        income, credit-normal: subscription fees excl. VAT
    tax:vat                  liability, credit-normal: VAT collected, owed to the tax office

A card hold is not a movement of money, so it is not posted: holds live with the payment
actions (see `csms.domain.payments`), and the journal holds only what really moved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum, StrEnum

from csms.domain.money import money

MAX_KEY_LENGTH = 200


def _check_decimal(value: object, what: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{what} must be a finite Decimal, got {value!r}")
    return value


# -- the chart of accounts --------------------------------------------------------------------


class AccountType(StrEnum):
    DRIVER_WALLET = "driver wallet"
    DRIVER_RECEIVABLE = "driver receivable"
    PROVIDER_CLEARING = "provider clearing"
    CASH_TOPUPS = "cash for top-ups"
    REVENUE_CHARGING = "charging revenue"
    SUBSCRIPTION_FEES = "subscription fees"
    TAX_VAT = "VAT payable"


class NormalSide(Enum):
    """The side on which an account's balance normally sits."""

    DEBIT = 1
    CREDIT = -1


PROVIDER_CLEARING = "provider:card:clearing"
CASH_TOPUPS = "cash:topups"
REVENUE_CHARGING = "revenue:charging"
SUBSCRIPTION_FEES = "subscription:fees"
TAX_VAT = "tax:vat"

_FIXED_ACCOUNTS: Mapping[str, AccountType] = {
    PROVIDER_CLEARING: AccountType.PROVIDER_CLEARING,
    CASH_TOPUPS: AccountType.CASH_TOPUPS,
    REVENUE_CHARGING: AccountType.REVENUE_CHARGING,
    SUBSCRIPTION_FEES: AccountType.SUBSCRIPTION_FEES,
    TAX_VAT: AccountType.TAX_VAT,
}
_DRIVER_ACCOUNTS: Mapping[str, AccountType] = {
    "wallet": AccountType.DRIVER_WALLET,
    "receivable": AccountType.DRIVER_RECEIVABLE,
}

NORMAL_SIDE: Mapping[AccountType, NormalSide] = {
    AccountType.DRIVER_WALLET: NormalSide.CREDIT,
    AccountType.DRIVER_RECEIVABLE: NormalSide.DEBIT,
    AccountType.PROVIDER_CLEARING: NormalSide.DEBIT,
    AccountType.CASH_TOPUPS: NormalSide.DEBIT,
    AccountType.REVENUE_CHARGING: NormalSide.CREDIT,
    AccountType.SUBSCRIPTION_FEES: NormalSide.CREDIT,
    AccountType.TAX_VAT: NormalSide.CREDIT,
}


class UnknownAccount(ValueError):
    def __init__(self, account: str) -> None:
        super().__init__(f"{account!r} is not an account of the chart")
        self.account = account


def check_key_part(value: str, what: str) -> str:
    # Account names and keys are joined with colons; a colon or blank inside a part would
    # make them ambiguous to read back.
    if not value or ":" in value or not value.isprintable() or " " in value:
        raise ValueError(f"{what} must be non-empty, without ':' or blanks: {value!r}")
    return value


def check_driver_id(driver_id: str) -> str:
    return check_key_part(driver_id, "driver id")


def driver_wallet(driver_id: str) -> str:
    return f"driver:{check_driver_id(driver_id)}:wallet"


def driver_receivable(driver_id: str) -> str:
    return f"driver:{check_driver_id(driver_id)}:receivable"


def account_type(account: str) -> AccountType:
    """The chart's type of `account`; `UnknownAccount` for a name outside the chart."""
    fixed = _FIXED_ACCOUNTS.get(account)
    if fixed is not None:
        return fixed
    parts = account.split(":")
    if len(parts) == 3 and parts[0] == "driver" and parts[2] in _DRIVER_ACCOUNTS:
        try:
            check_driver_id(parts[1])
        except ValueError:
            raise UnknownAccount(account) from None
        return _DRIVER_ACCOUNTS[parts[2]]
    raise UnknownAccount(account)


def normal_balance(account: str, raw_balance: Decimal) -> Decimal:
    """The balance as the account's owner reads it: positive on its normal side."""
    return raw_balance * NORMAL_SIDE[account_type(account)].value


def account_driver(account: str) -> str | None:
    """The driver a driver account belongs to, None for the network's own accounts."""
    account_type(account)
    return account.split(":")[1] if account.startswith("driver:") else None


# -- postings ---------------------------------------------------------------------------------


class PostingKind(StrEnum):
    TOPUP = "topup"
    SESSION_CHARGE = "session_charge"
    WALLET_PAYMENT = "wallet_payment"
    CARD_CAPTURE = "card_capture"
    CARD_REFUND = "card_refund"
    CREDIT_NOTE = "credit_note"
    SUBSCRIPTION_CHARGE = "subscription_charge"
    ADJUSTMENT = "adjustment"
    REVERSAL = "reversal"


class UnbalancedPosting(ValueError):
    pass


class PostingConflict(ValueError):
    """The key is taken by a posting with other content: a retry must carry the same posting."""

    def __init__(self, existing: Posting, attempted: Posting) -> None:
        super().__init__(
            f"idempotency key {existing.key!r} is already recorded with other content: "
            f"recorded {existing!r}, attempted {attempted!r}"
        )
        self.existing = existing
        self.attempted = attempted


class UnknownPosting(KeyError):
    pass


class InvalidReversal(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a posting: `amount` debits `account` when positive, credits it when negative."""

    account: str
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        account_type(self.account)
        _check_decimal(self.amount, "leg amount")
        if self.amount == 0:
            raise ValueError(f"a leg moves money; zero on {self.account}")
        rounded = money(self.amount, self.currency)
        if rounded != self.amount:
            raise ValueError(
                f"{self.amount} {self.currency} is finer than the currency's minor unit; "
                "round it with money() before posting"
            )
        # One spelling per amount ("5" and "5.00" alike read "5.00"), so stored text compares.
        object.__setattr__(self, "amount", rounded)

    def negated(self) -> Leg:
        return Leg(self.account, -self.amount, self.currency)


@dataclass(frozen=True, slots=True)
class Posting:
    """A balanced journal entry, recorded once under its idempotency `key`."""

    key: str
    at: datetime
    kind: PostingKind
    memo: str
    legs: tuple[Leg, ...]
    #: The key of the posting this one reverses (kind REVERSAL only).
    reverses: str | None = None

    def __post_init__(self) -> None:
        if not self.key or len(self.key) > MAX_KEY_LENGTH or not self.key.isprintable():
            raise ValueError(f"posting key must be 1..{MAX_KEY_LENGTH} printable characters")
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("posting time must be timezone-aware")
        object.__setattr__(self, "legs", tuple(self.legs))
        if len(self.legs) < 2:
            raise UnbalancedPosting(f"posting {self.key!r} needs at least two legs")
        unbalanced = {c: s for c, s in _sums(self.legs).items() if s != 0}
        if unbalanced:
            raise UnbalancedPosting(f"posting {self.key!r} does not balance: {unbalanced}")
        if (self.kind is PostingKind.REVERSAL) != (self.reverses is not None):
            raise ValueError("a reversal, and only a reversal, names the posting it reverses")

    @property
    def currencies(self) -> frozenset[str]:
        return frozenset(leg.currency for leg in self.legs)

    def same_content(self, other: Posting) -> bool:
        """Equal but for the order of the legs."""
        return (
            self.key == other.key
            and self.at == other.at
            and self.kind is other.kind
            and self.memo == other.memo
            and self.reverses == other.reverses
            and _canonical(self.legs) == _canonical(other.legs)
        )

    def amount_on(self, account: str, currency: str) -> Decimal:
        """The net of this posting's legs on `account` (debit positive)."""
        return sum(
            (leg.amount for leg in self.legs if (leg.account, leg.currency) == (account, currency)),
            Decimal(0),
        )


def _sums(legs: Iterable[Leg]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = {}
    for leg in legs:
        sums[leg.currency] = sums.get(leg.currency, Decimal(0)) + leg.amount
    return sums


def _canonical(legs: Iterable[Leg]) -> list[tuple[str, str, Decimal]]:
    return sorted((leg.currency, leg.account, leg.amount) for leg in legs)


def transfer(
    key: str,
    at: datetime,
    kind: PostingKind,
    memo: str,
    currency: str,
    debits: Mapping[str, Decimal],
    credits: Mapping[str, Decimal],
) -> Posting:
    """A posting from positive amounts per side; zero amounts are left out."""
    legs = [Leg(a, amount, currency) for a, amount in debits.items() if amount != 0]
    legs += [Leg(a, -amount, currency) for a, amount in credits.items() if amount != 0]
    return Posting(key, at, kind, memo, tuple(legs))


def reversal_key(key: str) -> str:
    return f"{key}:reversal"


def reversal_of(original: Posting, at: datetime, reason: str = "") -> Posting:
    """The posting that undoes `original`: every leg negated, keyed from it."""
    if original.kind is PostingKind.REVERSAL:
        raise InvalidReversal(f"{original.key!r} is a reversal; post anew instead of reversing it")
    memo = f"Reversal of {original.key}" + (f": {reason}" if reason else "")
    legs = tuple(leg.negated() for leg in original.legs)
    return Posting(reversal_key(original.key), at, PostingKind.REVERSAL, memo, legs, original.key)


def plan_recording(
    postings: Iterable[Posting], lookup: Callable[[str], Posting | None]
) -> tuple[tuple[Posting, ...], tuple[Posting, ...]]:
    """The one rule of recording, for every journal (in memory or in a database): what each of
    `postings` comes to, and the new ones to store, all or nothing.

    A key already recorded (`lookup`) or earlier in the batch with the same content comes to
    the existing posting; with other content it raises `PostingConflict`. A reversal must be
    the exact negation of a posting recorded or in the batch (`InvalidReversal`).
    """
    batch: dict[str, Posting] = {}
    results: list[Posting] = []
    for posting in postings:
        existing = batch.get(posting.key) or lookup(posting.key)
        if existing is not None:
            if not existing.same_content(posting):
                raise PostingConflict(existing, posting)
            results.append(existing)
            continue
        if posting.reverses is not None:
            original = batch.get(posting.reverses) or lookup(posting.reverses)
            if original is None:
                raise InvalidReversal(
                    f"{posting.key!r} reverses unknown posting {posting.reverses!r}"
                )
            expected = reversal_of(original, posting.at)
            if posting.key != expected.key or _canonical(posting.legs) != _canonical(expected.legs):
                raise InvalidReversal(
                    f"{posting.key!r} is not the exact reversal of {original.key!r}"
                )
        batch[posting.key] = posting
        results.append(posting)
    return tuple(results), tuple(batch.values())


# -- the journal ------------------------------------------------------------------------------


class Journal:
    """In-memory journal: idempotent recording, reversals, balances per account and currency."""

    def __init__(self) -> None:
        self._postings: dict[str, Posting] = {}
        self._balances: dict[tuple[str, str], Decimal] = {}

    def __len__(self) -> int:
        return len(self._postings)

    def get(self, key: str) -> Posting | None:
        return self._postings.get(key)

    def postings(self) -> tuple[Posting, ...]:
        """Every posting, in the order recorded."""
        return tuple(self._postings.values())

    def record(self, posting: Posting) -> Posting:
        """Record `posting`, or return the one already under its key if it is the same."""
        return self.record_many((posting,))[0]

    def record_many(self, postings: Iterable[Posting]) -> tuple[Posting, ...]:
        """Record all of `postings` or, on any conflict or bad reversal, none of them."""
        results, new = plan_recording(postings, self._postings.get)
        for posting in new:
            self._postings[posting.key] = posting
            for leg in posting.legs:
                slot = (leg.account, leg.currency)
                self._balances[slot] = self._balances.get(slot, Decimal(0)) + leg.amount
        return results

    def reverse(self, key: str, at: datetime, reason: str = "") -> Posting:
        """Reverse the posting under `key`; reversing it again returns the first reversal."""
        done = self._postings.get(reversal_key(key))
        if done is not None:
            return done
        original = self._postings.get(key)
        if original is None:
            raise UnknownPosting(key)
        return self.record(reversal_of(original, at, reason))

    def is_reversed(self, key: str) -> bool:
        return reversal_key(key) in self._postings

    def balance(self, account: str, currency: str) -> Decimal:
        """The account's raw balance in `currency`, debit positive."""
        return self._balances.get((account, currency), money(Decimal(0), currency))

    def balances(self) -> dict[tuple[str, str], Decimal]:
        """Every (account, currency) that has seen a leg, with its raw balance."""
        return dict(self._balances)

    def totals_by_currency(self) -> dict[str, Decimal]:
        """Sum of all balances per currency: zero for every currency, by construction."""
        totals: dict[str, Decimal] = {}
        for (_, currency), amount in self._balances.items():
            totals[currency] = totals.get(currency, Decimal(0)) + amount
        return totals
