"""The connection actor: one per charger WebSocket.

It drives the connection's `OcppSession`: inbound CALLs become domain events for the ledger
actor and are answered with its reply; commands from its bounded mailbox go out one at a
time and wait for their answer.

Idle connections are most connections, and memory per connection bounds a node's fleet: an
idle actor is one task (beside trio-websocket's reader) with no timer of its own (the
keepalive watch serves them all); its outbound task exists only while commands wait.

Every inbound message passes the connection's `MessageRateLimit` first (the rule is in
`csms.runtime.rate_limit`): over the rate a CALL is refused unprocessed, and a charger that
keeps flooding is closed with 1008.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
import trio

from csms.config import Settings
from csms.domain.events import ConnectionChanged
from csms.domain.replies import BootDecision, ConnectionAck, RegistrationStatus
from csms.protocol.adapters import ADAPTERS, commands_after
from csms.protocol.errors import GenericError, InternalError, OcppError, SecurityError
from csms.protocol.frames import Call, MalformedFrame, encode_error, parse_frame
from csms.protocol.session import (
    CallAnswered,
    CallFailed,
    CallReceived,
    FrameRejected,
    OcppSession,
)
from csms.runtime.ledger_actor import LedgerActor
from csms.runtime.metrics import CsmsMetrics
from csms.runtime.rate_limit import MessageRateLimit, Verdict
from csms.runtime.registry import (
    Command,
    CommandRejected,
    CommandTimeout,
    ConnectionRegistry,
    StationBusy,
    StationOffline,
)
from csms.runtime.slots import ReplySlot
from csms.runtime.websocket import (
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    ServerWebSocket,
    WebSocketClosed,
)

log = structlog.get_logger("csms.connection")

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ChargerConnection:
    __slots__ = (
        "_adapter",
        "_background",
        "_cancel_scope",
        "_closed",
        "_end_reason",
        "_ledger",
        "_mailbox",
        "_metrics",
        "_pending",
        "_rate",
        "_registry",
        "_sender_running",
        "_settings",
        "_wall_clock",
        "_ws",
        "accepted",
        "last_alive",
        "last_heard",
        "pinging",
        "remote",
        "session",
        "station_id",
    )

    def __init__(
        self,
        station_id: str,
        ws: ServerWebSocket,
        version: str,
        *,
        ledger: LedgerActor,
        registry: ConnectionRegistry,
        settings: Settings,
        background: trio.Nursery,
        wall_clock: WallClock = utc_now,
        remote: str = "",
        metrics: CsmsMetrics | None = None,
        rate_limit: MessageRateLimit | None = None,
    ) -> None:
        self.station_id = station_id
        self._metrics = metrics
        self._ws = ws
        self._ledger = ledger
        self._registry = registry
        self._settings = settings
        self._wall_clock = wall_clock
        self.remote = remote
        self._background = background
        self._adapter = ADAPTERS[version]
        self.session = OcppSession(
            version,
            self._adapter.CHARGER_ACTIONS,
            call_timeout=settings.call_timeout,
            validate_outgoing=settings.validate_responses,
            log_context={"station_id": station_id},
        )
        self.accepted = False
        #: When the charger last sent an OCPP message (offline detection) ...
        self.last_heard = trio.current_time()
        #: ... or anything at all, a pong included (keepalive pings).
        self.last_alive = self.last_heard
        #: The station's limit (kept across its reconnects by the server's `RateLimits`).
        self._rate = rate_limit or MessageRateLimit(
            settings.max_messages_per_second, settings.message_burst, self.last_heard
        )
        self._pending: ReplySlot[dict[str, Any]] | None = None
        self._mailbox: list[Command] = []
        self._closed = False
        self._sender_running = False
        self._cancel_scope = trio.CancelScope()
        self._end_reason = "disconnected"
        self.pinging = False

    @property
    def version(self) -> str:
        return self.session.version

    @property
    def mailbox_depth(self) -> int:
        return len(self._mailbox)

    def _count(self, direction: str, action: str, outcome: str, started: float | None) -> None:
        if self._metrics is not None:
            elapsed = None if started is None else trio.current_time() - started
            self._metrics.message(direction, action, outcome, elapsed)

    # -- lifetime ----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until the charger leaves, goes silent or is replaced."""
        self._registry.register(self)
        try:
            with self._cancel_scope:
                ack = await self._ledger.submit(
                    ConnectionChanged(
                        self.station_id,
                        "connected",
                        self._wall_clock(),
                        {"remote": self.remote, "subprotocol": self.session.version},
                    )
                )
                self.accepted = isinstance(ack, ConnectionAck) and ack.registered
                log.info(
                    "charger connected",
                    station_id=self.station_id,
                    remote=self.remote,
                    registered=self.accepted,
                )
                await self._receive_loop()
        finally:
            with trio.CancelScope(shield=True):
                await self._finish()

    def close(self, reason: str) -> None:
        """End the connection: `reason` is "replaced", "offline" or "disconnected"."""
        self._end_reason = reason
        self._cancel_scope.cancel()

    async def ping(self, timeout: float) -> None:
        """Ping; close the connection as half-open if no pong comes within `timeout`."""
        try:
            with trio.move_on_after(timeout) as pong_wait:
                await self._ws.ping()
            if pong_wait.cancelled_caught:
                log.warning("no pong: half-open connection", station_id=self.station_id)
                self.close("offline")
            else:
                self.last_alive = trio.current_time()
        except WebSocketClosed:
            pass
        finally:
            self.pinging = False

    async def _finish(self) -> None:
        self._closed = True
        gone = StationOffline(f"station {self.station_id} disconnected")
        if self._pending is not None:
            self._pending.fail(gone)
        for command in self._mailbox:
            command.slot.fail(gone)
        self._mailbox.clear()
        self.session.connection_lost()
        current = self._registry.unregister(self)
        state = self._end_reason if current else "replaced"
        with trio.move_on_after(self._settings.handshake_timeout):
            if state == "replaced":
                await self._ws.close(CLOSE_NORMAL, "replaced by a newer connection")
            else:
                await self._ws.close()
        try:
            with trio.fail_after(self._settings.handshake_timeout):
                await self._ledger.submit(
                    ConnectionChanged(self.station_id, state, self._wall_clock())
                )
        except (Exception, trio.TooSlowError) as exc:  # the ledger may be stopping too
            log.warning("could not record disconnect", station_id=self.station_id, error=repr(exc))
        log.info("charger connection ended", station_id=self.station_id, state=state)

    # -- inbound -----------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        ws = self._ws
        try:
            while True:
                text = await ws.receive()
                now = trio.current_time()
                self.last_heard = self.last_alive = now
                verdict = self._rate.admit(now)
                if verdict is Verdict.CLOSE:
                    await self._close_for_flooding()
                    return
                if verdict is Verdict.REFUSE and not await self._refuse_over_rate(text):
                    continue
                event = self.session.receive(text, now)
                if isinstance(event, CallReceived):
                    await self._answer(event.call)
                elif isinstance(event, CallAnswered):
                    if self._pending is not None:
                        self._pending.set(event.payload)
                elif isinstance(event, CallFailed):
                    if self._pending is not None:
                        self._pending.fail(CommandRejected(event.error))
                elif isinstance(event, FrameRejected):
                    self._count("inbound", "(rejected)", event.error.code, None)
                    log.warning(
                        "frame rejected",
                        station_id=self.station_id,
                        code=event.error.code,
                        error=event.error.description,
                    )
                    if event.reply is not None:
                        await ws.send(event.reply)
        except WebSocketClosed as closed:
            log.info("socket closed", station_id=self.station_id, code=closed.code)

    async def _refuse_over_rate(self, text: str) -> bool:
        """A message over the rate: answer a CALL with GenericError (unprocessed) and drop
        anything else but a reply; True if the message is a reply to take in after all."""
        try:
            frame = parse_frame(text)
        except MalformedFrame:
            frame = None
        if frame is not None and not isinstance(frame, Call):
            return True
        self._count("inbound", "(rate-limited)", GenericError.code, None)
        if frame is not None:
            code = GenericError.code_for(self.version)
            await self._ws.send(
                encode_error(frame.message_id, code, "message rate limit exceeded; slow down")
            )
        return False

    async def _close_for_flooding(self) -> None:
        log.warning(
            "message rate limit exceeded for too long: closing",
            station_id=self.station_id,
            refused=self._rate.refused,
        )
        with trio.move_on_after(self._settings.handshake_timeout):
            await self._ws.close(CLOSE_POLICY_VIOLATION, "message rate limit exceeded")

    async def _answer(self, call: Call) -> None:
        started, outcome = trio.current_time(), "result"
        follow_ups: list[tuple[str, dict[str, Any]]] = []
        try:
            if not self.accepted and call.action != "BootNotification":
                raise SecurityError(
                    f"{call.action} refused: the station is not accepted; boot first"
                )
            event = self._adapter.to_event(
                self.station_id, call.action, call.payload, self._wall_clock()
            )
            reply = await self._ledger.submit(event)
            if isinstance(reply, BootDecision):
                self.accepted = reply.status is RegistrationStatus.ACCEPTED
            text = self.session.reply_result(call.message_id, self._adapter.to_payload(reply))
            follow_ups = commands_after(self._adapter, reply)
        except OcppError as error:
            outcome = error.code
            text = self.session.reply_error(call.message_id, error)
        except Exception as exc:
            outcome = InternalError.code
            log.error(
                "call failed", station_id=self.station_id, action=call.action, error=repr(exc)
            )
            internal = InternalError(f"{call.action} could not be processed")
            text = self.session.reply_error(call.message_id, internal)
        await self._ws.send(text)
        self._count("inbound", call.action, outcome, started)
        for action, payload in follow_ups:
            self._submit_unawaited(Command(action, payload))

    # -- outbound ----------------------------------------------------------------------

    def submit(self, command: Command) -> None:
        """Put a command in the bounded mailbox; the actor sends it when its turn comes."""
        if self._closed:
            raise StationOffline(f"station {self.station_id} disconnected")
        if len(self._mailbox) >= self._settings.mailbox_size:
            raise StationBusy(
                f"station {self.station_id} has {len(self._mailbox)} commands waiting"
            )
        self._mailbox.append(command)
        if not self._sender_running:
            self._sender_running = True
            self._background.start_soon(self._send_commands)

    def _submit_unawaited(self, command: Command) -> None:
        """A call of the CSMS's own (CostUpdated) that nobody waits for: if it cannot go
        now, it is not worth queueing, as a newer one follows."""
        try:
            self.submit(command)
        except (StationOffline, StationBusy) as exc:
            log.info(
                "call not sent", station_id=self.station_id, action=command.action, why=str(exc)
            )

    async def _send_commands(self) -> None:
        try:
            while self._mailbox:
                await self._send_command(self._mailbox.pop(0))
        finally:
            self._sender_running = False

    async def _send_command(self, command: Command) -> None:
        try:
            pending, text = self.session.send_call(
                command.action, command.payload, trio.current_time()
            )
        except OcppError as error:
            command.slot.fail(error)
            self._count("outbound", command.action, "invalid", None)
            return
        self._pending = command.slot
        started, outcome = trio.current_time(), "result"
        try:
            await self._ws.send(text)
            with trio.move_on_at(pending.deadline):
                await command.slot.wait_filled()
            if command.slot.filled:
                try:
                    await command.slot.wait()
                except CommandRejected as rejected:
                    outcome = rejected.error.code
                except Exception:
                    outcome = "error"
            else:
                outcome = "timeout"
                self.session.expire(trio.current_time())
                command.slot.fail(
                    CommandTimeout(
                        f"{command.action}: no answer within {self.session.call_timeout} s"
                    )
                )
        except WebSocketClosed:
            outcome = "offline"
            command.slot.fail(StationOffline(f"station {self.station_id} disconnected"))
        finally:
            self._pending = None
            self._count("outbound", command.action, outcome, started)
