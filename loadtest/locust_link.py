"""One charger's OCPP-J connection for the Locust user, over websockets' sync client.

Owns: opening the WebSocket with the version's subprotocol, one CALL and its reply (matched by
message id, timed, the payload validated against the response schema), reading while idle,
answering CSMS-initiated calls on the way (through a callback), and the exceptions a failed
CALL is reported with. Framing and validation are `csms.protocol`'s.

Under Locust, gevent has monkey-patched the process: the sync client's reader thread becomes
a greenlet and its socket and lock waits yield to the other users. This module imports
neither locust nor gevent, so it also runs as plain threads.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from csms.protocol.errors import OcppError
from csms.protocol.frames import (
    Call,
    CallError,
    CallResult,
    MalformedFrame,
    encode_call,
    encode_error,
    parse_frame,
)
from csms.protocol.schemas import validate_response

MAX_MESSAGE_BYTES = 1024 * 1024


class CallFailed(Exception):
    """Why a CALL counts as a failure; Locust reports it under the action's name."""


class CallErrorReply(CallFailed):
    """The CSMS answered with a CALLERROR."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"CALLERROR {code}: {description}")
        self.code = code


class CallTimeout(CallFailed):
    """No answer within the call timeout."""


class ConnectionLost(CallFailed):
    """The WebSocket closed before the answer came."""


class InvalidReply(CallFailed):
    """The answer broke OCPP-J framing or its action's response schema."""


class Refused(CallFailed):
    """A valid answer that refuses what the load needs (a boot, an id tag)."""


class ConnectFailed(Exception):
    """The WebSocket could not be opened with the wanted subprotocol."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One CALL's result: the reply payload or the error, and what Locust records."""

    payload: dict[str, Any] | None
    error: CallFailed | None
    response_time_ms: float
    response_length: int


Answer = Callable[[Call], str]


class OcppLink:
    """A connected charger: CALLs one at a time, CSMS-initiated CALLs answered in between."""

    def __init__(
        self,
        ws: ClientConnection,
        version: str,
        answer: Answer,
        timeout: float,
        owner: contextlib.ExitStack | None = None,
    ) -> None:
        self.ws = ws
        self.version = version
        self.answer = answer
        self.call_timeout = timeout
        self.closed = False
        self._owner = owner or contextlib.ExitStack()
        self._next_id = 0

    @classmethod
    def open(
        cls,
        url: str,
        version: str,
        answer: Answer,
        connect_timeout: float,
        call_timeout: float,
        *,
        headers: Sequence[tuple[str, str]] = (),
        ssl_context: ssl.SSLContext | None = None,
    ) -> OcppLink:
        """Connect to `url` offering the `version` subprotocol (e.g. `ocpp1.6`), with extra
        handshake `headers` (an Authorization) and, for wss://, `ssl_context`."""
        owner = contextlib.ExitStack()
        try:
            # Held as a context manager, as websockets wants (a bare connect() is deprecated).
            ws = owner.enter_context(
                connect(
                    url,
                    subprotocols=[Subprotocol(version)],
                    open_timeout=connect_timeout,
                    close_timeout=1.0,
                    # The CSMS pings; the client answers them and sends none of its own.
                    ping_interval=None,
                    compression=None,
                    max_size=MAX_MESSAGE_BYTES,
                    additional_headers=list(headers) or None,
                    ssl=ssl_context,
                )
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from None
        if ws.subprotocol != version:
            owner.close()
            raise ConnectFailed(f"the server did not select the {version} subprotocol")
        return cls(ws, version, answer, call_timeout, owner)

    def call(self, action: str, payload: dict[str, Any]) -> Outcome:
        """Send one CALL and wait (bounded) for its CALLRESULT or CALLERROR."""
        self._next_id += 1
        message_id = str(self._next_id)
        started = time.perf_counter()
        try:
            self.ws.send(encode_call(message_id, action, payload))
            reply, raw = self._reply(message_id, started + self.call_timeout)
        except ConnectionClosed as exc:
            self.closed = True
            return _failed(ConnectionLost(f"connection closed: {exc}"), started)
        except CallTimeout as exc:
            return _failed(exc, started)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        if isinstance(reply, CallError):
            error: CallFailed = CallErrorReply(reply.code, reply.description)
            return Outcome(None, error, elapsed_ms, len(raw))
        try:
            validate_response(self.version, action, reply.payload)
        except OcppError as exc:
            return Outcome(None, InvalidReply(str(exc)), elapsed_ms, len(raw))
        return Outcome(reply.payload, None, elapsed_ms, len(raw))

    def idle(self, seconds: float, wake: Callable[[], bool]) -> None:
        """Read for up to `seconds`, answering CSMS calls; return early once `wake()` says
        an answer has set something in motion. Raises ConnectionLost."""
        deadline = time.perf_counter() + seconds
        try:
            while (remaining := deadline - time.perf_counter()) > 0:
                try:
                    raw = self.ws.recv(timeout=remaining)
                except TimeoutError:
                    return
                if self._take(raw) is None and wake():
                    return
        except ConnectionClosed as exc:
            self.closed = True
            raise ConnectionLost(f"connection closed: {exc}") from None

    def close(self) -> None:
        self.closed = True
        self._owner.close()

    def _reply(self, message_id: str, deadline: float) -> tuple[CallResult | CallError, str]:
        while (remaining := deadline - time.perf_counter()) > 0:
            try:
                raw = self.ws.recv(timeout=remaining)
            except TimeoutError:
                break
            reply = self._take(raw)
            # A reply to an earlier CALL that timed out is late: drop it.
            if reply is not None and reply.message_id == message_id:
                return reply, raw if isinstance(raw, str) else raw.decode()
        raise CallTimeout(f"no answer within {self.call_timeout:g} s")

    def _take(self, raw: str | bytes) -> CallResult | CallError | None:
        """A reply frame; None after answering a CSMS call or dropping a broken frame."""
        try:
            frame = parse_frame(raw)
        except MalformedFrame as exc:
            if exc.answerable:
                code = exc.error.code_for(self.version)
                self.ws.send(encode_error(exc.message_id, code, exc.error.description))
            return None
        if isinstance(frame, Call):
            self.ws.send(self.answer(frame))
            return None
        return frame


def _failed(error: CallFailed, started: float) -> Outcome:
    return Outcome(None, error, (time.perf_counter() - started) * 1000.0, 0)
