"""Card on file: a hold at session start, a capture at the end, refunds by credit note.

The provider is a port (`PaymentProvider`); the rules here never call it, they return
`PaymentAction`s for the outbox (see `csms.domain.payments.outbox`). Idempotency keys are
derived from the session id, so a retried action never charges twice.

A capture never exceeds its hold: the rules capture up to the hold, then ask for a second hold
of exactly the remainder, captured at once; if that is declined, the remainder stays on the
receivable (due on the period's invoice). A declined capture leaves the amount on the
receivable and releases the hold; a timeout or a provider error retries the same action with
the same key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from csms.domain.money import money
from csms.domain.payments.actions import (
    AuthorizeHold,
    CaptureHold,
    PaymentAction,
    RefundCapture,
    ReleaseHold,
)
from csms.domain.payments.costs import ZERO, SessionCost, session_charge_posting
from csms.domain.payments.outbox import Settlement
from csms.domain.payments.provider import Capture, Hold
from csms.domain.postings import (
    REVENUE_CHARGING,
    TAX_VAT,
    PostingKind,
    check_key_part,
    driver_receivable,
    transfer,
)


@dataclass(frozen=True, slots=True)
class CardOnFile:
    card_ref: str
    #: The hold taken when the session was authorized; None when none was (offline start).
    hold: Hold | None = None


def card_preauthorization(
    session_id: str, driver_id: str, card_ref: str, amount: Decimal, currency: str
) -> AuthorizeHold:
    """The hold to ask for when a card-on-file session is authorized."""
    return AuthorizeHold(
        f"session:{session_id}", driver_id, card_ref, money(amount, currency), currency, False
    )


def collect_by_card(
    stage: str, driver_id: str, card_ref: str, amount: Decimal, currency: str
) -> AuthorizeHold:
    """Charge `amount` owed on the receivable: a hold of exactly that, captured when granted."""
    return AuthorizeHold(stage, driver_id, card_ref, money(amount, currency), currency, True)


def settle_card_session(cost: SessionCost, card: CardOnFile) -> Settlement:
    charge = session_charge_posting(cost)
    postings = (charge,) if charge else ()
    total, hold, ref = cost.amount_incl_vat, card.hold, cost.reference
    extra = f"{ref}:extra"
    if hold is None:
        if total == 0:
            return Settlement(postings)
        action = collect_by_card(extra, cost.driver_id, card.card_ref, total, cost.currency)
        return Settlement(postings, (action,))
    if hold.currency != cost.currency:
        raise ValueError(f"hold in {hold.currency}, session {cost.session_id} in {cost.currency}")
    if total == 0:
        return Settlement(postings, (ReleaseHold(ref, cost.driver_id, hold.hold_id),))
    captured = min(total, hold.amount)
    actions: list[PaymentAction] = [
        CaptureHold(ref, cost.driver_id, hold.hold_id, captured, cost.currency)
    ]
    if total > captured:
        remainder = total - captured
        actions.append(
            collect_by_card(extra, cost.driver_id, card.card_ref, remainder, cost.currency)
        )
    return Settlement(postings, tuple(actions))


def refund_card_session(
    cost: SessionCost, capture: Capture, amount: Decimal, refund_ref: str, at: datetime
) -> Settlement:
    """Give back part or all of a captured session: a credit note, then the card refund.

    The credit note splits the amount into net and VAT in the session's proportion. If the
    provider declines the refund, the credit stays on the receivable (the driver's credit).
    """
    check_key_part(refund_ref, "refund reference")
    amount = money(amount, cost.currency)
    if not ZERO < amount <= min(capture.amount, cost.amount_incl_vat):
        raise ValueError(f"refund must be above zero and at most {capture.amount}")
    vat = money(amount * cost.vat_amount / cost.amount_incl_vat, cost.currency)
    stage = f"{cost.reference}:refund:{refund_ref}"
    credit_note = transfer(
        f"{stage}:credit",
        at,
        PostingKind.CREDIT_NOTE,
        f"Credit note for session {cost.session_id} ({refund_ref})",
        cost.currency,
        {REVENUE_CHARGING: amount - vat, TAX_VAT: vat},
        {driver_receivable(cost.driver_id): amount},
    )
    action = RefundCapture(stage, cost.driver_id, capture.capture_id, amount, cost.currency)
    return Settlement((credit_note,), (action,))
