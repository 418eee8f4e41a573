"""Properties of the journal: whatever is posted and reversed, every currency sums to zero."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.domain.money import minor_unit
from csms.domain.postings import (
    CASH_TOPUPS,
    PROVIDER_CLEARING,
    REVENUE_CHARGING,
    SUBSCRIPTION_FEES,
    TAX_VAT,
    Journal,
    Leg,
    Posting,
    PostingConflict,
    PostingKind,
    driver_receivable,
    driver_wallet,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNTS = [
    CASH_TOPUPS,
    PROVIDER_CLEARING,
    REVENUE_CHARGING,
    SUBSCRIPTION_FEES,
    TAX_VAT,
    *(driver_wallet(d) for d in ("d1", "d2", "d3")),
    *(driver_receivable(d) for d in ("d1", "d2", "d3")),
]
CURRENCIES = ["EUR", "JPY", "KWD"]


@st.composite
def legs_in(draw: st.DrawFn, currency: str) -> list[Leg]:
    """Two to five nonzero legs in `currency` that balance: the last one takes the rest."""
    unit = Decimal(1).scaleb(-minor_unit(currency))
    cents = draw(st.lists(st.integers(-(10**9), 10**9).filter(bool), min_size=1, max_size=4))
    if sum(cents) != 0:
        cents.append(-sum(cents))
    accounts = draw(st.lists(st.sampled_from(ACCOUNTS), min_size=len(cents), max_size=len(cents)))
    return [Leg(a, c * unit, currency) for a, c in zip(accounts, cents, strict=True)]


@st.composite
def postings(draw: st.DrawFn, key: str) -> Posting:
    currencies = draw(st.lists(st.sampled_from(CURRENCIES), min_size=1, max_size=2, unique=True))
    legs = [leg for c in currencies for leg in draw(legs_in(c))]
    at = START + timedelta(minutes=draw(st.integers(0, 60 * 24 * 31)))
    kind = draw(st.sampled_from([k for k in PostingKind if k is not PostingKind.REVERSAL]))
    return Posting(key, at, kind, draw(st.text(max_size=20)), tuple(legs))


@dataclass(frozen=True)
class Post:
    posting: Posting


@dataclass(frozen=True)
class Reverse:
    index: int


@dataclass(frozen=True)
class Repost:
    index: int


@st.composite
def operations(draw: st.DrawFn) -> list[Post | Reverse | Repost]:
    count = draw(st.integers(1, 20))
    ops: list[Post | Reverse | Repost] = []
    for n in range(count):
        choice = draw(st.sampled_from(["post", "post", "reverse", "repost"]))
        if choice == "post" or n == 0:
            ops.append(Post(draw(postings(f"p{n}"))))
        elif choice == "reverse":
            ops.append(Reverse(draw(st.integers(0, 10**6))))
        else:
            ops.append(Repost(draw(st.integers(0, 10**6))))
    return ops


def run(ops: list[Post | Reverse | Repost]) -> tuple[Journal, list[Posting]]:
    """Apply `ops`, checking after each that every currency still sums to zero."""
    journal, posted = Journal(), []
    for op in ops:
        match op:
            case Post(posting):
                journal.record(posting)
                posted.append(posting)
            case Reverse(index):
                journal.reverse(posted[index % len(posted)].key, START)
            case Repost(index):
                assert journal.record(posted[index % len(posted)]) == posted[index % len(posted)]
        assert all(total == 0 for total in journal.totals_by_currency().values())
    return journal, posted


@settings(max_examples=75, deadline=None)
@given(operations())
def test_every_currency_sums_to_zero_whatever_is_posted(ops: list[Post | Reverse | Repost]) -> None:
    journal, posted = run(ops)
    assert len(journal) >= len(posted)


@settings(max_examples=75, deadline=None)
@given(operations())
def test_reversing_everything_returns_every_balance_to_zero(
    ops: list[Post | Reverse | Repost],
) -> None:
    journal, posted = run(ops)
    for posting in posted:
        journal.reverse(posting.key, START + timedelta(days=40))
    assert all(amount == 0 for amount in journal.balances().values())
    assert len(journal) == 2 * len(posted)


@settings(max_examples=100, deadline=None)
@given(postings("k"), postings("k"))
def test_a_key_holds_one_content(first: Posting, second: Posting) -> None:
    journal = Journal()
    journal.record(first)
    if first.same_content(second):
        assert journal.record(second) is first
    else:
        try:
            journal.record(second)
        except PostingConflict:
            pass
        else:
            raise AssertionError("a different posting under a taken key was recorded")
    alone = Journal()
    alone.record(first)
    assert journal.balances() == alone.balances()
