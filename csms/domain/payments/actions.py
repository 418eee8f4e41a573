"""The outbox's vocabulary: payment actions, their outcomes and their JSON records.

A `PaymentAction` is what the rules ask of the card provider (hold, capture, release, refund).
Its idempotency key is "{stage}:{step}", with the stage derived from the session or the
subscription period, so a retried action never charges twice. An `ActionOutcome` is what came
of running one. Both convert to JSON-ready records (amounts as strings) for the outbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from csms.domain.payments.provider import Capture, DeclineReason, Hold, Refund, Release


@dataclass(frozen=True, slots=True)
class AuthorizeHold:
    #: The key stem: `session:{id}` for the session-start hold, `session:{id}:extra` for a
    #: hold taken at settlement, `subscription:{driver}:{yyyymm}` for a period bill.
    stage: str
    driver_id: str
    card_ref: str
    amount: Decimal
    currency: str
    #: Capture the whole hold as soon as it is granted (a settlement, not a pre-authorization).
    then_capture: bool

    @property
    def idempotency_key(self) -> str:
        return f"{self.stage}:hold"


@dataclass(frozen=True, slots=True)
class CaptureHold:
    stage: str
    driver_id: str
    hold_id: str
    amount: Decimal
    currency: str

    @property
    def idempotency_key(self) -> str:
        return f"{self.stage}:capture"


@dataclass(frozen=True, slots=True)
class ReleaseHold:
    stage: str
    driver_id: str
    hold_id: str

    @property
    def idempotency_key(self) -> str:
        return f"{self.stage}:release"


@dataclass(frozen=True, slots=True)
class RefundCapture:
    stage: str
    driver_id: str
    capture_id: str
    amount: Decimal
    currency: str

    @property
    def idempotency_key(self) -> str:
        return f"{self.stage}:refund"


PaymentAction = AuthorizeHold | CaptureHold | ReleaseHold | RefundCapture


@dataclass(frozen=True, slots=True)
class Succeeded:
    result: Hold | Capture | Release | Refund


@dataclass(frozen=True, slots=True)
class Declined:
    reason: DeclineReason
    message: str = ""


@dataclass(frozen=True, slots=True)
class TimedOut:
    pass


@dataclass(frozen=True, slots=True)
class Failed:
    error: str
    retryable: bool


ActionOutcome = Succeeded | Declined | TimedOut | Failed


_RECORD_TYPES: Mapping[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        AuthorizeHold, CaptureHold, ReleaseHold, RefundCapture,
        Hold, Capture, Release, Refund,
        Succeeded, Declined, TimedOut, Failed,
    )
}  # fmt: skip


def _to_record(value: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"type": type(value).__name__}
    for field in fields(value):
        item = getattr(value, field.name)
        if isinstance(item, Decimal):
            item = str(item)
        elif isinstance(item, datetime):
            item = item.isoformat()
        elif is_dataclass(item):
            item = _to_record(item)
        record[field.name] = item
    return record


def _from_record(record: Mapping[str, Any]) -> Any:
    cls = _RECORD_TYPES[record["type"]]
    values: dict[str, Any] = {}
    for field in fields(cls):
        item = record[field.name]
        if field.name == "amount":
            item = Decimal(item)
        elif field.name == "expires_at":
            item = datetime.fromisoformat(item)
        elif field.name == "reason":
            item = DeclineReason(item)
        elif field.name == "result":
            item = _from_record(item)
        values[field.name] = item
    return cls(**values)


def action_to_record(action: PaymentAction) -> dict[str, Any]:
    """A JSON-ready record of `action` (amounts as strings) for the outbox, with its key."""
    return {**_to_record(action), "idempotency_key": action.idempotency_key}


def action_from_record(record: Mapping[str, Any]) -> PaymentAction:
    action = _from_record(record)
    if not isinstance(action, AuthorizeHold | CaptureHold | ReleaseHold | RefundCapture):
        raise ValueError(f"{record['type']!r} is no payment action")
    if record.get("idempotency_key", action.idempotency_key) != action.idempotency_key:
        raise ValueError(f"record's key {record['idempotency_key']!r} does not match its stage")
    return action


def outcome_to_record(outcome: ActionOutcome) -> dict[str, Any]:
    return _to_record(outcome)


def outcome_from_record(record: Mapping[str, Any]) -> ActionOutcome:
    outcome = _from_record(record)
    if not isinstance(outcome, Succeeded | Declined | TimedOut | Failed):
        raise ValueError(f"{record['type']!r} is no action outcome")
    return outcome
