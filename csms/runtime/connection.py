"""The connection actor: one per charger WebSocket.

It drives the connection's `OcppSession`: inbound CALLs become domain events for the ledger
actor and are answered with its reply; commands from the registry mailbox go out one at a
time and wait for their answer. It pings to find half-open sockets and closes a station that
has been silent for longer than its heartbeat allows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from csms.config import Settings
from csms.domain.events import ConnectionChanged
from csms.domain.replies import BootDecision, ConnectionAck, RegistrationStatus
from csms.protocol.adapters import ADAPTERS
from csms.protocol.errors import InternalError, OcppError, SecurityError
from csms.protocol.frames import Call
from csms.protocol.session import (
    CallAnswered,
    CallFailed,
    CallReceived,
    FrameRejected,
    OcppSession,
)
from csms.runtime.ledger_actor import LedgerActor
from csms.runtime.registry import (
    Command,
    CommandRejected,
    CommandTimeout,
    ConnectionHandle,
    ConnectionRegistry,
    StationOffline,
)
from csms.runtime.slots import ReplySlot

log = structlog.get_logger("csms.connection")

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ChargerConnection:
    def __init__(
        self,
        station_id: str,
        ws: WebSocketConnection,
        version: str,
        *,
        ledger: LedgerActor,
        registry: ConnectionRegistry,
        settings: Settings,
        wall_clock: WallClock = utc_now,
        remote: str = "",
    ) -> None:
        self.station_id = station_id
        self._ws = ws
        self._ledger = ledger
        self._registry = registry
        self._settings = settings
        self._wall_clock = wall_clock
        self._remote = remote
        self._log = log.bind(station_id=station_id, remote=remote)
        self._adapter = ADAPTERS[version]
        self.session = OcppSession(
            version,
            self._adapter.CHARGER_ACTIONS,
            call_timeout=settings.call_timeout,
            validate_outgoing=settings.validate_responses,
            log_context={"station_id": station_id},
        )
        self.accepted = False
        self._last_heard = trio.current_time()
        self._pending: ReplySlot[dict[str, Any]] | None = None
        self._mailbox_send, self._mailbox = trio.open_memory_channel[Command](settings.mailbox_size)

    async def run(self) -> None:
        """Serve the connection until the charger leaves, goes silent or is replaced."""
        cancel_scope = trio.CancelScope()
        handle = ConnectionHandle(
            self.station_id,
            self.session.version,
            self._mailbox_send,
            cancel_scope,
            trio.current_time(),
            self._remote,
        )
        self._registry.register(handle)
        reason = "disconnected"
        try:
            with cancel_scope:
                ack = await self._ledger.submit(
                    ConnectionChanged(
                        self.station_id,
                        "connected",
                        self._wall_clock(),
                        {"remote": self._remote, "subprotocol": self.session.version},
                    )
                )
                self.accepted = isinstance(ack, ConnectionAck) and ack.registered
                self._log.info("charger connected", registered=self.accepted)
                reason = await self._serve()
        finally:
            with trio.CancelScope(shield=True):
                await self._finish(handle, reason)

    async def _serve(self) -> str:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_commands)
            nursery.start_soon(self._keep_alive)
            reason = await self._receive_loop()
            nursery.cancel_scope.cancel()
        return reason

    async def _finish(self, handle: ConnectionHandle, reason: str) -> None:
        self._mailbox_send.close()
        if self._pending is not None:
            self._pending.fail(StationOffline(f"station {self.station_id} disconnected"))
        async for command in self._mailbox:
            command.slot.fail(StationOffline(f"station {self.station_id} disconnected"))
        self.session.connection_lost()
        current = self._registry.unregister(handle)
        state = reason if current else "replaced"
        with trio.move_on_after(self._settings.handshake_timeout):
            if state == "replaced":
                await self._ws.aclose(code=1000, reason="replaced by a newer connection")
            else:
                await self._ws.aclose()
        try:
            with trio.fail_after(self._settings.handshake_timeout):
                await self._ledger.submit(
                    ConnectionChanged(self.station_id, state, self._wall_clock())
                )
        except (Exception, trio.TooSlowError) as exc:  # the ledger may be stopping with the server
            self._log.warning("could not record disconnect", error=repr(exc))
        self._log.info("charger connection ended", state=state)

    # -- inbound -----------------------------------------------------------------------

    async def _receive_loop(self) -> str:
        offline_after = self._settings.heartbeat_interval * self._settings.offline_after_heartbeats
        while True:
            with trio.move_on_after(offline_after) as silence:
                try:
                    text = await self._ws.get_message()
                except ConnectionClosed as exc:
                    self._log.info("socket closed", reason=str(exc.reason))
                    return "disconnected"
            if silence.cancelled_caught:
                self._log.warning(
                    "station silent beyond its heartbeat; closing", seconds=offline_after
                )
                return "offline"
            now = trio.current_time()
            self._last_heard = now
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
                self._log.warning(
                    "frame rejected", code=event.error.code, error=event.error.description
                )
                if event.reply is not None:
                    await self._ws.send_message(event.reply)

    async def _answer(self, call: Call) -> None:
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
        except OcppError as error:
            text = self.session.reply_error(call.message_id, error)
        except Exception as exc:
            self._log.error("call failed", action=call.action, error=repr(exc))
            internal = InternalError(f"{call.action} could not be processed")
            text = self.session.reply_error(call.message_id, internal)
        await self._ws.send_message(text)

    # -- outbound ----------------------------------------------------------------------

    async def _send_commands(self) -> None:
        async for command in self._mailbox:
            try:
                pending, text = self.session.send_call(
                    command.action, command.payload, trio.current_time()
                )
            except OcppError as error:
                command.slot.fail(error)
                continue
            self._pending = command.slot
            await self._ws.send_message(text)
            with trio.move_on_at(pending.deadline):
                await command.slot.wait_filled()
            if not command.slot.filled:
                self.session.expire(trio.current_time())
                command.slot.fail(
                    CommandTimeout(
                        f"{command.action}: no answer within {self.session.call_timeout} s"
                    )
                )
            self._pending = None

    async def _keep_alive(self) -> None:
        while True:
            await trio.sleep(self._settings.ping_interval)
            with trio.move_on_after(self._settings.ping_timeout) as scope:
                try:
                    await self._ws.ping()
                except ConnectionClosed:
                    return
            if scope.cancelled_caught:
                self._log.warning("no pong; closing half-open connection")
                await self._ws.aclose(code=1011, reason="ping timeout")
                return
