"""One text form for every stored moment, so equal instants compare equal in SQL."""

from __future__ import annotations

from datetime import UTC, datetime


def to_text(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with microseconds; a naive moment is taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:  # the common case (parsed "Z", datetime.now(UTC)) skips this
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def from_text(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
