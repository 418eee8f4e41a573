"""Invoices and receipts: line items, totals, what was paid, numbering, JSON and CSV export."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from csms.domain.invoices import (
    CSV_COLUMNS,
    BillingDocument,
    DocumentKind,
    Totals,
    build_invoice,
    build_receipt,
    document_to_csv,
    document_to_json,
    invoice_number,
    receipt_number,
)
from csms.domain.payments import (
    BillingPeriod,
    Capture,
    CaptureHold,
    ChargeLine,
    Refund,
    SessionCost,
    SubscriptionPlan,
    Succeeded,
    apply_outcome,
    bill_subscription,
    refund_card_session,
    settle_wallet_session,
    topup_posting,
)
from csms.domain.postings import Journal, Posting

D = Decimal
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ISSUED = datetime(2026, 2, 1, 6, 0, tzinfo=UTC)
JANUARY = BillingPeriod(2026, 1)


def cost(
    session_id: str,
    excl: str,
    incl: str,
    day: int = 5,
    components: tuple[ChargeLine, ...] = (),
    driver: str = "alice",
) -> SessionCost:
    ended = T0.replace(day=day) + timedelta(hours=1)
    return SessionCost(
        session_id,
        driver,
        "EUR",
        D(excl),
        D(incl),
        D("20.5"),
        ended - timedelta(hours=1),
        ended,
        components=components,
        station_id="CP-1",
    )


ENERGY = ChargeLine.priced("Energy", D("20.5"), "kWh", D("0.39"), D("0.19"), "EUR")
PARKING = ChargeLine.priced("Idle time", D("15"), "min", D("0.10"), D("0.19"), "EUR")
FEE = ChargeLine.priced("Session fee", D(1), "session", D("1.00"), D("0.07"), "EUR")


def rated() -> SessionCost:
    lines = (ENERGY, PARKING, FEE)
    excl = sum((line.amount_excl_vat for line in lines), D(0))
    incl = sum((line.amount_incl_vat for line in lines), D(0))
    return cost("S1", str(excl), str(incl), components=lines)


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def line_sums(doc: BillingDocument) -> Totals:
    return Totals(
        sum((line.amount_excl_vat for line in doc.lines), D(0)),
        sum((line.vat_amount for line in doc.lines), D(0)),
        sum((line.amount_incl_vat for line in doc.lines), D(0)),
    )


# -- receipts ---------------------------------------------------------------------------------


def test_a_receipt_lists_the_raters_components() -> None:
    session = rated()
    receipt = build_receipt(session, ISSUED)
    assert receipt.kind is DocumentKind.RECEIPT
    assert receipt.number == receipt_number("S1") == "RCT-S1"
    assert receipt.lines == (ENERGY, PARKING, FEE)
    assert ENERGY.amount_excl_vat == D("8.00")  # 20.5 x 0.39 = 7.995, half up
    assert receipt.totals == line_sums(receipt)
    assert receipt.totals == Totals(D("10.50"), D("1.88"), D("12.38"))
    assert receipt.totals.amount_incl_vat == session.amount_incl_vat
    assert (receipt.period_start, receipt.period_end) == (session.started_at, session.ended_at)
    assert receipt.amount_due is None


def test_a_receipt_without_components_has_one_line_for_the_session() -> None:
    receipt = build_receipt(cost("S2", "10.00", "11.90"), ISSUED)
    (line,) = receipt.lines
    assert (line.quantity, line.unit, line.unit_price) == (D(1), "session", D("10.00"))
    assert line.vat_rate == D("0.1900")
    assert "S2" in line.description and "CP-1" in line.description
    assert "20.5 kWh" in line.description
    assert receipt.totals == Totals(D("10.00"), D("1.90"), D("11.90"))


def test_vat_breakdown_groups_lines_by_rate() -> None:
    receipt = build_receipt(rated(), ISSUED)
    breakdown = {sub.vat_rate: sub.totals for sub in receipt.vat_breakdown}
    assert breakdown == {
        D("0.07"): Totals(D("1.00"), D("0.07"), D("1.07")),
        D("0.19"): Totals(D("9.50"), D("1.81"), D("11.31")),
    }


def test_a_paid_receipt_owes_nothing() -> None:
    session = cost("S1", "10.00", "11.90")
    journal = Journal()
    journal.record(topup_posting("topup:P1", "alice", D("50.00"), "EUR", T0))
    journal.record_many(settle_wallet_session(session).postings)
    receipt = build_receipt(session, ISSUED, journal.postings())
    assert (receipt.amount_paid, receipt.amount_credited, receipt.amount_due) == (
        D("11.90"),
        D(0),
        D(0),
    )


def test_a_reversed_payment_is_due_again() -> None:
    session = cost("S1", "10.00", "11.90")
    journal = Journal()
    journal.record_many(settle_wallet_session(session).postings)
    journal.reverse("session:S1:wallet", T0 + timedelta(days=1), "paid twice")
    receipt = build_receipt(session, ISSUED, journal.postings())
    assert (receipt.amount_paid, receipt.amount_due) == (D(0), D("11.90"))


def test_a_refunded_receipt_shows_the_credit_and_owes_nothing() -> None:
    session = cost("S1", "10.00", "11.90")
    capture_action = CaptureHold("session:S1", "alice", "h1", D("11.90"), "EUR")
    capture = Capture("c1", "h1", D("11.90"), "EUR")
    journal = Journal()
    postings: list[Posting] = []
    postings += settle_wallet_session(session).postings[:1]  # the sale only
    postings += apply_outcome(capture_action, Succeeded(capture), T0).postings
    refund = refund_card_session(session, capture, D("4.00"), "R1", T0 + timedelta(days=1))
    postings += refund.postings
    (refund_action,) = refund.actions
    refunded = Succeeded(Refund("r1", "c1", D("4.00"), "EUR"))
    postings += apply_outcome(refund_action, refunded, T0 + timedelta(days=1)).postings
    journal.record_many(postings)
    receipt = build_receipt(session, ISSUED, journal.postings())
    assert (receipt.amount_paid, receipt.amount_credited, receipt.amount_due) == (
        D("7.90"),
        D("4.00"),
        D(0),
    )


# -- invoices ---------------------------------------------------------------------------------


def test_an_invoice_has_a_line_per_session_in_the_order_they_ended() -> None:
    sessions = [cost("S2", "5.00", "5.95", day=20), cost("S1", "10.00", "11.90", day=3)]
    invoice = build_invoice("alice", JANUARY, "EUR", ISSUED, sessions)
    assert invoice.kind is DocumentKind.INVOICE
    assert invoice.number == invoice_number("alice", JANUARY) == "INV-202601-alice"
    assert [line.amount_incl_vat for line in invoice.lines] == [D("11.90"), D("5.95")]
    assert invoice.totals == line_sums(invoice) == Totals(D("15.00"), D("2.85"), D("17.85"))
    assert (invoice.period_start, invoice.period_end) == (JANUARY.start, JANUARY.end)


def test_invoice_numbers_are_deterministic() -> None:
    sessions = [cost("S1", "10.00", "11.90")]
    first = build_invoice("alice", JANUARY, "EUR", ISSUED, sessions)
    again = build_invoice("alice", JANUARY, "EUR", ISSUED + timedelta(days=3), sessions)
    assert first.number == again.number
    assert build_invoice("alice", BillingPeriod(2026, 11), "EUR", ISSUED).number == (
        "INV-202611-alice"
    )


def test_an_invoice_carries_the_subscription_bill() -> None:
    plan = SubscriptionPlan("plus", "EUR", D("9.99"), D("10"), D("0.29"), D("0.19"))
    sub = cost("S9", "8.00", "9.52", day=9)  # 20.5 kWh, 10.5 beyond the plan
    bill = bill_subscription(plan, "alice", JANUARY, [sub])
    card_session = cost("S1", "10.00", "11.90", day=3)
    invoice = build_invoice("alice", JANUARY, "EUR", ISSUED, [card_session], bill)
    assert [line.unit for line in invoice.lines] == ["session", "month", "kWh", "kWh"]
    assert invoice.totals.amount_incl_vat == D("11.90") + bill.amount_incl_vat
    assert invoice.totals == line_sums(invoice)
    with pytest.raises(ValueError, match="billed by the subscription"):
        build_invoice("alice", JANUARY, "EUR", ISSUED, [sub], bill)


def test_invoice_due_from_the_journal() -> None:
    paid = cost("S1", "10.00", "11.90", day=3)
    unpaid = cost("S2", "5.00", "5.95", day=4)
    other = cost("S3", "1.00", "1.19", day=5)
    journal = Journal()
    journal.record_many(settle_wallet_session(paid).postings)
    journal.record_many(settle_wallet_session(other).postings)  # not on this invoice
    journal.record_many(settle_wallet_session(unpaid).postings[:1])
    invoice = build_invoice(
        "alice", JANUARY, "EUR", ISSUED, [paid, unpaid], None, journal.postings()
    )
    assert (invoice.amount_paid, invoice.amount_due) == (D("11.90"), D("5.95"))


FEBRUARY_SESSION = SessionCost(
    "S1", "alice", "EUR", D(1), D(1), D(1), T0.replace(month=2), T0.replace(month=2)
)


@pytest.mark.parametrize("session", [cost("S1", "1.00", "1.19", driver="bob"), FEBRUARY_SESSION])
def test_an_invoice_refuses_sessions_of_others_or_other_periods(session: SessionCost) -> None:
    with pytest.raises(ValueError, match="not alice's in 2026-01"):
        build_invoice("alice", JANUARY, "EUR", ISSUED, [session])


def test_an_invoice_is_in_one_currency() -> None:
    with pytest.raises(ValueError, match="USD"):
        build_invoice("alice", JANUARY, "USD", ISSUED, [cost("S1", "1.00", "1.19")])


def test_an_empty_invoice_totals_zero() -> None:
    invoice = build_invoice("alice", JANUARY, "EUR", ISSUED)
    assert invoice.totals == Totals(D(0), D(0), D(0))
    assert invoice.vat_breakdown == ()


# -- export -----------------------------------------------------------------------------------


def test_json_export() -> None:
    receipt = build_receipt(rated(), ISSUED, ())
    exported = json.loads(json.dumps(document_to_json(receipt)))
    assert exported["number"] == "RCT-S1"
    assert exported["kind"] == "receipt"
    assert exported["currency"] == "EUR"
    assert exported["issued_at"] == "2026-02-01T06:00:00+00:00"
    assert exported["totals"] == {
        "amount_excl_vat": "10.50",
        "vat_amount": "1.88",
        "amount_incl_vat": "12.38",
    }
    assert [line["description"] for line in exported["lines"]] == [
        "Energy",
        "Idle time",
        "Session fee",
    ]
    assert exported["lines"][0] == {
        "description": "Energy",
        "quantity": "20.5",
        "unit": "kWh",
        "unit_price": "0.39",
        "vat_rate": "0.19",
        "amount_excl_vat": "8.00",
        "vat_amount": "1.52",
        "amount_incl_vat": "9.52",
    }
    assert sum(D(line["amount_incl_vat"]) for line in exported["lines"]) == D(
        exported["totals"]["amount_incl_vat"]
    )
    assert [v["vat_rate"] for v in exported["vat_breakdown"]] == ["0.07", "0.19"]
    assert (exported["amount_paid"], exported["amount_due"]) == ("0.00", "12.38")


def test_json_export_of_unknown_payments_is_null() -> None:
    exported = document_to_json(build_receipt(rated(), ISSUED))
    assert exported["amount_paid"] is None and exported["amount_due"] is None


def test_csv_export_parses_back() -> None:
    sessions = [cost("S1", "10.00", "11.90", day=3), cost("S2", "5.00", "5.95", day=20)]
    invoice = build_invoice("alice", JANUARY, "EUR", ISSUED, sessions)
    text = document_to_csv(invoice)
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    *lines, total = parse_csv(text)
    assert [row["line"] for row in lines] == ["1", "2"]
    assert all(row["document"] == "INV-202601-alice" for row in [*lines, total])
    assert lines[0]["description"] == invoice.lines[0].description  # commas quoted and back
    for column in ("amount_excl_vat", "vat_amount", "amount_incl_vat"):
        assert sum(D(row[column]) for row in lines) == D(total[column])
    assert (total["line"], total["description"], total["amount_incl_vat"]) == (
        "total",
        "Total",
        "17.85",
    )
    assert total["quantity"] == ""
    assert [D(row["quantity"]) for row in lines] == [D(1), D(1)]
