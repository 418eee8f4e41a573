"""The journal: money rounding, the chart, balanced postings, idempotency, reversals, balances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from csms.domain.money import minor_unit, money
from csms.domain.postings import (
    CASH_TOPUPS,
    PROVIDER_CLEARING,
    REVENUE_CHARGING,
    SUBSCRIPTION_FEES,
    TAX_VAT,
    AccountType,
    InvalidReversal,
    Journal,
    Leg,
    Posting,
    PostingConflict,
    PostingKind,
    UnbalancedPosting,
    UnknownAccount,
    UnknownPosting,
    account_driver,
    account_type,
    driver_receivable,
    driver_wallet,
    normal_balance,
    reversal_key,
    reversal_of,
    transfer,
)

AT = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
D = Decimal
WALLET = driver_wallet("alice")
RECEIVABLE = driver_receivable("alice")


def topup(key: str = "topup:1", amount: str = "20.00", at: datetime = AT) -> Posting:
    return transfer(
        key, at, PostingKind.TOPUP, "top-up", "EUR", {CASH_TOPUPS: D(amount)}, {WALLET: D(amount)}
    )


def sale(key: str = "session:S1:charge") -> Posting:
    return transfer(
        key,
        AT,
        PostingKind.SESSION_CHARGE,
        "session S1",
        "EUR",
        {RECEIVABLE: D("11.90")},
        {REVENUE_CHARGING: D("10.00"), TAX_VAT: D("1.90")},
    )


# -- money ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("1.005", "EUR", "1.01"),
        ("1.004999", "EUR", "1.00"),
        ("-1.005", "EUR", "-1.01"),
        ("2.675", "USD", "2.68"),
        ("0.5", "JPY", "1"),
        ("1.2345", "KWD", "1.235"),
        ("7", "EUR", "7.00"),
    ],
)
def test_money_rounds_half_up_to_the_minor_unit(amount: str, currency: str, expected: str) -> None:
    rounded = money(D(amount), currency)
    assert str(rounded) == expected


def test_minor_units_follow_iso_4217() -> None:
    assert (minor_unit("EUR"), minor_unit("JPY"), minor_unit("BHD")) == (2, 0, 3)


@pytest.mark.parametrize("currency", ["eur", "EURO", "", "€€€"])
def test_a_currency_is_an_iso_code(currency: str) -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        money(D(1), currency)


def test_money_refuses_floats_and_nan() -> None:
    with pytest.raises(TypeError):
        money(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        money(D("NaN"), "EUR")


# -- the chart --------------------------------------------------------------------------------


def test_chart_of_accounts() -> None:
    assert account_type(WALLET) is AccountType.DRIVER_WALLET
    assert account_type(RECEIVABLE) is AccountType.DRIVER_RECEIVABLE
    assert account_type(PROVIDER_CLEARING) is AccountType.PROVIDER_CLEARING
    assert account_type(SUBSCRIPTION_FEES) is AccountType.SUBSCRIPTION_FEES
    assert account_driver(WALLET) == "alice"
    assert account_driver(TAX_VAT) is None


@pytest.mark.parametrize(
    "account", ["revenue:parking", "driver:alice:savings", "driver::wallet", "driver:a:b:wallet"]
)
def test_accounts_outside_the_chart_are_refused(account: str) -> None:
    with pytest.raises(UnknownAccount):
        Leg(account, D("1.00"), "EUR")


@pytest.mark.parametrize("driver", ["", "a:b", "a b"])
def test_driver_ids_that_would_break_account_names_are_refused(driver: str) -> None:
    with pytest.raises(ValueError, match="driver id"):
        driver_wallet(driver)


# -- postings ---------------------------------------------------------------------------------


def test_unbalanced_posting_is_refused() -> None:
    legs = (Leg(CASH_TOPUPS, D("20.00"), "EUR"), Leg(WALLET, D("-19.99"), "EUR"))
    with pytest.raises(UnbalancedPosting, match="does not balance"):
        Posting("k", AT, PostingKind.TOPUP, "", legs)


def test_balance_is_per_currency() -> None:
    # 10 EUR against 10 USD sums to zero as numbers, yet balances in neither currency.
    legs = (Leg(CASH_TOPUPS, D("10.00"), "EUR"), Leg(WALLET, D("-10.00"), "USD"))
    with pytest.raises(UnbalancedPosting):
        Posting("k", AT, PostingKind.TOPUP, "", legs)


def test_a_posting_in_two_currencies_balances_in_each() -> None:
    legs = (
        Leg(CASH_TOPUPS, D("10.00"), "EUR"),
        Leg(WALLET, D("-10.00"), "EUR"),
        Leg(CASH_TOPUPS, D("1000"), "JPY"),
        Leg(WALLET, D("-1000"), "JPY"),
    )
    assert Posting("k", AT, PostingKind.TOPUP, "", legs).currencies == {"EUR", "JPY"}


def test_a_posting_needs_two_legs() -> None:
    with pytest.raises(UnbalancedPosting, match="two legs"):
        Posting("k", AT, PostingKind.ADJUSTMENT, "", ())


def test_a_leg_refuses_zero_and_amounts_finer_than_the_minor_unit() -> None:
    with pytest.raises(ValueError, match="moves money"):
        Leg(WALLET, D("0.00"), "EUR")
    with pytest.raises(ValueError, match="minor unit"):
        Leg(WALLET, D("0.001"), "EUR")
    with pytest.raises(ValueError, match="minor unit"):
        Leg(WALLET, D("0.5"), "JPY")


def test_a_leg_spells_amounts_at_the_minor_unit() -> None:
    assert str(Leg(WALLET, D("5"), "EUR").amount) == "5.00"


def test_posting_time_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        topup(at=datetime(2026, 1, 5, 8, 0))


def test_transfer_leaves_zero_amounts_out() -> None:
    posting = transfer(
        "k",
        AT,
        PostingKind.SESSION_CHARGE,
        "",
        "EUR",
        {RECEIVABLE: D("5.00")},
        {REVENUE_CHARGING: D("5.00"), TAX_VAT: D(0)},
    )
    assert [leg.account for leg in posting.legs] == [RECEIVABLE, REVENUE_CHARGING]


# -- the journal ------------------------------------------------------------------------------


def test_balances_follow_the_postings() -> None:
    journal = Journal()
    journal.record(topup())
    journal.record(sale())
    assert journal.balance(CASH_TOPUPS, "EUR") == D("20.00")
    assert journal.balance(WALLET, "EUR") == D("-20.00")
    assert journal.balance(RECEIVABLE, "EUR") == D("11.90")
    assert journal.balance(REVENUE_CHARGING, "EUR") == D("-10.00")
    assert journal.balance(TAX_VAT, "EUR") == D("-1.90")
    assert journal.balance(TAX_VAT, "USD") == 0
    assert str(journal.balance(PROVIDER_CLEARING, "EUR")) == "0.00"
    assert journal.totals_by_currency() == {"EUR": 0}
    assert normal_balance(WALLET, journal.balance(WALLET, "EUR")) == D("20.00")
    assert normal_balance(REVENUE_CHARGING, journal.balance(REVENUE_CHARGING, "EUR")) == D(10)
    assert normal_balance(RECEIVABLE, journal.balance(RECEIVABLE, "EUR")) == D("11.90")


def test_recording_the_same_posting_again_is_a_no_op() -> None:
    journal = Journal()
    first = journal.record(topup())
    again = journal.record(topup())
    assert again is first
    assert len(journal) == 1
    assert journal.balance(WALLET, "EUR") == D("-20.00")


def test_same_content_ignores_the_order_of_legs() -> None:
    journal = Journal()
    original = journal.record(sale())
    shuffled = Posting(
        original.key, original.at, original.kind, original.memo, tuple(reversed(original.legs))
    )
    assert journal.record(shuffled) is original


@pytest.mark.parametrize(
    "other",
    [
        topup(amount="25.00"),
        topup(at=AT + timedelta(seconds=1)),
        transfer(
            "topup:1",
            AT,
            PostingKind.TOPUP,
            "other memo",
            "EUR",
            {CASH_TOPUPS: D(20)},
            {WALLET: D(20)},
        ),
        transfer(
            "topup:1",
            AT,
            PostingKind.ADJUSTMENT,
            "top-up",
            "EUR",
            {CASH_TOPUPS: D(20)},
            {WALLET: D(20)},
        ),
    ],
)
def test_same_key_with_other_content_is_a_conflict(other: Posting) -> None:
    journal = Journal()
    journal.record(topup())
    with pytest.raises(PostingConflict, match="topup:1") as raised:
        journal.record(other)
    assert raised.value.existing == topup()
    assert journal.balance(WALLET, "EUR") == D("-20.00")


def test_record_many_is_all_or_nothing() -> None:
    journal = Journal()
    journal.record(topup())
    with pytest.raises(PostingConflict):
        journal.record_many([sale(), topup(amount="1.00")])
    assert len(journal) == 1
    assert journal.balance(RECEIVABLE, "EUR") == 0


def test_record_many_takes_duplicates_within_the_batch_once() -> None:
    journal = Journal()
    recorded = journal.record_many([topup(), topup(), sale()])
    assert recorded[0] is recorded[1]
    assert len(journal) == 2
    assert journal.balance(WALLET, "EUR") == D("-20.00")


def test_postings_keep_the_order_recorded() -> None:
    journal = Journal()
    journal.record(sale())
    journal.record(topup())
    assert [p.key for p in journal.postings()] == ["session:S1:charge", "topup:1"]
    assert journal.get("topup:1") == topup()
    assert journal.get("nope") is None


# -- reversals --------------------------------------------------------------------------------


def test_a_reversal_negates_every_leg_and_is_keyed_from_the_original() -> None:
    journal = Journal()
    journal.record(sale())
    reversal = journal.reverse("session:S1:charge", AT + timedelta(hours=1), "rated twice")
    assert reversal.key == reversal_key("session:S1:charge") == "session:S1:charge:reversal"
    assert reversal.kind is PostingKind.REVERSAL
    assert reversal.reverses == "session:S1:charge"
    assert reversal.memo == "Reversal of session:S1:charge: rated twice"
    assert {(leg.account, leg.amount) for leg in reversal.legs} == {
        (RECEIVABLE, D("-11.90")),
        (REVENUE_CHARGING, D("10.00")),
        (TAX_VAT, D("1.90")),
    }
    assert all(amount == 0 for amount in journal.balances().values())
    assert journal.is_reversed("session:S1:charge")
    # The original stays: corrections add postings, never edit them.
    assert journal.get("session:S1:charge") == sale()


def test_reversing_twice_is_a_no_op() -> None:
    journal = Journal()
    journal.record(topup())
    first = journal.reverse("topup:1", AT)
    second = journal.reverse("topup:1", AT + timedelta(days=1), "again")
    assert second is first
    assert len(journal) == 2
    assert journal.balance(WALLET, "EUR") == 0


def test_a_recorded_reversal_is_idempotent_too() -> None:
    journal = Journal()
    journal.record(topup())
    reversal = reversal_of(topup(), AT)
    assert journal.record(reversal) == reversal
    assert journal.record(reversal) == reversal
    assert len(journal) == 2


def test_reversing_an_unknown_posting_fails() -> None:
    with pytest.raises(UnknownPosting):
        Journal().reverse("nope", AT)


def test_a_reversal_is_not_reversed() -> None:
    journal = Journal()
    journal.record(topup())
    journal.reverse("topup:1", AT)
    with pytest.raises(InvalidReversal, match="post anew"):
        journal.reverse("topup:1:reversal", AT)


def test_a_forged_reversal_is_refused() -> None:
    journal = Journal()
    journal.record(topup())
    not_negated = Posting(
        "topup:1:reversal", AT, PostingKind.REVERSAL, "", topup().legs, reverses="topup:1"
    )
    with pytest.raises(InvalidReversal, match="exact reversal"):
        journal.record(not_negated)
    orphan = Posting(
        "x:reversal", AT, PostingKind.REVERSAL, "", reversal_of(topup(), AT).legs, reverses="x"
    )
    with pytest.raises(InvalidReversal, match="unknown"):
        journal.record(orphan)


def test_only_a_reversal_names_what_it_reverses() -> None:
    with pytest.raises(ValueError, match="only a reversal"):
        Posting("k", AT, PostingKind.REVERSAL, "", topup().legs)
    with pytest.raises(ValueError, match="only a reversal"):
        Posting("k", AT, PostingKind.TOPUP, "", topup().legs, reverses="topup:1")


def test_a_posting_and_its_reversal_may_be_recorded_in_one_batch() -> None:
    journal = Journal()
    journal.record_many([topup(), reversal_of(topup(), AT)])
    assert journal.balance(WALLET, "EUR") == 0
