"""Settling a session by its payment method: card on file, prepaid wallet or subscription.

`PaymentMethod` is the union of the three; `settle_session` hands a rated session to the
method's own rules in `card`, `wallet` and `subscriptions`.
"""

from __future__ import annotations

from csms.domain.payments.card import CardOnFile, settle_card_session
from csms.domain.payments.costs import SessionCost
from csms.domain.payments.outbox import Settlement
from csms.domain.payments.subscriptions import Subscribed, settle_subscription_session
from csms.domain.payments.wallet import PrepaidWallet, settle_wallet_session

PaymentMethod = CardOnFile | PrepaidWallet | Subscribed


def settle_session(cost: SessionCost, method: PaymentMethod) -> Settlement:
    match method:
        case CardOnFile():
            return settle_card_session(cost, method)
        case PrepaidWallet():
            return settle_wallet_session(cost)
        case Subscribed():
            return settle_subscription_session(cost)
