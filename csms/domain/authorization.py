"""Who may charge: the rules that turn an id token record into an authorization status."""

from __future__ import annotations

from datetime import datetime

from csms.domain.records import TokenRecord
from csms.domain.replies import AuthorizationStatus, IdTagInfo

TOKEN_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid")


def authorize(
    token: TokenRecord | None,
    parent: TokenRecord | None,
    now: datetime,
    active_transactions: int,
) -> IdTagInfo:
    """Decide a token's status now.

    Unknown tokens are Invalid; a stored status other than Accepted wins; a passed expiry
    reads Expired; a blocked or expired parent (group) token blocks its children; a token at
    its maximum of concurrent transactions reads ConcurrentTx.
    """
    if token is None:
        return IdTagInfo(AuthorizationStatus.INVALID)
    expiry, parent_tag = token.expiry, token.parent_id_tag
    status = _own_status(token, now)
    if status is AuthorizationStatus.ACCEPTED and parent is not None:
        parent_status = _own_status(parent, now)
        if parent_status is not AuthorizationStatus.ACCEPTED:
            status = parent_status
    if (
        status is AuthorizationStatus.ACCEPTED
        and token.max_active_transactions is not None
        and active_transactions >= token.max_active_transactions
    ):
        status = AuthorizationStatus.CONCURRENT_TX
    return IdTagInfo(status, expiry, parent_tag)


def _own_status(token: TokenRecord, now: datetime) -> AuthorizationStatus:
    status = AuthorizationStatus(token.status)
    if status is AuthorizationStatus.ACCEPTED and token.expiry is not None and token.expiry <= now:
        return AuthorizationStatus.EXPIRED
    return status
