"""What is billed: priced lines, rated sessions, billing periods and the sale posting.

A `SessionCost` is a rated session as the rater hands it over, a `ChargeLine` one priced line
of a bill or an invoice, a `BillingPeriod` a calendar month in a time zone.
`session_charge_posting` books a session's sale on the driver's receivable with its revenue
and VAT; a payment method then settles the receivable.

Amounts are rounded as `csms.domain.postings` states: half up at the minor unit, once per line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from csms.domain.money import money
from csms.domain.postings import (
    REVENUE_CHARGING,
    TAX_VAT,
    Posting,
    PostingKind,
    check_driver_id,
    check_key_part,
    driver_receivable,
    transfer,
)

ZERO = Decimal(0)
RATE_PLACES = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """One priced line: `amount_incl_vat` is always `amount_excl_vat + vat_amount`."""

    description: str
    quantity: Decimal
    unit: str
    #: Excl. VAT, at whatever precision the price list has (not rounded to the minor unit).
    unit_price: Decimal
    vat_rate: Decimal
    amount_excl_vat: Decimal
    vat_amount: Decimal
    amount_incl_vat: Decimal
    currency: str

    def __post_init__(self) -> None:
        for name in ("amount_excl_vat", "vat_amount", "amount_incl_vat"):
            value = getattr(self, name)
            if money(value, self.currency) != value:
                raise ValueError(f"{name} {value} is not rounded to {self.currency}'s minor unit")
        if self.amount_excl_vat + self.vat_amount != self.amount_incl_vat:
            raise ValueError(f"line {self.description!r}: excl. VAT + VAT != incl. VAT")
        if not ZERO <= self.vat_rate < 1:
            raise ValueError(f"VAT rate is a fraction such as 0.19, got {self.vat_rate}")

    @classmethod
    def priced(
        cls,
        description: str,
        quantity: Decimal,
        unit: str,
        unit_price: Decimal,
        vat_rate: Decimal,
        currency: str,
    ) -> ChargeLine:
        """quantity x unit price rounded, VAT on the rounded net rounded, gross their sum."""
        excl = money(quantity * unit_price, currency)
        vat = money(excl * vat_rate, currency)
        return cls(
            description, quantity, unit, unit_price, vat_rate, excl, vat, excl + vat, currency
        )


@dataclass(frozen=True, slots=True)
class SessionCost:
    """A rated session as the rater hands it over; amounts are rounded half up on entry."""

    session_id: str
    driver_id: str
    currency: str
    amount_excl_vat: Decimal
    amount_incl_vat: Decimal
    energy_kwh: Decimal
    started_at: datetime
    ended_at: datetime
    #: The VAT rate applied; derived from the amounts when the rater does not say.
    vat_rate: Decimal | None = None
    #: The rater's price components (energy, time, idle, fee); they must add up to the totals.
    components: tuple[ChargeLine, ...] = ()
    station_id: str | None = None

    def __post_init__(self) -> None:
        check_driver_id(self.driver_id)
        check_key_part(self.session_id, "session id")
        object.__setattr__(self, "amount_excl_vat", money(self.amount_excl_vat, self.currency))
        object.__setattr__(self, "amount_incl_vat", money(self.amount_incl_vat, self.currency))
        if not ZERO <= self.amount_excl_vat <= self.amount_incl_vat:
            raise ValueError(f"session {self.session_id}: need 0 <= excl. VAT <= incl. VAT")
        if self.energy_kwh < 0:
            raise ValueError(f"session {self.session_id}: negative energy")
        _check_aware(self.started_at, self.ended_at)
        if self.ended_at < self.started_at:
            raise ValueError(f"session {self.session_id} ends before it starts")
        if self.components:
            if any(c.currency != self.currency for c in self.components):
                raise ValueError(f"session {self.session_id}: components in another currency")
            excl = sum((c.amount_excl_vat for c in self.components), ZERO)
            incl = sum((c.amount_incl_vat for c in self.components), ZERO)
            if (excl, incl) != (self.amount_excl_vat, self.amount_incl_vat):
                raise ValueError(f"session {self.session_id}: components do not add up")

    @property
    def vat_amount(self) -> Decimal:
        return self.amount_incl_vat - self.amount_excl_vat

    @property
    def effective_vat_rate(self) -> Decimal:
        if self.vat_rate is not None:
            return self.vat_rate
        if self.amount_excl_vat == 0:
            return ZERO
        return (self.vat_amount / self.amount_excl_vat).quantize(RATE_PLACES)

    @property
    def reference(self) -> str:
        """The stem of every key this session's payments use."""
        return f"session:{self.session_id}"


def _check_aware(*times: datetime) -> None:
    if any(t.tzinfo is None or t.utcoffset() is None for t in times):
        raise ValueError("times must be timezone-aware")


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """A calendar month in a time zone (an IANA name such as 'Europe/Berlin')."""

    year: int
    month: int
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise ValueError(f"month must be 1..12, got {self.month}")
        ZoneInfo(self.timezone)

    @classmethod
    def containing(cls, at: datetime, timezone: str = "UTC") -> BillingPeriod:
        _check_aware(at)
        local = at.astimezone(ZoneInfo(timezone))
        return cls(local.year, local.month, timezone)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=ZoneInfo(self.timezone))

    @property
    def end(self) -> datetime:
        """The first instant of the next month (exclusive)."""
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return datetime(year, month, 1, tzinfo=ZoneInfo(self.timezone))

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def yyyymm(self) -> str:
        return f"{self.year:04d}{self.month:02d}"

    def contains(self, at: datetime) -> bool:
        _check_aware(at)
        return self.start <= at < self.end


def session_charge_posting(cost: SessionCost) -> Posting | None:
    """The sale: receivable debited, revenue and VAT credited; None for a free session."""
    if cost.amount_incl_vat == 0:
        return None
    return transfer(
        f"{cost.reference}:charge",
        cost.ended_at,
        PostingKind.SESSION_CHARGE,
        f"Charging session {cost.session_id}",
        cost.currency,
        {driver_receivable(cost.driver_id): cost.amount_incl_vat},
        {REVENUE_CHARGING: cost.amount_excl_vat, TAX_VAT: cost.vat_amount},
    )
