"""`authorize`: a token record, its parent and the active count to an authorization status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.domain.authorization import TOKEN_STATUSES, authorize
from csms.domain.records import TokenRecord
from csms.domain.replies import AuthorizationStatus, IdTagInfo

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
PAST = NOW - timedelta(seconds=1)
FUTURE = NOW + timedelta(days=30)

ACCEPTED = AuthorizationStatus.ACCEPTED
BLOCKED = AuthorizationStatus.BLOCKED
EXPIRED = AuthorizationStatus.EXPIRED
INVALID = AuthorizationStatus.INVALID
CONCURRENT = AuthorizationStatus.CONCURRENT_TX


def token(
    status: str = "Accepted",
    expiry: datetime | None = None,
    parent: str | None = None,
    max_active: int | None = None,
    id_tag: str = "TAG",
) -> TokenRecord:
    return TokenRecord(id_tag, status, expiry, parent, max_active)


def test_unknown_token_is_invalid() -> None:
    assert authorize(None, None, NOW, 0) == IdTagInfo(INVALID)


def test_accepted_token_without_expiry() -> None:
    assert authorize(token(), None, NOW, 0) == IdTagInfo(ACCEPTED, None, None)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [("Blocked", BLOCKED), ("Expired", EXPIRED), ("Invalid", INVALID)],
)
def test_stored_status_other_than_accepted_wins(stored: str, expected: AuthorizationStatus) -> None:
    # Even with a future expiry, spare capacity and an accepted parent.
    parent = token(id_tag="P")
    info = authorize(token(stored, FUTURE, "P", 5), parent, NOW, 0)
    assert info.status is expected


def test_expiry_in_the_past_reads_expired() -> None:
    info = authorize(token(expiry=PAST), None, NOW, 0)
    assert info.status is EXPIRED
    assert info.expiry == PAST


def test_expiry_exactly_now_reads_expired() -> None:
    assert authorize(token(expiry=NOW), None, NOW, 0).status is EXPIRED


def test_future_expiry_is_accepted_and_carries_the_expiry_date() -> None:
    info = authorize(token(expiry=FUTURE), None, NOW, 0)
    assert info == IdTagInfo(ACCEPTED, FUTURE, None)


def test_parent_tag_is_reported() -> None:
    info = authorize(token(parent="GROUP"), token(id_tag="GROUP"), NOW, 0)
    assert info == IdTagInfo(ACCEPTED, None, "GROUP")


def test_blocked_parent_blocks_the_child() -> None:
    info = authorize(token(parent="GROUP"), token("Blocked", id_tag="GROUP"), NOW, 0)
    assert info.status is BLOCKED
    assert info.parent_id_tag == "GROUP"


def test_expired_parent_expires_the_child() -> None:
    parent = token(expiry=PAST, id_tag="GROUP")
    assert authorize(token(parent="GROUP"), parent, NOW, 0).status is EXPIRED
    assert authorize(token(parent="GROUP"), token("Expired", id_tag="GROUP"), NOW, 0).status is (
        EXPIRED
    )


def test_parent_with_future_expiry_does_not_change_the_child() -> None:
    parent = token(expiry=FUTURE, id_tag="GROUP")
    assert authorize(token(parent="GROUP"), parent, NOW, 0).status is ACCEPTED


def test_child_own_refusal_is_not_overridden_by_parent() -> None:
    parent = token("Expired", id_tag="GROUP")
    assert authorize(token("Blocked", parent="GROUP"), parent, NOW, 0).status is BLOCKED


def test_max_concurrent_transactions() -> None:
    limited = token(max_active=2)
    assert authorize(limited, None, NOW, 0).status is ACCEPTED
    assert authorize(limited, None, NOW, 1).status is ACCEPTED
    assert authorize(limited, None, NOW, 2).status is CONCURRENT
    assert authorize(limited, None, NOW, 3).status is CONCURRENT


def test_no_limit_means_any_number_of_transactions() -> None:
    assert authorize(token(), None, NOW, 1000).status is ACCEPTED


def test_refusal_takes_precedence_over_concurrent_tx() -> None:
    assert authorize(token("Blocked", max_active=1), None, NOW, 5).status is BLOCKED
    assert authorize(token(expiry=PAST, max_active=1), None, NOW, 5).status is EXPIRED


def test_concurrent_tx_keeps_expiry_and_parent() -> None:
    info = authorize(token(expiry=FUTURE, parent="G", max_active=1), token(id_tag="G"), NOW, 1)
    assert info == IdTagInfo(CONCURRENT, FUTURE, "G")


def test_token_statuses_are_the_storable_ones() -> None:
    assert set(TOKEN_STATUSES) == {"Accepted", "Blocked", "Expired", "Invalid"}
    assert all(AuthorizationStatus(s) for s in TOKEN_STATUSES)
