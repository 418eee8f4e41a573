"""`Link`: a virtual charger's side of its OCPP connection, on the shared `OcppSession`.

It owns what goes over the wire and in which order:
- one sender task sends our CALLs one at a time: first "control" calls (boot, heartbeat,
  status, authorize, notifications), then the transaction queue (StartTransaction,
  MeterValues, StopTransaction) in order, only while connected and accepted;
- a transaction message leaves the queue only when the CSMS answered it: after a lost
  connection it goes again on the next one, after a timeout (a lost reply) at once with a
  new message id, after a CALLERROR up to TransactionMessageAttempts times, spaced by
  TransactionMessageRetryInterval;
- 1.6 MeterValues and StopTransaction get their transaction's id when they are sent, so
  those queued while their StartTransaction was unanswered (offline) carry the CSMS's real
  id (2.x TransactionEvents name the charger's own id: they need nothing filled in);
- the reader answers CSMS calls in order through `answer`, and keeps the message log;
- with `record_acks`, every transaction message the CSMS answered is kept as it was sent
  (`acknowledged`), for checking a ledger after crashes.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
import trio

from csms.protocol.errors import InternalError, OcppError
from csms.protocol.frames import CallResult, MalformedFrame, parse_frame
from csms.protocol.session import (
    CallAnswered,
    CallFailed,
    CallReceived,
    FrameRejected,
    OcppSession,
)
from simulator.billing import register_readings
from simulator.config_store import ConfigStore
from simulator.connectors import ChargeSession
from simulator.dialect import Dialect, Ocpp16
from simulator.records import Acknowledgement, MessageRecord
from simulator.timers import Timers
from simulator.transport import MessageTransport, TransportClosed

log = structlog.get_logger("simulator.link")

TX_ACTIONS = frozenset({"StartTransaction", "MeterValues", "StopTransaction", "TransactionEvent"})
#: 1.6 transaction messages that carry the id the CSMS gave the transaction at its start.
_NEEDS_CSMS_ID = frozenset({"MeterValues", "StopTransaction"})

FollowUp = Callable[[], Awaitable[None]]
#: Answers a CSMS call: (response payload, work to start once the response is sent).
Answerer = Callable[[str, dict[str, Any]], tuple[dict[str, Any], FollowUp | None]]
#: Told when the CSMS answered a transaction message: (action, payload, session, result).
TransactionAnswered = Callable[[str, dict[str, Any], ChargeSession | None, dict[str, Any]], None]


class CallUnanswered(Exception):
    """A CALL of ours got no answer: not connected, not yet accepted, or the link broke."""


class _ConnectionLost(CallUnanswered):
    pass


class _Slot:
    """Where the sender puts the answer to a CALL someone awaits."""

    __slots__ = ("_event", "error", "payload")

    def __init__(self) -> None:
        self._event = trio.Event()
        self.payload: dict[str, Any] = {}
        self.error: Exception | None = None

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def set(self, payload: dict[str, Any]) -> None:
        if not self.done:
            self.payload = payload
            self._event.set()

    def fail(self, error: Exception) -> None:
        if not self.done:
            self.error = error
            self._event.set()

    async def wait_done(self) -> None:
        await self._event.wait()

    async def wait(self) -> dict[str, Any]:
        await self._event.wait()
        if self.error is not None:
            raise self.error
        return self.payload


@dataclass(slots=True)
class _Outgoing:
    action: str
    payload: dict[str, Any]
    session: ChargeSession | None = None
    attempts: int = 0
    slot: _Slot | None = None


class Link:
    __slots__ = (
        "_answer",
        "_awaiting",
        "_changed",
        "_clock",
        "_config",
        "_control",
        "_dialect",
        "_drop_replies",
        "_ids",
        "_spawn",
        "_timers",
        "_transaction_answered",
        "_tx_queue",
        "_tx_retry_at",
        "_wake",
        "accepted",
        "acknowledged",
        "call_timeout",
        "messages",
        "record_acks",
        "record_messages",
        "session",
        "station_id",
        "transport",
        "validate",
    )

    def __init__(
        self,
        station_id: str,
        *,
        config: ConfigStore,
        timers: Timers,
        clock: Callable[[], datetime],
        answer: Answerer,
        transaction_answered: TransactionAnswered,
        spawn: Callable[[FollowUp], None],
        changed: Callable[[], None],
        call_timeout: float = 30.0,
        validate: bool = True,
        record_messages: bool = True,
        record_acks: bool = False,
        dialect: Dialect | None = None,
    ) -> None:
        self.station_id = station_id
        self._dialect: Dialect = dialect or Ocpp16()
        self.call_timeout = call_timeout
        self.validate = validate
        self.record_messages = record_messages
        self.messages: list[MessageRecord] = []
        self.record_acks = record_acks
        self.acknowledged: list[Acknowledgement] = []
        self.transport: MessageTransport | None = None
        self.session: OcppSession | None = None
        #: The CSMS accepted our BootNotification on this connection.
        self.accepted = False
        self._config = config
        self._timers = timers
        self._clock = clock
        self._answer = answer
        self._transaction_answered = transaction_answered
        self._spawn = spawn
        self._changed = changed
        self._ids = itertools.count(1)
        self._control: list[_Outgoing] = []
        self._tx_queue: list[_Outgoing] = []
        self._awaiting: tuple[str, _Slot] | None = None
        self._tx_retry_at = 0.0
        self._wake = trio.Event()
        self._drop_replies: list[str | None] = []

    @property
    def online(self) -> bool:
        return self.transport is not None and self.accepted

    @property
    def queued_transaction_messages(self) -> int:
        return len(self._tx_queue)

    @property
    def idle(self) -> bool:
        """Nothing waits to be sent and nothing awaits its answer."""
        return not self._control and not self._tx_queue and self._awaiting is None

    # -- connections ------------------------------------------------------------------------

    def attach(self, transport: MessageTransport) -> OcppSession:
        """A new connection is up: a fresh session (message ids go on counting)."""
        session = OcppSession(
            self._dialect.version,
            self._dialect.csms_actions,
            call_timeout=self.call_timeout,
            validate_outgoing=self.validate,
            new_message_id=lambda: str(next(self._ids)),
            log_context={"station_id": self.station_id},
        )
        self.transport, self.session = transport, session
        self.kick()
        return session

    def detach(self) -> None:
        """The connection is gone: calls in flight fail, transaction messages stay queued."""
        self.accepted = False
        self.transport = None
        if self.session is not None:
            self.session.connection_lost()
            self.session = None
        lost = _ConnectionLost("the connection was lost")
        if self._awaiting is not None:
            self._awaiting[1].fail(lost)
        for item in self._control:
            if item.slot is not None:
                item.slot.fail(lost)
        self._control.clear()
        self._changed()

    # -- sending ------------------------------------------------------------------------------

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a CALL (not a transaction message) and return the CSMS's answer.

        Raises `CallUnanswered` if not connected (or, for anything but BootNotification,
        not accepted) or the link breaks; the `OcppError` of a CALLERROR.
        """
        if not (self.online or (self.transport is not None and action == "BootNotification")):
            raise CallUnanswered(f"{action}: {self.station_id} is offline")
        slot = _Slot()
        self._control.append(_Outgoing(action, payload, slot=slot))
        self.kick()
        return await slot.wait()

    def send_nowait(self, action: str, payload: dict[str, Any]) -> None:
        """Send a CALL nobody waits for (dropped when offline, as a real charger would)."""
        if self.online:
            self._control.append(_Outgoing(action, payload))
            self.kick()

    def queue_transaction_message(
        self, action: str, payload: dict[str, Any], session: ChargeSession
    ) -> None:
        session.record.readings.extend(register_readings(payload))
        self._tx_queue.append(_Outgoing(action, payload, session=session))
        self.kick()

    def kick(self) -> None:
        self._wake.set()

    def drop_next_reply(self, action: str | None = None) -> None:
        """Lose the CSMS's next answer to `action` (any transaction message if None)."""
        self._drop_replies.append(action)

    async def send_raw(self, text: str, label: str) -> None:
        """Send text as it is (a malformed frame), if connected."""
        transport = self.transport
        if transport is None:
            return
        self.log_message("sent", "malformed", label, "", text)
        try:
            await transport.send(text)
        except TransportClosed:
            return

    def _next_outgoing(self) -> tuple[_Outgoing, bool] | None:
        if self.transport is None:
            return None
        if self._control:
            return self._control.pop(0), False
        if self.accepted and self._tx_queue and trio.current_time() >= self._tx_retry_at:
            return self._tx_queue[0], True
        return None

    async def run_sender(self) -> None:
        while True:
            picked = self._next_outgoing()
            if picked is None:
                self._wake = trio.Event()
                if self.idle:
                    self._changed()
                await self._wake.wait()
                continue
            item, transactional = picked
            if transactional:
                await self._send_transaction_message(item)
                continue
            outcome, result = await self._exchange(item.action, item.payload)
            if item.slot is None:
                continue
            if outcome == "answered":
                item.slot.set(result)
            elif isinstance(result, Exception):
                item.slot.fail(result)
            else:
                item.slot.fail(CallUnanswered(f"{item.action}: no answer ({outcome})"))

    async def _send_transaction_message(self, item: _Outgoing) -> None:
        tx = item.session
        payload = item.payload
        if tx is not None and item.action in _NEEDS_CSMS_ID:
            if tx.abandoned or tx.transaction_id is None:
                log.warning(
                    "transaction message dropped: its start was never accepted",
                    station_id=self.station_id,
                    action=item.action,
                )
                self._pop_transaction_message(item)
                return
            payload = {**payload, "transactionId": tx.transaction_id}
        outcome, result = await self._exchange(item.action, payload)
        if outcome == "answered":
            if self.record_acks:
                self.acknowledged.append(
                    Acknowledgement(self.station_id, item.action, payload, result)
                )
            self._pop_transaction_message(item)
            self._transaction_answered(item.action, item.payload, tx, result)
        elif outcome == "error":
            item.attempts += 1
            if item.attempts >= self._config.get_int("TransactionMessageAttempts"):
                log.warning(
                    "transaction message given up",
                    station_id=self.station_id,
                    action=item.action,
                    error=repr(result),
                )
                if item.action == "StartTransaction" and tx is not None:
                    tx.abandoned = True
                self._pop_transaction_message(item)
            else:
                retry = self._config.get_int("TransactionMessageRetryInterval") * item.attempts
                self._tx_retry_at = trio.current_time() + retry
                self._timers.at(("wake", 0), self._tx_retry_at)
        # "timeout" (a lost reply): sent again at once, with a new message id;
        # "lost" (the connection): sent again on the next connection.

    def _pop_transaction_message(self, item: _Outgoing) -> None:
        if self._tx_queue and self._tx_queue[0] is item:
            self._tx_queue.pop(0)
        self._changed()

    async def _exchange(self, action: str, payload: dict[str, Any]) -> tuple[str, Any]:
        """Send one CALL on the current connection and wait for its fate: ("answered",
        payload), ("error", OcppError), ("timeout", None) or ("lost", None)."""
        session, transport = self.session, self.transport
        if session is None or transport is None:
            return "lost", None
        try:
            pending, text = session.send_call(action, payload, trio.current_time())
        except OcppError as error:
            log.error("invalid outgoing call", station_id=self.station_id, error=repr(error))
            return "error", error
        slot = _Slot()
        self._awaiting = (pending.message_id, slot)
        try:
            self.log_message("sent", "CALL", action, pending.message_id, text)
            try:
                await transport.send(text)
            except TransportClosed:
                # The reader detaches once it sees the end too; until then nothing more may
                # go out on this connection (its session still awaits this call's reply).
                if self.transport is transport:
                    self.transport = None
                return "lost", None
            with trio.move_on_at(pending.deadline):
                await slot.wait_done()
            if not slot.done:
                if self.session is session:
                    session.expire(trio.current_time())
                return "timeout", None
        finally:
            self._awaiting = None
        if isinstance(slot.error, _ConnectionLost):
            return "lost", None
        if slot.error is not None:
            return "error", slot.error
        return "answered", slot.payload

    # -- receiving ----------------------------------------------------------------------------

    async def receive_loop(self, transport: MessageTransport, session: OcppSession) -> None:
        """Read and handle messages until the connection ends (`TransportClosed`)."""
        while True:
            text = await transport.receive()
            if self._drop_reply(text, session):
                continue
            event = session.receive(text, trio.current_time())
            if isinstance(event, CallReceived):
                call = event.call
                self.log_message("received", "CALL", call.action, call.message_id, text)
                await self._reply(transport, session, call.action, call.message_id, call.payload)
            elif isinstance(event, CallAnswered | CallFailed):
                pending = event.call
                answered = isinstance(event, CallAnswered)
                kind = "CALLRESULT" if answered else "CALLERROR"
                self.log_message("received", kind, pending.action, pending.message_id, text)
                if self._awaiting is not None and self._awaiting[0] == pending.message_id:
                    if isinstance(event, CallAnswered):
                        self._awaiting[1].set(event.payload)
                    else:
                        self._awaiting[1].fail(event.error)
            elif isinstance(event, FrameRejected):
                self.log_message("received", "malformed", "", "", text, note="rejected")
                if event.reply is not None:
                    self.log_message("sent", "CALLERROR", "", "", event.reply)
                    await transport.send(event.reply)
            else:
                self.log_message("received", "reply", "", event.message_id, text, note="unknown")

    def _drop_reply(self, text: str, session: OcppSession) -> bool:
        """The lost-reply fault: swallow the armed CALLRESULT as if the network lost it."""
        pending = session.outbound
        if not self._drop_replies or pending is None:
            return False
        wanted = self._drop_replies[0]
        if not (pending.action == wanted or (wanted is None and pending.action in TX_ACTIONS)):
            return False
        try:
            frame = parse_frame(text)
        except MalformedFrame:
            return False
        if not isinstance(frame, CallResult) or frame.message_id != pending.message_id:
            return False
        self._drop_replies.pop(0)
        self.log_message(
            "received", "CALLRESULT", pending.action, frame.message_id, text, note="dropped"
        )
        return True

    async def _reply(
        self,
        transport: MessageTransport,
        session: OcppSession,
        action: str,
        message_id: str,
        payload: dict[str, Any],
    ) -> None:
        follow_up: FollowUp | None = None
        try:
            response, follow_up = self._answer(action, payload)
            text = session.reply_result(message_id, response)
            kind = "CALLRESULT"
        except OcppError as error:
            follow_up = None
            text, kind = session.reply_error(message_id, error), "CALLERROR"
        except Exception as exc:
            log.exception("command failed", station_id=self.station_id, action=action)
            follow_up = None
            internal = InternalError(f"{action} could not be processed: {exc!r}")
            text, kind = session.reply_error(message_id, internal), "CALLERROR"
        self.log_message("sent", kind, action, message_id, text)
        await transport.send(text)
        if follow_up is not None:
            self._spawn(follow_up)

    def log_message(
        self, direction: str, kind: str, action: str, message_id: str, text: str, note: str = ""
    ) -> None:
        if self.record_messages:
            self.messages.append(
                MessageRecord(
                    self.station_id,
                    direction,
                    kind,
                    action,
                    message_id,
                    self._clock(),
                    len(text.encode()),
                    note,
                )
            )
