"""Subscription plans: a monthly fee, some kWh included, a discounted rate beyond them.

A plan is billed per calendar month in its time zone (`bill_subscription`); a session posts
nothing at its end. The period's bill goes to the driver's receivable like any sale; a card
collects it with `csms.domain.payments.card.collect_by_card`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from csms.domain.money import check_currency
from csms.domain.payments.costs import ZERO, BillingPeriod, ChargeLine, SessionCost
from csms.domain.payments.outbox import Settlement
from csms.domain.postings import (
    REVENUE_CHARGING,
    SUBSCRIPTION_FEES,
    TAX_VAT,
    Posting,
    PostingKind,
    driver_receivable,
    transfer,
)


@dataclass(frozen=True, slots=True)
class Subscribed:
    plan_id: str


@dataclass(frozen=True, slots=True)
class SubscriptionPlan:
    plan_id: str
    currency: str
    #: Per month, excl. VAT.
    monthly_fee: Decimal
    included_kwh: Decimal
    #: Per kWh beyond the included ones, excl. VAT.
    overage_rate: Decimal
    vat_rate: Decimal
    #: Months are calendar months in this zone.
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        check_currency(self.currency)
        ZoneInfo(self.timezone)
        if min(self.monthly_fee, self.included_kwh, self.overage_rate) < 0:
            raise ValueError(f"plan {self.plan_id}: fee, included kWh and rate are >= 0")

    def period_of(self, at: datetime) -> BillingPeriod:
        return BillingPeriod.containing(at, self.timezone)


@dataclass(frozen=True, slots=True)
class SessionAllocation:
    """How a session's energy was billed under the plan."""

    session_id: str
    energy_kwh: Decimal
    included_kwh: Decimal
    overage_kwh: Decimal
    list_price_incl_vat: Decimal


@dataclass(frozen=True, slots=True)
class SubscriptionBill:
    driver_id: str
    plan_id: str
    period: BillingPeriod
    currency: str
    lines: tuple[ChargeLine, ...]
    allocations: tuple[SessionAllocation, ...]
    #: None when the period bills nothing.
    posting: Posting | None

    @property
    def reference(self) -> str:
        return f"subscription:{self.driver_id}:{self.period.yyyymm}"

    @property
    def amount_excl_vat(self) -> Decimal:
        return sum((line.amount_excl_vat for line in self.lines), ZERO)

    @property
    def vat_amount(self) -> Decimal:
        return sum((line.vat_amount for line in self.lines), ZERO)

    @property
    def amount_incl_vat(self) -> Decimal:
        return sum((line.amount_incl_vat for line in self.lines), ZERO)

    @property
    def list_price_incl_vat(self) -> Decimal:
        """What the period's sessions would have cost at list price."""
        return sum((a.list_price_incl_vat for a in self.allocations), ZERO)


def bill_subscription(
    plan: SubscriptionPlan,
    driver_id: str,
    period: BillingPeriod,
    sessions: Sequence[SessionCost],
    revision: int = 0,
) -> SubscriptionBill:
    """The period's lines (fee, included energy at zero, overage) and its charge posting.

    A session belongs to the period it ended in. Included kWh go to sessions in the order
    they ended (ties by session id), so every session's share is reproducible. The posting
    is dated at the period's end and keyed by driver and month, so billing the same sessions
    again is a no-op. To re-bill (a session reported late), reverse the posting and bill with
    the next `revision`, which keys the new posting apart.
    """
    if period.timezone != plan.timezone:
        raise ValueError(f"plan {plan.plan_id} bills months in {plan.timezone}")
    seen: set[str] = set()
    for s in sessions:
        if s.driver_id != driver_id or s.currency != plan.currency:
            raise ValueError(f"session {s.session_id} is not {driver_id}'s in {plan.currency}")
        if not period.contains(s.ended_at):
            raise ValueError(f"session {s.session_id} did not end in {period.label}")
        if s.session_id in seen:
            raise ValueError(f"session {s.session_id} given twice")
        seen.add(s.session_id)
    remaining = plan.included_kwh
    allocations = []
    for s in sorted(sessions, key=lambda s: (s.ended_at, s.session_id)):
        included = min(s.energy_kwh, remaining)
        remaining -= included
        allocations.append(
            SessionAllocation(
                s.session_id, s.energy_kwh, included, s.energy_kwh - included, s.amount_incl_vat
            )
        )
    included_kwh = sum((a.included_kwh for a in allocations), ZERO)
    overage_kwh = sum((a.overage_kwh for a in allocations), ZERO)
    c, vat_rate = plan.currency, plan.vat_rate
    fee_line = f"Subscription {plan.plan_id}, {period.label}"
    lines = [ChargeLine.priced(fee_line, Decimal(1), "month", plan.monthly_fee, vat_rate, c)]
    if included_kwh > 0:
        lines.append(
            ChargeLine.priced(
                f"Energy included in {plan.plan_id}", included_kwh, "kWh", ZERO, vat_rate, c
            )
        )
    if overage_kwh > 0:
        beyond = f"Energy beyond the included {plan.included_kwh} kWh"
        lines.append(ChargeLine.priced(beyond, overage_kwh, "kWh", plan.overage_rate, vat_rate, c))
    bill = SubscriptionBill(
        driver_id, plan.plan_id, period, c, tuple(lines), tuple(allocations), None
    )
    if bill.amount_incl_vat == 0:
        return bill
    fee = lines[0]
    posting = transfer(
        f"{bill.reference}:charge" + (f":r{revision}" if revision else ""),
        period.end,
        PostingKind.SUBSCRIPTION_CHARGE,
        f"Subscription {plan.plan_id} for {driver_id}, {period.label}",
        c,
        {driver_receivable(driver_id): bill.amount_incl_vat},
        {
            SUBSCRIPTION_FEES: fee.amount_excl_vat,
            REVENUE_CHARGING: bill.amount_excl_vat - fee.amount_excl_vat,
            TAX_VAT: bill.vat_amount,
        },
    )
    return SubscriptionBill(
        driver_id, plan.plan_id, period, c, bill.lines, bill.allocations, posting
    )


def settle_subscription_session(cost: SessionCost) -> Settlement:
    """Nothing at the session's end: `bill_subscription` bills it with its period."""
    return Settlement()
