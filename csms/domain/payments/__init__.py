"""Payment methods and the rules that turn session costs and provider outcomes into postings.

Every billable thing (a session, a subscription period) first goes to the driver's receivable
with its revenue and VAT (the charge posting); a payment method then settles the receivable:
a card on file (a hold at session start, a capture at the end), a prepaid wallet (debited at
the session's end), or a subscription (billed per calendar month). The package owns them all;
every public name is re-exported here, so import from `csms.domain.payments`:

    costs          what is billed: ChargeLine, SessionCost, BillingPeriod, the sale posting
    provider       the card provider port (PaymentProvider), its results and its errors
    actions        payment actions and their outcomes, and their JSON records for the outbox
    outbox         perform, apply_outcome, ActionStatus, Settlement, FollowUp, retry_delay
    card           card on file: pre-authorization, capture up to the hold, refunds
    wallet         prepaid wallet: top-ups, the check before a start, payment at the end
    subscriptions  subscription plans and their monthly bills
    settlement     settle_session: a rated session to its payment method's rules

Keys, provider actions and postings alike, are "{stem}:{step}" so a retry finds its first try:

    session:{id}:charge                      posting: the sale
    session:{id}:wallet                      posting: paid from the wallet
    session:{id}:hold | :capture | :release  actions on the session-start hold; the capture's
                                             posting has the capture's key
    session:{id}:extra:hold | :capture ...   a hold taken at settlement (no pre-authorization,
                                             or the remainder above it)
    session:{id}:refund:{ref}:credit         posting: the credit note; :refund the action and
                                             its posting
    subscription:{driver}:{yyyymm}:charge    posting: the period's bill (":r{n}" revisions);
                                             :hold, :capture when collected by card

Amounts are rounded as `csms.domain.postings` states: half up at the minor unit, once per line.
"""

from csms.domain.payments.actions import (
    ActionOutcome,
    AuthorizeHold,
    CaptureHold,
    Declined,
    Failed,
    PaymentAction,
    RefundCapture,
    ReleaseHold,
    Succeeded,
    TimedOut,
    action_from_record,
    action_to_record,
    outcome_from_record,
    outcome_to_record,
)
from csms.domain.payments.card import (
    CardOnFile,
    card_preauthorization,
    collect_by_card,
    refund_card_session,
    settle_card_session,
)
from csms.domain.payments.costs import (
    RATE_PLACES,
    ZERO,
    BillingPeriod,
    ChargeLine,
    SessionCost,
    session_charge_posting,
)
from csms.domain.payments.outbox import (
    ActionStatus,
    FollowUp,
    Settlement,
    apply_outcome,
    perform,
    retry_delay,
)
from csms.domain.payments.provider import (
    Capture,
    DeclineReason,
    Hold,
    IdempotencyKeyReused,
    PaymentDeclined,
    PaymentError,
    PaymentProvider,
    PaymentTimeout,
    ProviderError,
    Refund,
    Release,
)
from csms.domain.payments.settlement import PaymentMethod, settle_session
from csms.domain.payments.subscriptions import (
    SessionAllocation,
    Subscribed,
    SubscriptionBill,
    SubscriptionPlan,
    bill_subscription,
    settle_subscription_session,
)
from csms.domain.payments.wallet import (
    PrepaidWallet,
    WalletAuthorization,
    pay_from_wallet,
    settle_wallet_session,
    topup_posting,
    wallet_authorization,
    wallet_balance,
)

__all__ = [
    "RATE_PLACES",
    "ZERO",
    "ActionOutcome",
    "ActionStatus",
    "AuthorizeHold",
    "BillingPeriod",
    "Capture",
    "CaptureHold",
    "CardOnFile",
    "ChargeLine",
    "DeclineReason",
    "Declined",
    "Failed",
    "FollowUp",
    "Hold",
    "IdempotencyKeyReused",
    "PaymentAction",
    "PaymentDeclined",
    "PaymentError",
    "PaymentMethod",
    "PaymentProvider",
    "PaymentTimeout",
    "PrepaidWallet",
    "ProviderError",
    "Refund",
    "RefundCapture",
    "Release",
    "ReleaseHold",
    "SessionAllocation",
    "SessionCost",
    "Settlement",
    "Subscribed",
    "SubscriptionBill",
    "SubscriptionPlan",
    "Succeeded",
    "TimedOut",
    "WalletAuthorization",
    "action_from_record",
    "action_to_record",
    "apply_outcome",
    "bill_subscription",
    "card_preauthorization",
    "collect_by_card",
    "outcome_from_record",
    "outcome_to_record",
    "pay_from_wallet",
    "perform",
    "refund_card_session",
    "retry_delay",
    "session_charge_posting",
    "settle_card_session",
    "settle_session",
    "settle_subscription_session",
    "settle_wallet_session",
    "topup_posting",
    "wallet_authorization",
    "wallet_balance",
]
