"""Payments: the simulated card provider, card settlement through the outbox rules, the prepaid
wallet, subscription billing, and the records the outbox keeps."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from csms.domain.payment_provider_sim import (
    CARD_EXPIRED,
    CARD_INSUFFICIENT_FUNDS,
    CARD_OK,
    CARD_TIMEOUT_ONCE,
    HoldStatus,
    SimulatedCardProvider,
)
from csms.domain.payments import (
    ActionOutcome,
    ActionStatus,
    AuthorizeHold,
    BillingPeriod,
    Capture,
    CaptureHold,
    CardOnFile,
    ChargeLine,
    Declined,
    DeclineReason,
    Failed,
    FollowUp,
    Hold,
    IdempotencyKeyReused,
    PaymentAction,
    PaymentDeclined,
    PaymentTimeout,
    PrepaidWallet,
    ProviderError,
    RefundCapture,
    ReleaseHold,
    SessionCost,
    Subscribed,
    SubscriptionPlan,
    Succeeded,
    TimedOut,
    action_from_record,
    action_to_record,
    apply_outcome,
    bill_subscription,
    card_preauthorization,
    collect_by_card,
    outcome_from_record,
    outcome_to_record,
    perform,
    refund_card_session,
    retry_delay,
    settle_card_session,
    settle_session,
    topup_posting,
    wallet_authorization,
    wallet_balance,
)
from csms.domain.postings import (
    PROVIDER_CLEARING,
    REVENUE_CHARGING,
    SUBSCRIPTION_FEES,
    TAX_VAT,
    Journal,
    Posting,
    PostingKind,
    driver_receivable,
    driver_wallet,
)

D = Decimal
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
RECEIVABLE = driver_receivable("alice")
WALLET = driver_wallet("alice")


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def provider(seed: int = 1, **options: Any) -> tuple[SimulatedCardProvider, Clock]:
    clock = Clock()
    return SimulatedCardProvider(random.Random(seed), clock, **options), clock


def cost(
    session_id: str = "S1",
    excl: str = "10.00",
    incl: str = "11.90",
    kwh: str = "20",
    ended: datetime = T0 + timedelta(hours=1),
    driver: str = "alice",
) -> SessionCost:
    return SessionCost(
        session_id, driver, "EUR", D(excl), D(incl), D(kwh), ended - timedelta(hours=1), ended
    )


@dataclass
class Worker:
    """What the trio payments worker does, minus trio: run, record, follow up, retry."""

    provider: SimulatedCardProvider
    journal: Journal = field(default_factory=Journal)
    log: list[tuple[PaymentAction, ActionOutcome, ActionStatus]] = field(default_factory=list)
    max_attempts: int = 20

    async def run(self, actions: tuple[PaymentAction, ...]) -> None:
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            for _ in range(self.max_attempts):
                outcome = await perform(self.provider, action)
                follow = apply_outcome(action, outcome, T0 + timedelta(hours=2))
                self.log.append((action, outcome, follow.status))
                if follow.status is not ActionStatus.RETRY:
                    break
            self.journal.record_many(follow.postings)
            queue.extend(follow.actions)

    def balance(self, account: str) -> Decimal:
        return self.journal.balance(account, "EUR")


# -- the simulated provider -------------------------------------------------------------------


async def test_hold_then_capture() -> None:
    sim, clock = provider()
    hold = await sim.authorize_hold("h1", CARD_OK, D("30.00"), "EUR")
    assert (hold.amount, hold.currency, hold.card_ref) == (D("30.00"), "EUR", CARD_OK)
    assert hold.expires_at == clock.now + timedelta(days=7)
    capture = await sim.capture("c1", hold.hold_id, D("11.90"))
    assert (capture.hold_id, capture.amount, capture.currency) == (hold.hold_id, D("11.90"), "EUR")
    assert sim.hold_status(hold.hold_id) is HoldStatus.CAPTURED
    assert sim.charged(CARD_OK) == D("11.90")


@pytest.mark.parametrize(
    ("card", "reason"),
    [
        (CARD_INSUFFICIENT_FUNDS, DeclineReason.INSUFFICIENT_FUNDS),
        (CARD_EXPIRED, DeclineReason.CARD_EXPIRED),
    ],
)
async def test_test_cards_always_decline(card: str, reason: DeclineReason) -> None:
    sim, _ = provider()
    for key in ("a", "b", "a"):
        with pytest.raises(PaymentDeclined) as raised:
            await sim.authorize_hold(key, card, D("5.00"), "EUR")
        assert raised.value.reason is reason


async def test_capture_may_not_exceed_the_hold() -> None:
    sim, _ = provider()
    hold = await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    with pytest.raises(PaymentDeclined) as raised:
        await sim.capture("c1", hold.hold_id, D("10.01"))
    assert raised.value.reason is DeclineReason.AMOUNT_EXCEEDS_HOLD
    # The refused request left the hold open.
    assert sim.hold_status(hold.hold_id) is HoldStatus.AUTHORIZED
    assert (await sim.capture("c2", hold.hold_id, D("10.00"))).amount == D("10.00")


async def test_a_hold_is_captured_once_and_the_same_key_answers_the_same() -> None:
    sim, _ = provider()
    hold = await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    first = await sim.capture("c1", hold.hold_id, D("4.00"))
    assert await sim.capture("c1", hold.hold_id, D("4.00")) == first
    with pytest.raises(PaymentDeclined) as raised:
        await sim.capture("c2", hold.hold_id, D("4.00"))
    assert raised.value.reason is DeclineReason.HOLD_NOT_ACTIVE
    assert sim.charged(CARD_OK) == D("4.00")


async def test_a_key_reused_with_other_arguments_is_refused() -> None:
    sim, _ = provider()
    hold = await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    with pytest.raises(IdempotencyKeyReused):
        await sim.authorize_hold("h", CARD_OK, D("11.00"), "EUR")
    with pytest.raises(IdempotencyKeyReused):
        await sim.capture("h", hold.hold_id, D("1.00"))


async def test_release_ends_the_hold() -> None:
    sim, _ = provider()
    hold = await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    assert (await sim.release("r", hold.hold_id)).hold_id == hold.hold_id
    assert sim.hold_status(hold.hold_id) is HoldStatus.RELEASED
    with pytest.raises(PaymentDeclined) as raised:
        await sim.capture("c", hold.hold_id, D("1.00"))
    assert raised.value.reason is DeclineReason.HOLD_NOT_ACTIVE
    assert sim.charged(CARD_OK) == 0


async def test_holds_expire() -> None:
    sim, clock = provider(hold_ttl=timedelta(hours=12))
    hold = await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    clock.now += timedelta(hours=12)
    assert sim.hold_status(hold.hold_id) is HoldStatus.EXPIRED
    with pytest.raises(PaymentDeclined) as raised:
        await sim.capture("c", hold.hold_id, D("1.00"))
    assert raised.value.reason is DeclineReason.HOLD_EXPIRED


async def test_refunds_add_up_to_at_most_the_capture() -> None:
    sim, _ = provider()
    hold = await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    capture = await sim.capture("c", hold.hold_id, D("8.00"))
    first = await sim.refund("r1", capture.capture_id, D("5.00"))
    assert (first.capture_id, first.amount) == (capture.capture_id, D("5.00"))
    with pytest.raises(PaymentDeclined) as raised:
        await sim.refund("r2", capture.capture_id, D("3.01"))
    assert raised.value.reason is DeclineReason.AMOUNT_EXCEEDS_CAPTURED
    await sim.refund("r3", capture.capture_id, D("3.00"))
    assert sim.charged(CARD_OK) == 0
    with pytest.raises(PaymentDeclined) as raised:
        await sim.refund("r4", "nope", D("1.00"))
    assert raised.value.reason is DeclineReason.UNKNOWN_CAPTURE


@pytest.mark.parametrize("amount", ["0", "-1.00", "1.001"])
async def test_amounts_must_be_positive_whole_minor_units(amount: str) -> None:
    sim, _ = provider()
    with pytest.raises(PaymentDeclined) as raised:
        await sim.authorize_hold("h", CARD_OK, D(amount), "EUR")
    assert raised.value.reason is DeclineReason.INVALID_AMOUNT


async def test_timeout_but_charged_then_retry_with_the_same_key_charges_once() -> None:
    sim, _ = provider()
    hold = await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    sim.timeout_rate, sim.applied_on_timeout = 1.0, 1.0
    with pytest.raises(PaymentTimeout):
        await sim.capture("c", hold.hold_id, D("10.00"))
    assert sim.charged(CARD_OK) == D("10.00")  # the provider did it
    sim.timeout_rate = 0.0
    capture = await sim.capture("c", hold.hold_id, D("10.00"))
    assert capture.amount == D("10.00")
    assert sim.charged(CARD_OK) == D("10.00")


async def test_a_retry_may_time_out_too_and_changes_nothing() -> None:
    sim, _ = provider()
    hold = await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    capture = await sim.capture("c", hold.hold_id, D("10.00"))
    sim.timeout_rate = 1.0
    with pytest.raises(PaymentTimeout):
        await sim.capture("c", hold.hold_id, D("10.00"))
    sim.timeout_rate = 0.0
    assert await sim.capture("c", hold.hold_id, D("10.00")) == capture
    assert sim.charged(CARD_OK) == D("10.00")
    assert sim.calls == 4


async def test_the_timeout_card_times_out_once_per_key_after_doing_the_work() -> None:
    sim, _ = provider()
    with pytest.raises(PaymentTimeout):
        await sim.authorize_hold("h", CARD_TIMEOUT_ONCE, D("10.00"), "EUR")
    hold = await sim.authorize_hold("h", CARD_TIMEOUT_ONCE, D("10.00"), "EUR")
    with pytest.raises(PaymentTimeout):
        await sim.capture("c", hold.hold_id, D("7.00"))
    assert sim.charged(CARD_TIMEOUT_ONCE) == D("7.00")
    assert (await sim.capture("c", hold.hold_id, D("7.00"))).amount == D("7.00")
    assert sim.charged(CARD_TIMEOUT_ONCE) == D("7.00")


async def test_a_timeout_before_the_work_leaves_nothing_and_the_retry_does_it() -> None:
    sim, _ = provider(timeout_rate=1.0, applied_on_timeout=0.0)
    hold_sim, _ = provider()
    hold = await hold_sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    with pytest.raises(PaymentTimeout):
        await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    sim.timeout_rate = 0.0
    assert (await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")).amount == hold.amount


async def test_provider_errors_are_not_remembered() -> None:
    sim, _ = provider(error_rate=1.0)
    with pytest.raises(ProviderError):
        await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    sim.error_rate = 0.0
    assert (await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")).amount == D("10.00")


async def test_a_decline_is_the_keys_answer_for_good() -> None:
    sim, _ = provider(decline_rate=1.0)
    with pytest.raises(PaymentDeclined) as raised:
        await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    assert raised.value.reason is DeclineReason.DO_NOT_HONOR
    sim.decline_rate = 0.0
    with pytest.raises(PaymentDeclined):
        await sim.authorize_hold("h", CARD_OK, D("10.00"), "EUR")
    await sim.authorize_hold("h2", CARD_OK, D("10.00"), "EUR")


async def outcomes_of(sim: SimulatedCardProvider, n: int) -> list[str]:
    names = []
    for i in range(n):
        action = card_preauthorization(f"S{i}", "alice", CARD_OK, D("10.00"), "EUR")
        names.append(type(await perform(sim, action)).__name__)
    return names


async def test_faults_are_reproducible_from_the_seed() -> None:
    rates = {"decline_rate": 0.2, "timeout_rate": 0.2, "error_rate": 0.1}
    a = await outcomes_of(provider(7, **rates)[0], 60)
    b = await outcomes_of(provider(7, **rates)[0], 60)
    assert a == b
    assert {"Succeeded", "Declined", "TimedOut", "Failed"} <= set(a)


async def test_a_numpy_generator_drives_the_faults_too() -> None:
    sim = SimulatedCardProvider(np.random.default_rng(3), Clock(), timeout_rate=0.5)
    names = await outcomes_of(sim, 40)
    assert {"Succeeded", "TimedOut"} == set(names)


# -- card settlement --------------------------------------------------------------------------


async def preauthorized(sim: SimulatedCardProvider, amount: str = "30.00") -> Hold:
    outcome = await perform(sim, card_preauthorization("S1", "alice", CARD_OK, D(amount), "EUR"))
    assert isinstance(outcome, Succeeded) and isinstance(outcome.result, Hold)
    follow = apply_outcome(
        card_preauthorization("S1", "alice", CARD_OK, D(amount), "EUR"), outcome, T0
    )
    assert follow == FollowUp(ActionStatus.DONE)
    return outcome.result


def test_keys_derive_from_the_session_id() -> None:
    hold = Hold("h1", CARD_OK, D("30.00"), "EUR", T0)
    assert card_preauthorization("S1", "alice", CARD_OK, D(30), "EUR").idempotency_key == (
        "session:S1:hold"
    )
    settlement = settle_card_session(cost(incl="40.00"), CardOnFile(CARD_OK, hold))
    assert [p.key for p in settlement.postings] == ["session:S1:charge"]
    assert [a.idempotency_key for a in settlement.actions] == [
        "session:S1:capture",
        "session:S1:extra:hold",
    ]


async def test_card_session_is_captured_from_its_hold() -> None:
    sim, _ = provider()
    hold = await preauthorized(sim)
    settlement = settle_card_session(cost(), CardOnFile(CARD_OK, hold))
    assert settlement.actions == (
        CaptureHold("session:S1", "alice", hold.hold_id, D("11.90"), "EUR"),
    )
    worker = Worker(sim)
    worker.journal.record_many(settlement.postings)
    assert worker.balance(RECEIVABLE) == D("11.90")
    assert worker.balance(REVENUE_CHARGING) == D("-10.00")
    assert worker.balance(TAX_VAT) == D("-1.90")
    await worker.run(settlement.actions)
    assert worker.balance(RECEIVABLE) == 0
    assert worker.balance(PROVIDER_CLEARING) == D("11.90")
    assert sim.charged(CARD_OK) == D("11.90")
    assert worker.journal.totals_by_currency() == {"EUR": 0}
    capture = worker.journal.get("session:S1:capture")
    assert capture is not None and capture.kind is PostingKind.CARD_CAPTURE


async def test_a_cost_above_the_hold_captures_the_hold_and_charges_the_rest_anew() -> None:
    sim, _ = provider()
    hold = await preauthorized(sim, "10.00")
    settlement = settle_card_session(cost(excl="21.00", incl="24.99"), CardOnFile(CARD_OK, hold))
    capture, extra = settlement.actions
    assert isinstance(capture, CaptureHold) and capture.amount == D("10.00")
    assert isinstance(extra, AuthorizeHold) and extra.amount == D("14.99") and extra.then_capture
    worker = Worker(sim)
    worker.journal.record_many(settlement.postings)
    await worker.run(settlement.actions)
    assert [a.idempotency_key for a, _, _ in worker.log] == [
        "session:S1:capture",
        "session:S1:extra:hold",
        "session:S1:extra:capture",
    ]
    assert worker.balance(RECEIVABLE) == 0
    assert sim.charged(CARD_OK) == D("24.99")


async def test_when_the_extra_hold_is_declined_the_rest_stays_on_the_receivable() -> None:
    sim, _ = provider()
    hold = await preauthorized(sim, "10.00")
    settlement = settle_card_session(cost(excl="21.00", incl="24.99"), CardOnFile(CARD_OK, hold))
    worker = Worker(sim)
    worker.journal.record_many(settlement.postings)
    sim.decline_rate = 1.0
    await worker.run(settlement.actions)
    assert worker.balance(RECEIVABLE) == D("14.99")
    assert sim.charged(CARD_OK) == D("10.00")


async def test_without_a_hold_the_session_is_charged_with_a_hold_captured_at_once() -> None:
    sim, _ = provider()
    settlement = settle_card_session(cost(), CardOnFile(CARD_OK))
    assert settlement.actions == (
        AuthorizeHold("session:S1:extra", "alice", CARD_OK, D("11.90"), "EUR", True),
    )
    worker = Worker(sim)
    worker.journal.record_many(settlement.postings)
    await worker.run(settlement.actions)
    assert worker.balance(RECEIVABLE) == 0
    assert sim.charged(CARD_OK) == D("11.90")


async def test_a_free_session_releases_its_hold_and_posts_nothing() -> None:
    sim, _ = provider()
    hold = await preauthorized(sim)
    settlement = settle_card_session(cost(excl="0", incl="0"), CardOnFile(CARD_OK, hold))
    assert settlement.postings == ()
    assert settlement.actions == (ReleaseHold("session:S1", "alice", hold.hold_id),)
    await Worker(sim).run(settlement.actions)
    assert sim.hold_status(hold.hold_id) is HoldStatus.RELEASED
    assert settle_card_session(cost(excl="0", incl="0"), CardOnFile(CARD_OK)).actions == ()


def test_a_declined_capture_releases_the_hold_and_leaves_the_receivable() -> None:
    capture = CaptureHold("session:S1", "alice", "h1", D("11.90"), "EUR")
    follow = apply_outcome(capture, Declined(DeclineReason.DO_NOT_HONOR), T0)
    assert follow.status is ActionStatus.DONE
    assert follow.postings == ()
    assert follow.actions == (ReleaseHold("session:S1", "alice", "h1"),)
    assert follow.actions[0].idempotency_key == "session:S1:release"


async def test_an_expired_hold_is_not_released_after_its_capture_is_declined() -> None:
    sim, clock = provider()
    hold = await preauthorized(sim)
    clock.now += timedelta(days=8)
    worker = Worker(sim)
    settlement = settle_card_session(cost(), CardOnFile(CARD_OK, hold))
    worker.journal.record_many(settlement.postings)
    await worker.run(settlement.actions)
    (_, outcome, status), *rest = worker.log
    assert outcome == Declined(DeclineReason.HOLD_EXPIRED, hold.hold_id)
    assert (status, rest) == (ActionStatus.DONE, [])
    assert worker.balance(RECEIVABLE) == D("11.90")


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (TimedOut(), ActionStatus.RETRY),
        (Failed("503", retryable=True), ActionStatus.RETRY),
        (Failed("key reused", retryable=False), ActionStatus.STUCK),
    ],
)
def test_unknown_outcomes_retry_the_same_action_or_stop(
    outcome: ActionOutcome, status: ActionStatus
) -> None:
    capture = CaptureHold("session:S1", "alice", "h1", D("11.90"), "EUR")
    assert apply_outcome(capture, outcome, T0) == FollowUp(status)


async def test_timeout_then_retry_charges_once_through_the_worker() -> None:
    sim, _ = provider()
    settlement = settle_card_session(cost(), CardOnFile(CARD_TIMEOUT_ONCE))
    worker = Worker(sim)
    worker.journal.record_many(settlement.postings)
    await worker.run(settlement.actions)
    statuses = [(a.idempotency_key, type(o).__name__) for a, o, _ in worker.log]
    assert statuses == [
        ("session:S1:extra:hold", "TimedOut"),
        ("session:S1:extra:hold", "Succeeded"),
        ("session:S1:extra:capture", "TimedOut"),
        ("session:S1:extra:capture", "Succeeded"),
    ]
    assert sim.charged(CARD_TIMEOUT_ONCE) == D("11.90")
    assert worker.balance(RECEIVABLE) == 0
    assert worker.balance(PROVIDER_CLEARING) == D("11.90")


@pytest.mark.parametrize("seed", range(12))
async def test_faulty_provider_never_charges_twice(seed: int) -> None:
    sim, _ = provider(seed, timeout_rate=0.4, error_rate=0.2)
    settlement = settle_card_session(cost(), CardOnFile(CARD_OK))
    worker = Worker(sim)
    worker.journal.record_many(settlement.postings)
    await worker.run(settlement.actions)
    assert sim.charged(CARD_OK) == D("11.90")
    assert worker.balance(RECEIVABLE) == 0
    assert worker.balance(PROVIDER_CLEARING) == D("11.90")


async def test_running_an_action_again_records_nothing_new() -> None:
    sim, _ = provider()
    settlement = settle_card_session(cost(), CardOnFile(CARD_OK))
    worker = Worker(sim)
    worker.journal.record_many(settlement.postings)
    await worker.run(settlement.actions)
    before = worker.journal.postings()
    # A crash after the provider answered but before the outbox row was marked done.
    await worker.run(settlement.actions)
    assert worker.journal.postings() == before
    assert sim.charged(CARD_OK) == D("11.90")


async def test_refund_posts_a_credit_note_and_pays_back_the_card() -> None:
    sim, _ = provider()
    hold = await preauthorized(sim)
    session = cost()
    worker = Worker(sim)
    settlement = settle_card_session(session, CardOnFile(CARD_OK, hold))
    worker.journal.record_many(settlement.postings)
    await worker.run(settlement.actions)
    captured = worker.log[-1][1]
    assert isinstance(captured, Succeeded) and isinstance(captured.result, Capture)
    refund = refund_card_session(session, captured.result, D("5.95"), "R1", T0 + timedelta(days=1))
    (credit_note,) = refund.postings
    assert credit_note.key == "session:S1:refund:R1:credit"
    assert credit_note.amount_on(TAX_VAT, "EUR") == D("0.95")
    assert credit_note.amount_on(REVENUE_CHARGING, "EUR") == D("5.00")
    assert refund.actions == (
        RefundCapture(
            "session:S1:refund:R1", "alice", captured.result.capture_id, D("5.95"), "EUR"
        ),
    )
    worker.journal.record_many(refund.postings)
    await worker.run(refund.actions)
    assert worker.balance(RECEIVABLE) == 0
    assert worker.balance(PROVIDER_CLEARING) == D("5.95")
    assert worker.balance(REVENUE_CHARGING) == D("-5.00")
    assert worker.balance(TAX_VAT) == D("-0.95")
    assert sim.charged(CARD_OK) == D("5.95")


def test_a_refund_above_the_capture_is_refused() -> None:
    capture = Capture("c1", "h1", D("11.90"), "EUR")
    with pytest.raises(ValueError, match="at most"):
        refund_card_session(cost(), capture, D("11.91"), "R1", T0)


def test_a_declined_refund_leaves_the_credit_with_the_driver() -> None:
    action = RefundCapture("session:S1:refund:R1", "alice", "c1", D("5.95"), "EUR")
    follow = apply_outcome(action, Declined(DeclineReason.AMOUNT_EXCEEDS_CAPTURED), T0)
    assert follow == FollowUp(ActionStatus.DONE)


def test_a_hold_in_another_currency_is_refused() -> None:
    hold = Hold("h1", CARD_OK, D("30.00"), "USD", T0)
    with pytest.raises(ValueError, match="USD"):
        settle_card_session(cost(), CardOnFile(CARD_OK, hold))


def test_a_result_that_does_not_fit_the_action_is_a_bug() -> None:
    capture = CaptureHold("session:S1", "alice", "h1", D("11.90"), "EUR")
    with pytest.raises(TypeError):
        apply_outcome(capture, Succeeded(Hold("h", CARD_OK, D(1), "EUR", T0)), T0)


# -- prepaid wallet ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "minimum", "reserved", "allowed", "shortfall"),
    [
        ("10.00", "5.00", "0", True, "0"),
        ("5.00", "5.00", "0", True, "0"),
        ("4.99", "5.00", "0", False, "0.01"),
        ("10.00", "5.00", "6.00", False, "1.00"),
        ("-2.00", "5.00", "0", False, "7.00"),
        ("-2.00", "-5.00", "0", True, "0"),
    ],
)
def test_wallet_authorization(
    balance: str, minimum: str, reserved: str, allowed: bool, shortfall: str
) -> None:
    answer = wallet_authorization(D(balance), D(minimum), D(reserved))
    assert answer.allowed is allowed
    assert answer.shortfall == D(shortfall)
    assert answer.available == D(balance) - D(reserved)


def test_topup_then_session_debits_the_wallet() -> None:
    journal = Journal()
    journal.record(topup_posting("topup:P1", "alice", D("20.00"), "EUR", T0))
    assert wallet_balance(journal.balance(WALLET, "EUR")) == D("20.00")
    settlement = settle_session(cost(), PrepaidWallet())
    assert settlement.actions == ()
    assert [p.key for p in settlement.postings] == ["session:S1:charge", "session:S1:wallet"]
    journal.record_many(settlement.postings)
    assert wallet_balance(journal.balance(WALLET, "EUR")) == D("8.10")
    assert journal.balance(RECEIVABLE, "EUR") == 0
    assert journal.balance(REVENUE_CHARGING, "EUR") == D("-10.00")
    assert journal.totals_by_currency() == {"EUR": 0}


def test_a_wallet_goes_negative_by_the_sessions_overrun_and_then_refuses() -> None:
    journal = Journal()
    journal.record(topup_posting("topup:P1", "alice", D("6.00"), "EUR", T0))
    minimum = D("5.00")
    assert wallet_authorization(wallet_balance(journal.balance(WALLET, "EUR")), minimum).allowed
    journal.record_many(settle_session(cost(), PrepaidWallet()).postings)
    balance = wallet_balance(journal.balance(WALLET, "EUR"))
    assert balance == D("-5.90")  # 11.90 cost, 6.00 balance: 5.90 overrun
    answer = wallet_authorization(balance, minimum)
    assert not answer.allowed and answer.shortfall == D("10.90")
    journal.record(topup_posting("topup:P2", "alice", D("10.90"), "EUR", T0))
    assert wallet_authorization(wallet_balance(journal.balance(WALLET, "EUR")), minimum).allowed


def test_a_free_wallet_session_posts_nothing() -> None:
    assert settle_session(cost(excl="0", incl="0"), PrepaidWallet()).postings == ()


def test_a_topup_adds_money() -> None:
    with pytest.raises(ValueError, match="positive"):
        topup_posting("topup:P1", "alice", D("0"), "EUR", T0)


# -- subscription plans -----------------------------------------------------------------------

PLAN = SubscriptionPlan(
    "plus", "EUR", D("9.99"), D("50"), D("0.29"), D("0.19"), timezone="Europe/Berlin"
)
JANUARY = BillingPeriod(2026, 1, "Europe/Berlin")


def sub_session(session_id: str, kwh: str, day: int, list_incl: str = "9.52") -> SessionCost:
    return cost(session_id, excl="8.00", incl=list_incl, kwh=kwh, ended=T0.replace(day=day))


def test_subscription_bills_fee_included_energy_and_overage() -> None:
    sessions = [
        sub_session("S3", "10", 20),
        sub_session("S1", "30", 5),
        sub_session("S2", "30", 12),
    ]
    bill = bill_subscription(PLAN, "alice", JANUARY, sessions)
    fee, included, overage = bill.lines
    assert fee == ChargeLine(
        "Subscription plus, 2026-01",
        D(1),
        "month",
        D("9.99"),
        D("0.19"),
        D("9.99"),
        D("1.90"),
        D("11.89"),
        "EUR",
    )
    assert (included.quantity, included.unit, included.amount_incl_vat) == (D(50), "kWh", D(0))
    assert (overage.quantity, overage.unit_price) == (D(20), D("0.29"))
    assert (overage.amount_excl_vat, overage.vat_amount, overage.amount_incl_vat) == (
        D("5.80"),
        D("1.10"),
        D("6.90"),
    )
    assert bill.amount_incl_vat == D("18.79")
    # Included kWh go to sessions in the order they ended.
    assert [(a.session_id, a.included_kwh, a.overage_kwh) for a in bill.allocations] == [
        ("S1", D(30), D(0)),
        ("S2", D(20), D(10)),
        ("S3", D(0), D(10)),
    ]
    assert bill.list_price_incl_vat == D("28.56")
    assert bill.posting is not None
    assert bill.posting.key == "subscription:alice:202601:charge"
    journal = Journal()
    journal.record(bill.posting)
    assert journal.balance(RECEIVABLE, "EUR") == D("18.79")
    assert journal.balance(SUBSCRIPTION_FEES, "EUR") == D("-9.99")
    assert journal.balance(REVENUE_CHARGING, "EUR") == D("-5.80")
    assert journal.balance(TAX_VAT, "EUR") == D("-3.00")


def test_within_the_included_energy_only_the_fee_is_charged() -> None:
    bill = bill_subscription(PLAN, "alice", JANUARY, [sub_session("S1", "49.5", 5)])
    assert [line.unit for line in bill.lines] == ["month", "kWh"]
    assert bill.amount_incl_vat == D("11.89")


def test_a_month_without_sessions_bills_the_fee() -> None:
    bill = bill_subscription(PLAN, "alice", JANUARY, [])
    assert len(bill.lines) == 1
    assert bill.amount_excl_vat == D("9.99")


def test_a_free_plan_without_overage_posts_nothing() -> None:
    free = SubscriptionPlan("free", "EUR", D(0), D(100), D("0.30"), D("0.19"), "Europe/Berlin")
    assert bill_subscription(free, "alice", JANUARY, [sub_session("S1", "30", 5)]).posting is None


def test_periods_are_calendar_months_in_the_plans_zone() -> None:
    assert JANUARY.start == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
    assert JANUARY.end == datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
    late = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)  # 00:30 on 1 February in Berlin
    assert PLAN.period_of(late) == BillingPeriod(2026, 2, "Europe/Berlin")
    assert BillingPeriod(2026, 12).end == datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="did not end in 2026-01"):
        bill_subscription(PLAN, "alice", JANUARY, [cost(ended=late)])


@pytest.mark.parametrize(
    "sessions",
    [
        [cost(driver="bob")],
        [cost("S1"), cost("S1")],
    ],
)
def test_subscription_refuses_sessions_that_are_not_the_drivers_or_twice(
    sessions: list[SessionCost],
) -> None:
    with pytest.raises(ValueError):
        bill_subscription(PLAN, "alice", JANUARY, sessions)


def test_billing_again_is_a_no_op_and_a_revision_rebills() -> None:
    journal = Journal()
    first = bill_subscription(PLAN, "alice", JANUARY, [sub_session("S1", "60", 5)])
    assert first.posting is not None
    assert first.amount_incl_vat == D("15.34")  # fee 11.89, 10 kWh beyond: 3.45
    journal.record(first.posting)
    again = bill_subscription(PLAN, "alice", JANUARY, [sub_session("S1", "60", 5)])
    assert again.posting is not None
    assert journal.record(again.posting) is first.posting
    # A session reported late: the first bill is reversed, the revision keyed apart.
    late = [sub_session("S1", "60", 5), sub_session("S2", "10", 6)]
    journal.reverse(first.posting.key, JANUARY.end, "late session S2")
    revised = bill_subscription(PLAN, "alice", JANUARY, late, revision=1)
    assert revised.posting is not None
    assert revised.posting.key == "subscription:alice:202601:charge:r1"
    journal.record(revised.posting)
    assert journal.balance(RECEIVABLE, "EUR") == revised.amount_incl_vat == D("18.79")


def test_subscription_needs_the_plans_zone() -> None:
    with pytest.raises(ValueError, match="Europe/Berlin"):
        bill_subscription(PLAN, "alice", BillingPeriod(2026, 1), [])


def test_a_subscribed_session_posts_nothing_at_its_end() -> None:
    settlement = settle_session(cost(), Subscribed("plus"))
    assert (settlement.postings, settlement.actions) == ((), ())


async def test_a_period_bill_is_collected_by_card() -> None:
    sim, _ = provider()
    bill = bill_subscription(PLAN, "alice", JANUARY, [sub_session("S1", "60", 5)])
    assert bill.posting is not None
    worker = Worker(sim)
    worker.journal.record(bill.posting)
    action = collect_by_card(bill.reference, "alice", CARD_OK, bill.amount_incl_vat, "EUR")
    await worker.run((action,))
    assert worker.balance(RECEIVABLE) == 0
    assert sim.charged(CARD_OK) == bill.amount_incl_vat
    assert worker.journal.get("subscription:alice:202601:capture") is not None


# -- inputs and records -----------------------------------------------------------------------


def test_session_cost_rounds_on_entry_and_checks_its_amounts() -> None:
    rounded = cost(excl="10.004", incl="11.905")
    assert (rounded.amount_excl_vat, rounded.amount_incl_vat) == (D("10.00"), D("11.91"))
    assert rounded.effective_vat_rate == D("0.1910")
    with pytest.raises(ValueError, match=r"excl\. VAT <= incl\. VAT"):
        cost(excl="12.00", incl="11.90")
    with pytest.raises(ValueError, match="timezone-aware"):
        cost(ended=datetime(2026, 1, 5, 9, 0))


@pytest.mark.parametrize("session_id", ["", "S:1", "S 1"])
def test_session_ids_must_be_usable_in_keys(session_id: str) -> None:
    with pytest.raises(ValueError, match="session id"):
        cost(session_id)


def test_session_components_must_add_up() -> None:
    energy = ChargeLine.priced("Energy", D("20"), "kWh", D("0.40"), D("0.19"), "EUR")
    fee = ChargeLine.priced("Session fee", D(1), "session", D("2.00"), D("0.19"), "EUR")
    start = T0
    ok = SessionCost(
        "S1", "alice", "EUR", D("10.00"), D("11.90"), D(20), start, start, None, (energy, fee)
    )
    assert ok.components == (energy, fee)
    with pytest.raises(ValueError, match="do not add up"):
        SessionCost(
            "S1", "alice", "EUR", D("10.00"), D("11.90"), D(20), start, start, None, (energy,)
        )


def test_a_charge_line_adds_up() -> None:
    with pytest.raises(ValueError, match="!= incl"):
        ChargeLine("x", D(1), "kWh", D(1), D("0.19"), D("1.00"), D("0.19"), D("1.20"), "EUR")
    with pytest.raises(ValueError, match="VAT rate"):
        ChargeLine.priced("x", D(1), "kWh", D(1), D(19), "EUR")


@pytest.mark.parametrize(
    "action",
    [
        card_preauthorization("S1", "alice", CARD_OK, D("30"), "EUR"),
        CaptureHold("session:S1", "alice", "h1", D("11.90"), "EUR"),
        ReleaseHold("session:S1", "alice", "h1"),
        RefundCapture("session:S1:refund:R1", "alice", "c1", D("5.95"), "EUR"),
    ],
)
def test_actions_round_trip_through_json_records(action: PaymentAction) -> None:
    record = json.loads(json.dumps(action_to_record(action)))
    assert record["idempotency_key"] == action.idempotency_key
    assert action_from_record(record) == action


@pytest.mark.parametrize(
    "outcome",
    [
        Succeeded(Hold("h1", CARD_OK, D("30.00"), "EUR", T0)),
        Succeeded(Capture("c1", "h1", D("11.90"), "EUR")),
        Declined(DeclineReason.HOLD_EXPIRED, "h1"),
        TimedOut(),
        Failed("boom", retryable=True),
    ],
)
def test_outcomes_round_trip_through_json_records(outcome: ActionOutcome) -> None:
    assert outcome_from_record(json.loads(json.dumps(outcome_to_record(outcome)))) == outcome


def test_a_record_with_a_forged_key_is_refused() -> None:
    record = action_to_record(ReleaseHold("session:S1", "alice", "h1"))
    with pytest.raises(ValueError, match="does not match"):
        action_from_record({**record, "idempotency_key": "session:S2:release"})
    with pytest.raises(ValueError, match="no payment action"):
        action_from_record(outcome_to_record(TimedOut()))


def test_retry_delay_doubles_up_to_an_hour() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3)] == [2, 4, 8]
    assert retry_delay(50) == timedelta(hours=1)


def test_settlement_postings_all_balance() -> None:
    hold = Hold("h1", CARD_OK, D("5.00"), "EUR", T0)
    postings: list[Posting] = []
    for method in (CardOnFile(CARD_OK, hold), CardOnFile(CARD_OK), PrepaidWallet()):
        postings += settle_session(cost(), method).postings
    journal = Journal()
    journal.record_many(postings)
    assert journal.totals_by_currency() == {"EUR": 0}
