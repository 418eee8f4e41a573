"""`OcppSession`: the per-connection OCPP-J RPC state machine, sans-I/O.

Text and a timestamp go in, events and text come out. The session enforces at most one
outstanding CALL per direction, refuses a CALL whose id is still in flight, validates
payloads against the schemas, matches replies to the pending call by id and drops late or
unknown replies with a log line. It serves both ends: the CSMS (`peer_actions` are the
charger-initiated actions) and a virtual charger (the reverse).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from csms.protocol import schemas
from csms.protocol.errors import (
    MessageTypeNotSupported,
    NotImplementedCall,
    NotSupported,
    OcppError,
    ProtocolError,
    error_from_code,
)
from csms.protocol.frames import (
    Call,
    CallError,
    CallResult,
    MalformedFrame,
    encode_call,
    encode_error,
    encode_result,
    parse_frame,
)

log = structlog.get_logger("csms.protocol")

_RECENTLY_EXPIRED = 32
#: MessageTypeIds a version defines that no reply may follow (2.1: CALLRESULTERROR, SEND).
_NEVER_ANSWERED_TYPES: dict[str, frozenset[int]] = {"ocpp2.1": frozenset({5, 6})}


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A CALL this side sent and has not had answered yet."""

    message_id: str
    action: str
    payload: dict[str, Any]
    sent_at: float
    deadline: float


@dataclass(frozen=True, slots=True)
class CallReceived:
    """A valid CALL from the peer; answer it with `reply_result` or `reply_error`."""

    call: Call
    received_at: float


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The peer answered our pending CALL with a valid CALLRESULT."""

    call: PendingCall
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallFailed:
    """Our pending CALL ended in an error: a CALLERROR, an invalid result, or a timeout."""

    call: PendingCall
    error: OcppError
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """The peer's message was refused; `reply` is the CALLERROR text to send, if any."""

    error: OcppError
    reply: str | None


@dataclass(frozen=True, slots=True)
class ReplyDropped:
    """A CALLRESULT or CALLERROR that matched nothing pending (late or unknown)."""

    message_id: str
    reason: str


Event = CallReceived | CallAnswered | CallFailed | FrameRejected | ReplyDropped


class CallInProgress(Exception):
    """`send_call` while this side already has a CALL outstanding."""


class NoSuchCall(Exception):
    """A reply for a CALL of the peer's that is not the one in flight."""


def _counter_ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: str(next(counter))


class OcppSession:
    """One connection's RPC state for one OCPP version."""

    __slots__ = (
        "_expired",
        "_inbound",
        "_log_context",
        "_new_message_id",
        "_outbound",
        "call_timeout",
        "peer_actions",
        "validate_outgoing",
        "version",
    )

    def __init__(
        self,
        version: str,
        peer_actions: Iterable[str],
        *,
        call_timeout: float = 30.0,
        validate_outgoing: bool = True,
        new_message_id: Callable[[], str] | None = None,
        log_context: dict[str, Any] | None = None,
    ) -> None:
        if version not in schemas.SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported OCPP version {version!r}")
        self.version = version
        self.peer_actions = frozenset(peer_actions)
        self.call_timeout = call_timeout
        self.validate_outgoing = validate_outgoing
        self._new_message_id = new_message_id or _counter_ids()
        self._log_context = log_context
        self._inbound: Call | None = None
        self._outbound: PendingCall | None = None
        #: Ids of our calls that timed out, to tell a late reply from an unknown one;
        #: created on first use, since most connections never see a timeout.
        self._expired: deque[str] | None = None

    # -- state -------------------------------------------------------------------------

    @property
    def inbound(self) -> Call | None:
        """The peer's CALL that is being processed, if any."""
        return self._inbound

    @property
    def outbound(self) -> PendingCall | None:
        """Our CALL that awaits its reply, if any."""
        return self._outbound

    @property
    def next_deadline(self) -> float | None:
        return self._outbound.deadline if self._outbound else None

    # -- input -------------------------------------------------------------------------

    def receive(self, text: str | bytes, now: float) -> Event:
        """Feed one WebSocket message; return what it means."""
        try:
            frame = parse_frame(text)
        except MalformedFrame as exc:
            if not exc.answerable:
                self._warn("malformed reply dropped", error=exc.error.description)
                return FrameRejected(exc.error, None)
            if self._unanswerable_type(exc.error):
                self._warn("unsupported message dropped", error=exc.error.description)
                return FrameRejected(exc.error, None)
            return FrameRejected(exc.error, self._error_text(exc.message_id, exc.error))
        if isinstance(frame, Call):
            return self._receive_call(frame, now)
        return self._receive_reply(frame)

    def _unanswerable_type(self, error: OcppError) -> bool:
        """2.1's SEND (6) and CALLRESULTERROR (5) must never be answered, even unsupported."""
        return (
            self.version in _NEVER_ANSWERED_TYPES
            and isinstance(error, MessageTypeNotSupported)
            and error.details.get("messageTypeId") in _NEVER_ANSWERED_TYPES[self.version]
        )

    def _receive_call(self, call: Call, now: float) -> Event:
        if self._inbound is not None:
            reason = (
                "message id is still in flight"
                if call.message_id == self._inbound.message_id
                else "another CALL is still in flight; send one at a time"
            )
            error = ProtocolError(reason)
            return FrameRejected(error, self._error_text(call.message_id, error))
        try:
            if call.action not in self.peer_actions:
                if call.action in schemas.actions(self.version):
                    raise NotSupported(f"{call.action} is not sent in this direction")
                raise NotImplementedCall(f"unknown action {call.action}")
            schemas.validate_request(self.version, call.action, call.payload)
        except OcppError as error:
            return FrameRejected(error, self._error_text(call.message_id, error))
        self._inbound = call
        return CallReceived(call, now)

    def _receive_reply(self, frame: CallResult | CallError) -> Event:
        pending = self._outbound
        if pending is None or pending.message_id != frame.message_id:
            late = self._expired is not None and frame.message_id in self._expired
            reason = "late" if late else "unknown"
            self._warn("reply dropped", message_id=frame.message_id, reason=reason)
            return ReplyDropped(frame.message_id, reason)
        self._outbound = None
        if isinstance(frame, CallError):
            return CallFailed(
                pending, error_from_code(frame.code, frame.description, frame.details)
            )
        try:
            schemas.validate_response(self.version, pending.action, frame.payload)
        except OcppError as error:
            return CallFailed(pending, error)
        return CallAnswered(pending, frame.payload)

    def expire(self, now: float) -> CallFailed | None:
        """Time out our pending CALL if its deadline has passed."""
        pending = self._outbound
        if pending is None or now < pending.deadline:
            return None
        self._outbound = None
        if self._expired is None:
            self._expired = deque(maxlen=_RECENTLY_EXPIRED)
        self._expired.append(pending.message_id)
        self._warn("call timed out", action=pending.action, message_id=pending.message_id)
        error = ProtocolError(f"no reply to {pending.action} within {self.call_timeout} s")
        return CallFailed(pending, error, timed_out=True)

    def connection_lost(self) -> PendingCall | None:
        """Forget everything in flight; return our CALL that will never be answered."""
        pending, self._outbound, self._inbound = self._outbound, None, None
        return pending

    # -- output ------------------------------------------------------------------------

    def send_call(
        self, action: str, payload: dict[str, Any], now: float
    ) -> tuple[PendingCall, str]:
        """Start a CALL of ours; raise `CallInProgress` or the payload's OCPP error."""
        if self._outbound is not None:
            raise CallInProgress(f"{self._outbound.action} is still awaiting its reply")
        if self.validate_outgoing:
            schemas.validate_request(self.version, action, payload)
        message_id = self._new_message_id()
        pending = PendingCall(message_id, action, payload, now, now + self.call_timeout)
        self._outbound = pending
        return pending, encode_call(message_id, action, payload)

    def reply_result(self, message_id: str, payload: dict[str, Any]) -> str:
        """Answer the peer's CALL in flight with a CALLRESULT.

        An invalid payload raises its OCPP error and leaves the CALL in flight, so that it
        can still be answered with `reply_error`.
        """
        call = self._inbound_call(message_id)
        if self.validate_outgoing:
            schemas.validate_response(self.version, call.action, payload)
        self._inbound = None
        return encode_result(message_id, payload)

    def reply_error(self, message_id: str, error: OcppError) -> str:
        """Answer the peer's CALL in flight with a CALLERROR."""
        self._take_inbound(message_id)
        return self._error_text(message_id, error)

    def _inbound_call(self, message_id: str) -> Call:
        call = self._inbound
        if call is None or call.message_id != message_id:
            raise NoSuchCall(f"no CALL {message_id!r} of the peer is in flight")
        return call

    def _take_inbound(self, message_id: str) -> Call:
        call = self._inbound_call(message_id)
        self._inbound = None
        return call

    def _warn(self, message: str, **fields: Any) -> None:
        log.warning(message, **(self._log_context or {}), **fields)

    def _error_text(self, message_id: str, error: OcppError) -> str:
        return encode_error(
            message_id, error.code_for(self.version), error.description, error.details
        )
