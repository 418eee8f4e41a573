"""Invoices (one per driver per period) and receipts (one per session), exported as JSON and CSV.

A document's lines are `ChargeLine`s; its totals are their sums, so they always add up. A
receipt lists the rater's price components when it has them, an invoice one line per session
plus the subscription bill's lines. Given the journal's postings, a document also says what
was paid and credited against its items (postings keyed under the items' references, net of
reversals) and what is still due.

Numbers are deterministic: `INV-{yyyymm}-{driver}` and `RCT-{session}`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from csms.domain.money import check_currency, money
from csms.domain.payments import (
    BillingPeriod,
    ChargeLine,
    SessionCost,
    SubscriptionBill,
)
from csms.domain.postings import (
    Posting,
    PostingKind,
    driver_receivable,
)

ZERO = Decimal(0)

#: Postings that pay (or, negative, pay back) an item of the document.
PAYMENT_KINDS = frozenset(
    {PostingKind.CARD_CAPTURE, PostingKind.WALLET_PAYMENT, PostingKind.CARD_REFUND}
)

CSV_COLUMNS = (
    "document",
    "line",
    "description",
    "quantity",
    "unit",
    "unit_price",
    "vat_rate",
    "amount_excl_vat",
    "vat_amount",
    "amount_incl_vat",
    "currency",
)


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    RECEIPT = "receipt"


@dataclass(frozen=True, slots=True)
class Totals:
    amount_excl_vat: Decimal
    vat_amount: Decimal
    amount_incl_vat: Decimal

    @classmethod
    def of(cls, lines: Iterable[ChargeLine]) -> Totals:
        excl = vat = ZERO
        for line in lines:
            excl += line.amount_excl_vat
            vat += line.vat_amount
        return cls(excl, vat, excl + vat)


@dataclass(frozen=True, slots=True)
class VatSubtotal:
    vat_rate: Decimal
    totals: Totals


@dataclass(frozen=True, slots=True)
class BillingDocument:
    kind: DocumentKind
    number: str
    driver_id: str
    currency: str
    issued_at: datetime
    period_start: datetime
    period_end: datetime
    lines: tuple[ChargeLine, ...]
    #: Net payments against the document's items; None when no postings were given.
    amount_paid: Decimal | None = None
    #: Credit notes against the document's items; None when no postings were given.
    amount_credited: Decimal | None = None

    def __post_init__(self) -> None:
        check_currency(self.currency)
        strays = {line.currency for line in self.lines} - {self.currency}
        if strays:
            raise ValueError(
                f"{self.number}: lines in {sorted(strays)}, document in {self.currency}"
            )

    @property
    def totals(self) -> Totals:
        return Totals.of(self.lines)

    @property
    def vat_breakdown(self) -> tuple[VatSubtotal, ...]:
        rates = sorted({line.vat_rate for line in self.lines})
        return tuple(
            VatSubtotal(rate, Totals.of(line for line in self.lines if line.vat_rate == rate))
            for rate in rates
        )

    @property
    def amount_due(self) -> Decimal | None:
        if self.amount_paid is None or self.amount_credited is None:
            return None
        return self.totals.amount_incl_vat - self.amount_paid - self.amount_credited


def invoice_number(driver_id: str, period: BillingPeriod) -> str:
    return f"INV-{period.yyyymm}-{driver_id}"


def receipt_number(session_id: str) -> str:
    return f"RCT-{session_id}"


def session_line(cost: SessionCost) -> ChargeLine:
    """The whole session as one line: quantity one session at its net price."""
    where = f" at {cost.station_id}" if cost.station_id else ""
    description = (
        f"Charging session {cost.session_id}{where}, {cost.energy_kwh} kWh, "
        f"{cost.started_at.isoformat()} to {cost.ended_at.isoformat()}"
    )
    return ChargeLine(
        description,
        Decimal(1),
        "session",
        cost.amount_excl_vat,
        cost.effective_vat_rate,
        cost.amount_excl_vat,
        cost.vat_amount,
        cost.amount_incl_vat,
        cost.currency,
    )


def build_receipt(
    cost: SessionCost, issued_at: datetime, postings: Iterable[Posting] | None = None
) -> BillingDocument:
    """The session's receipt: its price components when the rater gave them, else one line."""
    lines = cost.components or (session_line(cost),)
    paid, credited = _settled(cost.driver_id, cost.currency, (cost.reference,), postings)
    return BillingDocument(
        DocumentKind.RECEIPT,
        receipt_number(cost.session_id),
        cost.driver_id,
        cost.currency,
        issued_at,
        cost.started_at,
        cost.ended_at,
        tuple(lines),
        paid,
        credited,
    )


def build_invoice(
    driver_id: str,
    period: BillingPeriod,
    currency: str,
    issued_at: datetime,
    sessions: Sequence[SessionCost] = (),
    subscription: SubscriptionBill | None = None,
    postings: Iterable[Posting] | None = None,
) -> BillingDocument:
    """The driver's invoice for `period`.

    `sessions` are the sessions billed one by one (card or wallet) that ended in the period;
    sessions under the subscription are billed by `subscription`'s lines and must not be
    given again.
    """
    for s in sessions:
        if s.driver_id != driver_id or not period.contains(s.ended_at):
            raise ValueError(f"session {s.session_id} is not {driver_id}'s in {period.label}")
    references = [s.reference for s in sorted(sessions, key=lambda s: (s.ended_at, s.session_id))]
    lines = [session_line(s) for s in sorted(sessions, key=lambda s: (s.ended_at, s.session_id))]
    if subscription is not None:
        if subscription.driver_id != driver_id or subscription.period != period:
            raise ValueError(f"subscription bill is not {driver_id}'s for {period.label}")
        twice = {a.session_id for a in subscription.allocations} & {s.session_id for s in sessions}
        if twice:
            raise ValueError(f"sessions {sorted(twice)} are billed by the subscription already")
        lines.extend(subscription.lines)
        references.append(subscription.reference)
    paid, credited = _settled(driver_id, currency, references, postings)
    return BillingDocument(
        DocumentKind.INVOICE,
        invoice_number(driver_id, period),
        driver_id,
        currency,
        issued_at,
        period.start,
        period.end,
        tuple(lines),
        paid,
        credited,
    )


def _settled(
    driver_id: str, currency: str, references: Iterable[str], postings: Iterable[Posting] | None
) -> tuple[Decimal | None, Decimal | None]:
    """(paid, credited) on the driver's receivable by postings keyed under `references`."""
    if postings is None:
        return None, None
    prefixes = tuple(f"{ref}:" for ref in references)
    mine = {p.key: p for p in postings if p.key.startswith(prefixes)} if prefixes else {}
    receivable = driver_receivable(driver_id)
    paid = credited = money(ZERO, currency)
    for posting in mine.values():
        kind = posting.kind
        if posting.reverses is not None:
            original = mine.get(posting.reverses)
            if original is None:
                continue
            kind = original.kind
        # Payments and credit notes credit the receivable: negative legs.
        amount = -posting.amount_on(receivable, currency)
        if kind in PAYMENT_KINDS:
            paid += amount
        elif kind is PostingKind.CREDIT_NOTE:
            credited += amount
    return paid, credited


# -- export -----------------------------------------------------------------------------------


def _line_record(line: ChargeLine) -> dict[str, str]:
    return {
        "description": line.description,
        "quantity": str(line.quantity),
        "unit": line.unit,
        "unit_price": str(line.unit_price),
        "vat_rate": str(line.vat_rate),
        "amount_excl_vat": str(line.amount_excl_vat),
        "vat_amount": str(line.vat_amount),
        "amount_incl_vat": str(line.amount_incl_vat),
    }


def _totals_record(totals: Totals) -> dict[str, str]:
    return {
        "amount_excl_vat": str(totals.amount_excl_vat),
        "vat_amount": str(totals.vat_amount),
        "amount_incl_vat": str(totals.amount_incl_vat),
    }


def _optional(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def document_to_json(doc: BillingDocument) -> dict[str, Any]:
    """A JSON-ready dict; amounts are strings, so no float ever touches money."""
    return {
        "kind": doc.kind.value,
        "number": doc.number,
        "driver_id": doc.driver_id,
        "currency": doc.currency,
        "issued_at": doc.issued_at.isoformat(),
        "period": {"start": doc.period_start.isoformat(), "end": doc.period_end.isoformat()},
        "lines": [_line_record(line) for line in doc.lines],
        "totals": _totals_record(doc.totals),
        "vat_breakdown": [
            {"vat_rate": str(sub.vat_rate), **_totals_record(sub.totals)}
            for sub in doc.vat_breakdown
        ],
        "amount_paid": _optional(doc.amount_paid),
        "amount_credited": _optional(doc.amount_credited),
        "amount_due": _optional(doc.amount_due),
    }


def document_to_csv(doc: BillingDocument) -> str:
    """One row per line (numbered from 1), then a row with `line` = "total"."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for number, line in enumerate(doc.lines, start=1):
        row = {"document": doc.number, "line": str(number), "currency": doc.currency}
        writer.writerow({**row, **_line_record(line)})
    total = {"document": doc.number, "line": "total", "currency": doc.currency}
    writer.writerow({**total, "description": "Total", **_totals_record(doc.totals)})
    return out.getvalue()
