"""`VirtualChargePoint`: one OCPP 1.6J or 2.0.1 charger of the fleet simulator, on the shared
sans-I/O protocol core (`OcppSession`) over a `MessageTransport`; what it says on the wire is
its `dialect` (`simulator.dialect`), the rest is the same for both versions.

It owns the charger's life: connecting and reconnecting, booting (Pending and Rejected
retried after the interval given), heartbeats, status notifications, meter values (periodic
and clock-aligned), the physics of each connector under its charging-profile limit, reboots
and the fault hooks. Its parts: `link` (the OCPP connection, the ordered transaction
queue, the message log), `sessions` (the driver API: `plug_in`, `unplug`, `stop_charging`),
`commands` (answers to CSMS-initiated calls), `metering` (physics, meter values and
status notifications), `maintenance` (file transfers),
`config_store`, `local_list`, `smart_charging`, `connectors`, `timers`.

Connections: `run()` is the charger's lifetime. It calls `connect(nursery)` for each
connection (the `Connector` the fleet layer gives it, see `transport`); when a connection
ends (the CSMS closed it, a fault dropped it, a reset) it waits `reconnect_delay_s` and
connects again, and boots on every new connection. So the fleet layer's hook for
reconnecting is the `Connector` itself, plus `on_reboot`, awaited after each reboot before
the charger reconnects. While disconnected, transaction messages queue in order (`link`).
A new password from the CSMS (`take_password`) goes to the connector, if it keeps one
(`transport.PasswordKeeper`), and the charger reconnects with it at once.

Time: `trio.current_time()` for durations (MockClock works); wall-clock timestamps from the
injected `clock` plus the clock-skew fault; randomness from the injected generator.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
import structlog
import trio

from csms.protocol import v16
from csms.protocol.errors import OcppError
from simulator.commands import CommandHandlers
from simulator.config_store import ConfigStore
from simulator.connectors import ConnectorSpec, ConnectorState
from simulator.dialect import Dialect, dialect_for
from simulator.link import CallUnanswered, FollowUp, Link
from simulator.local_list import LocalAuthorization
from simulator.metering import Metering
from simulator.physics import Vehicle
from simulator.records import MessageRecord, Refusal, SessionRecord
from simulator.sessions import PlugResult, SessionFlows
from simulator.smart_charging import SmartCharging
from simulator.timers import Clockwork, TimerKey, Timers
from simulator.transport import Connector, PasswordKeeper, TransportClosed
from simulator.v201_commands import V201Commands

__all__ = [
    "CallUnanswered",
    "ChargerInfo",
    "ConnectorSpec",
    "PlugResult",
    "Timing",
    "VirtualChargePoint",
]

log = structlog.get_logger("simulator.chargepoint")

MALFORMED_FRAMES = {
    "json": '[2, "bad-json", "Heartbeat", {',
    "frame": '[2, "bad-frame"]',
    "schema": '[2, "bad-schema", "Heartbeat", {"unexpected": 1}]',
    "action": '[2, "bad-action", "NoSuchAction", {}]',
}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ChargerInfo:
    vendor: str = "Simulated"
    model: str = "VCP-1"
    firmware_version: str = "1.0.0"
    serial_number: str | None = None


@dataclass(frozen=True, slots=True)
class Timing:
    """How long the charger waits for things (seconds)."""

    call_timeout_s: float = 30.0
    reconnect_delay_s: float = 10.0
    reboot_delay_s: float = 10.0
    boot_retry_s: float = 30.0
    physics_step_s: float = 60.0
    firmware_install_s: float = 30.0
    #: A soft reset waits this long for queued transaction messages to go out.
    flush_timeout_s: float = 30.0


class VirtualChargePoint:
    """One virtual charger. Typical use by the fleet layer::

        cp = VirtualChargePoint("CP-1", url_connector("ws://host:9000/ocpp", "CP-1"),
                                connectors=[ConnectorSpec(22_000)], clock=clock, rng=rng)
        nursery.start_soon(cp.run)
        await cp.plug_in(1, vehicle, "RFID-1")   # ... later
        await cp.unplug(1)

    `connect` opens each connection (`transport.Connector`); `clock` gives wall-clock time
    (follow trio's clock in virtual-time mode); `rng` is the charger's own seeded generator;
    `config` overrides configuration keys; `record_messages=False` keeps no message log
    (memory in large fleets); `record_acks=True` keeps every acknowledged transaction
    message (`link.acknowledged`); `on_reboot(cp)` is awaited after every reboot, before the
    charger connects again. Results: `messages`, `sessions`, `refusals`.

    Fault hooks (synchronous, for the fleet layer): `drop_connection()`,
    `go_offline(seconds)`, `reboot()`, `skew_clock(seconds)`, `meter_reset(connector_id)`,
    `send_malformed_frame(kind)`, `drop_next_reply(action)`, `fault_connector(...)` and
    `clear_fault(...)`.
    """

    __slots__ = (
        "_changed",
        "_clock",
        "_conn_scope",
        "_connect",
        "_flows",
        "_idle_scope",
        "_last_heartbeat",
        "_nursery",
        "_offline_until",
        "_reboot_reason",
        "_reconnect_now",
        "boots",
        "clock_skew_s",
        "commands",
        "config",
        "connections",
        "connectors",
        "diagnostics_status",
        "dialect",
        "firmware_status",
        "firmware_version",
        "info",
        "link",
        "local_auth",
        "metering",
        "on_reboot",
        "passwords_taken",
        "reboots",
        "refusals",
        "registration_status",
        "rng",
        "sessions",
        "smart",
        "station_id",
        "station_operative",
        "timers",
        "timing",
    )

    def __init__(
        self,
        station_id: str,
        connect: Connector,
        *,
        connectors: Sequence[ConnectorSpec] = (ConnectorSpec(),),
        clock: Callable[[], datetime] = utc_now,
        rng: np.random.Generator | None = None,
        config: dict[str, str | int | bool] | None = None,
        info: ChargerInfo | None = None,
        timing: Timing | None = None,
        record_messages: bool = True,
        record_acks: bool = False,
        validate: bool = True,
        on_reboot: Callable[[VirtualChargePoint], Awaitable[None]] | None = None,
        clockwork: Clockwork | None = None,
        ocpp_version: str = v16.VERSION,
    ) -> None:
        self.station_id = station_id
        #: What it says on the wire: OCPP 1.6 or 2.0.1 (`simulator.dialect`).
        self.dialect: Dialect = dialect_for(ocpp_version)
        self._connect = connect
        self._clock = clock
        # Without a generator of its own, one seeded by the id: runs stay reproducible.
        self.rng = (
            rng if rng is not None else np.random.default_rng(zlib.crc32(station_id.encode()))
        )
        self.info = info or ChargerInfo(serial_number=f"SIM{int(self.rng.integers(10**8)):08d}")
        self.timing = timing or Timing()
        self.on_reboot = on_reboot
        self.config = ConfigStore(len(connectors), config)
        self.local_auth = LocalAuthorization(
            self.config.get_int("LocalAuthListMaxLength"),
            self.config.get_int("SendLocalListMaxLength"),
        )
        self.smart = SmartCharging(
            self.config.get_int("ChargeProfileMaxStackLevel"),
            self.config.get_int("ChargingScheduleMaxPeriods"),
            self.config.get_int("MaxChargingProfilesInstalled"),
        )
        self.connectors = {
            i: ConnectorState(i, spec, int(self.rng.integers(0, 1_000_000)))
            for i, spec in enumerate(connectors, start=1)
        }
        self.station_operative = True
        self.clock_skew_s = 0.0
        self.firmware_version = self.info.firmware_version
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"
        self.registration_status: str | None = None
        #: Accepted BootNotifications, reboots, connections opened: counters for tests/results.
        self.boots = 0
        self.reboots = 0
        self.connections = 0
        #: New passwords taken from the CSMS (password rotation).
        self.passwords_taken = 0
        self.sessions: list[SessionRecord] = []
        self.refusals: list[Refusal] = []
        self._changed = trio.Event()
        self.timers = Timers(clockwork)
        self._nursery: trio.Nursery | None = None
        self._conn_scope: trio.CancelScope | None = None
        self._idle_scope: trio.CancelScope | None = None
        self._offline_until = -math.inf
        self._reboot_reason: str | None = None
        self._reconnect_now = False
        self._last_heartbeat = 0.0
        self.metering = Metering(self)
        self.commands = CommandHandlers(self)
        self._flows = SessionFlows(self)
        answers: CommandHandlers | V201Commands = (
            self.commands if self.dialect.version == v16.VERSION else V201Commands(self.commands)
        )
        self.link = Link(
            station_id,
            config=self.config,
            timers=self.timers,
            clock=clock,
            answer=answers.handle,
            transaction_answered=answers.transaction_answered,
            dialect=self.dialect,
            spawn=self.spawn,
            changed=self.notify_changed,
            call_timeout=self.timing.call_timeout_s,
            validate=validate,
            record_messages=record_messages,
            record_acks=record_acks,
        )
        self.config.subscribe(self._config_changed)

    # -- state -----------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        """Connected and accepted by the CSMS: messages can flow."""
        return self.link.online

    @property
    def connected(self) -> bool:
        return self.link.transport is not None

    @property
    def messages(self) -> list[MessageRecord]:
        """Every message sent and received (see `MessageRecord`)."""
        return self.link.messages

    @property
    def queued_transaction_messages(self) -> int:
        return self.link.queued_transaction_messages

    def now(self) -> datetime:
        """The charger's wall clock (the injected clock plus the clock-skew fault)."""
        return self._clock() + timedelta(seconds=self.clock_skew_s)

    def epoch(self) -> float:
        return self.now().timestamp()

    def timestamp(self) -> str:
        return v16.iso(self.now())

    def connector(self, connector_id: int) -> ConnectorState:
        try:
            return self.connectors[connector_id]
        except KeyError:
            raise ValueError(f"{self.station_id} has no connector {connector_id}") from None

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; it is checked whenever the charger's state moves."""
        while not predicate():
            await self._changed.wait()

    async def wait_booted(self) -> None:
        await self.wait_for(lambda: self.online)

    async def wait_delivered(self) -> None:
        """Wait until every transaction message has been answered by the CSMS."""
        await self.wait_for(lambda: self.online and not self.link.queued_transaction_messages)

    async def wait_idle(self) -> None:
        """Wait until online and every message has gone out and been answered."""
        await self.wait_for(lambda: self.online and self.link.idle)

    def notify_changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -- lifetime ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Live until cancelled: connect, boot, serve; reconnect after drops and reboots."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.link.run_sender)
            self.timers.bind(self._fire)
            if self.timers.owns_clockwork:
                nursery.start_soon(self.timers.clockwork.run)
            task_status.started()
            try:
                await self._stay_connected()
            finally:
                self.timers.bind(None)

    def spawn(self, work: FollowUp) -> None:
        """Run `work` in the charger's nursery; its failure is logged, never fatal."""
        assert self._nursery is not None, "the charger is not running"

        async def guarded() -> None:
            try:
                await work()
            except Exception as exc:
                log.exception("charger task failed", station_id=self.station_id, error=repr(exc))

        self._nursery.start_soon(guarded)

    async def _stay_connected(self) -> None:
        while True:
            if self._reboot_reason is not None:
                await self._restart()
            await self._pause_until(self._offline_until)
            if self._reboot_reason is not None:
                continue
            await self._serve_connection()
            if self._reconnect_now:
                self._reconnect_now = False
            elif self._reboot_reason is None:
                await self._pause_until(trio.current_time() + self.timing.reconnect_delay_s)

    async def _pause_until(self, deadline: float) -> None:
        """Sleep until `deadline`; a reboot ends the pause early."""
        if deadline <= trio.current_time():
            return
        with trio.CancelScope(deadline=deadline) as scope:
            self._idle_scope = scope
            try:
                await trio.sleep_forever()
            finally:
                self._idle_scope = None

    async def _serve_connection(self) -> None:
        async with trio.open_nursery() as conn:
            self._conn_scope = conn.cancel_scope  # a drop while connecting abandons it
            try:
                transport = await self._connect(conn)
            except Exception as exc:
                log.info("connect failed", station_id=self.station_id, error=repr(exc))
                conn.cancel_scope.cancel()
                return
            finally:
                self._conn_scope = None
            session = self.link.attach(transport)
            self.connections += 1
            stopping = False
            try:
                conn.start_soon(self._boot_sequence)
                # A drop cancels the reading only: the WebSocket's own tasks (in `conn`)
                # must live on for the close handshake.
                with trio.CancelScope() as reading:
                    self._conn_scope = reading
                    await self.link.receive_loop(transport, session)
            except TransportClosed:
                pass
            except trio.Cancelled:
                stopping = True  # the charger itself stops: no close handshake to wait for
                raise
            finally:
                self._conn_scope = None
                self.link.detach()
                self.timers.cancel(("heartbeat", 0))
                self.timers.cancel(("aligned", 0))
                with trio.CancelScope(shield=True), trio.move_on_after(0 if stopping else 10):
                    await transport.aclose()
                conn.cancel_scope.cancel()

    async def _boot_sequence(self) -> None:
        while True:
            try:
                reply = await self.link.call("BootNotification", self.boot_payload())
            except (CallUnanswered, OcppError):
                if not self.connected:
                    return
                await trio.sleep(self.timing.boot_retry_s)
                continue
            if self.apply_boot(reply):
                return
            interval = int(reply.get("interval", 0))
            await trio.sleep(interval if interval > 0 else self.timing.boot_retry_s)

    def boot_payload(self) -> dict[str, Any]:
        return self.dialect.boot_payload(self.info, self.firmware_version)

    def apply_boot(self, reply: dict[str, Any]) -> bool:
        """Take a BootNotification answer; True if the charger is (now) accepted."""
        status = reply["status"]
        self.registration_status = status
        if status != "Accepted":
            return False
        first = not self.link.accepted
        self.link.accepted = True
        self.boots += 1
        interval = int(reply.get("interval", 0))
        if interval > 0:
            self.config.set("HeartbeatInterval", interval)
        self._schedule_heartbeat(trio.current_time())
        if first:
            self.refresh_status(0, force=True)
            for connector in self.connectors.values():
                self.refresh_status(connector.connector_id, force=True)
            self.metering.schedule_aligned()
            self.link.kick()
        self.notify_changed()
        return True

    # -- faults the fleet layer injects -------------------------------------------------------

    def drop_connection(self) -> None:
        """Close the connection now (the CSMS sees a disconnect); reconnect after the delay."""
        if self._conn_scope is not None:
            self._conn_scope.cancel()

    def take_password(self, password: str) -> None:
        """The CSMS gave this charger a new Basic-auth password (already validated): log in
        with it from now on, closing this connection and opening a new one at once, as the
        security whitepaper has a charge point do."""
        if isinstance(self._connect, PasswordKeeper):
            self._connect.change_password(password)
        self.passwords_taken += 1
        if self._conn_scope is not None:
            self._reconnect_now = True
            self.drop_connection()

    def go_offline(self, seconds: float) -> None:
        """Drop the connection and stay offline for `seconds`: transaction messages queue."""
        self._offline_until = trio.current_time() + seconds
        self.drop_connection()

    def reboot(self, stop_reason: str = "Reboot") -> None:
        """Power-cycle: running transactions stop with `stop_reason`, the link drops, the
        charger boots again after `reboot_delay_s`."""
        self.spawn(lambda: self.restart_after(stop_reason, flush=False))

    def skew_clock(self, seconds: float) -> None:
        """Offset every timestamp the charger writes by `seconds` from now on."""
        self.clock_skew_s = seconds

    def meter_reset(self, connector_id: int) -> None:
        """The connector's energy register restarts from 0 (mid-session too).

        During a transaction the charger reports the reading before the reset and the zero
        after it (contexts Interruption.Begin and Interruption.End), so that a CSMS can
        carry the energy across the reset.
        """
        self.metering.reset_register(self.connector(connector_id))

    def drop_next_reply(self, action: str | None = None) -> None:
        """Lose the CSMS's next answer to `action` (any transaction message if None): the
        charger times out and sends the message again with a new message id."""
        self.link.drop_next_reply(action)

    def send_malformed_frame(self, kind: str = "json") -> None:
        """Send a broken frame (`json`, `frame`, `schema` or `action`, see MALFORMED_FRAMES)."""
        self.spawn(partial(self.link.send_raw, MALFORMED_FRAMES[kind], kind))

    def fault_connector(self, connector_id: int, error_code: str = "GroundFailure") -> None:
        """A hardware fault: a running transaction stops (Other), the connector is Faulted."""
        connector = self.connector(connector_id)
        if connector.tx is not None:
            self._flows.end_transaction(connector, "Other")
        connector.faulted, connector.error_code = True, error_code
        self.refresh_status(connector_id)

    def clear_fault(self, connector_id: int) -> None:
        connector = self.connector(connector_id)
        connector.faulted, connector.error_code = False, "NoError"
        self.refresh_status(connector_id)

    # -- reboots ----------------------------------------------------------------------------

    async def restart_after(self, stop_reason: str, *, flush: bool) -> None:
        """Stop the transactions (reason `stop_reason`), optionally let their messages go out,
        then close the link and reboot."""
        if self._reboot_reason is not None:
            return
        self._reboot_reason = stop_reason
        for connector in self.connectors.values():
            if connector.tx is not None:
                self._flows.end_transaction(connector, stop_reason)
        if flush and self.online:
            with trio.move_on_after(self.timing.flush_timeout_s):
                await self.wait_for(
                    lambda: not self.link.queued_transaction_messages or not self.online
                )
        if self._idle_scope is not None:
            self._idle_scope.cancel()
        self.drop_connection()

    async def _restart(self) -> None:
        self._reboot_reason = None
        self.reboots += 1
        for connector in self.connectors.values():
            connector.reservation = None
            connector.remote_start = None
            self.timers.cancel(("reservation", connector.connector_id))
            self.timers.cancel(("remote_start", connector.connector_id))
        self.commands.on_reboot()
        await trio.sleep(self.timing.reboot_delay_s)
        if self.on_reboot is not None:
            await self.on_reboot(self)

    # -- timers -------------------------------------------------------------------------------

    def _fire(self, key: TimerKey) -> None:
        kind, connector_id = key
        if kind == "heartbeat":
            if self.online:
                self._last_heartbeat = trio.current_time()
                self.link.send_nowait("Heartbeat", {})
            self._schedule_heartbeat(trio.current_time())
        elif kind == "sample":
            self.metering.periodic_sample(connector_id)
        elif kind == "aligned":
            self.metering.aligned_sample()
        elif kind == "physics":
            self.metering.physics_tick(connector_id)
        elif kind == "wake":
            self.link.kick()
        else:
            self.commands.timer_fired(kind, connector_id)

    def _schedule_heartbeat(self, since: float) -> None:
        interval = self.config.get_int("HeartbeatInterval")
        if interval <= 0 or not self.link.accepted:
            self.timers.cancel(("heartbeat", 0))
        else:
            self.timers.at(("heartbeat", 0), max(since + interval, trio.current_time()))

    def _config_changed(self, key: str, value: str) -> None:
        if key == "HeartbeatInterval":
            self._schedule_heartbeat(self._last_heartbeat)
        elif key == "ClockAlignedDataInterval":
            self.metering.schedule_aligned()
        elif key == "MeterValueSampleInterval":
            for connector in self.connectors.values():
                self.metering.schedule_sample(connector, restart=True)

    # -- metering: physics, meter values and status (see `metering`) -------------------------

    def offered_w(self, connector: ConnectorState, epoch: float | None = None) -> float:
        """What the connector offers: its maximum, or less under a charging profile."""
        return self.metering.offered_w(connector, epoch)

    def advance(self, connector: ConnectorState) -> None:
        """Charge the car up to now, piecewise between the moments the limit changes."""
        self.metering.advance(connector)

    def advance_all(self) -> None:
        self.metering.advance_all()

    def schedule_sample(self, connector: ConnectorState, *, restart: bool = False) -> None:
        self.metering.schedule_sample(connector, restart=restart)

    def send_meter_values(
        self, connector: ConnectorState, measurands: list[str], context: str, timestamp: str
    ) -> None:
        self.metering.send_meter_values(connector, measurands, context, timestamp)

    def station_status(self) -> str:
        return self.metering.station_status()

    def refresh_status(self, connector_id: int, *, force: bool = False) -> None:
        """Report the connector's status if it changed (or always, with `force`)."""
        self.metering.refresh_status(connector_id, force=force)

    # -- sessions: the driver layer's API (see `sessions`) -----------------------------------

    async def plug_in(
        self,
        connector_id: int,
        vehicle: Vehicle,
        id_tag: str | None = None,
        *,
        via_app: bool = False,
    ) -> PlugResult:
        """A driver plugs `vehicle` in and presents the RFID `id_tag` (or, `via_app`, waits
        for the CSMS's remote start): see `SessionFlows.plug_in`."""
        return await self._flows.plug_in(connector_id, vehicle, id_tag, via_app=via_app)

    async def unplug(
        self, connector_id: int, reason: str = "EVDisconnected"
    ) -> SessionRecord | None:
        """The driver unplugs; a running transaction stops with `reason`."""
        return await self._flows.unplug(connector_id, reason)

    async def stop_charging(
        self, connector_id: int, id_tag: str | None = None, reason: str = "Local"
    ) -> SessionRecord | None:
        """The driver stops at the charger (card or button); the car stays plugged in."""
        return await self._flows.stop_charging(connector_id, id_tag, reason)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send any charger-initiated CALL and return the answer (see `Link.call`)."""
        return await self.link.call(action, payload)

    async def authorize(self, id_tag: str) -> tuple[str, str | None]:
        return await self._flows.authorize(id_tag)

    def refuse(
        self, connector: ConnectorState, id_tag: str, status: str, via_app: bool
    ) -> PlugResult:
        return self._flows.refuse(connector, id_tag, status, via_app)

    def begin_transaction(
        self,
        connector: ConnectorState,
        id_tag: str,
        *,
        via_app: bool,
        profile: dict[str, Any] | None = None,
    ) -> SessionRecord:
        return self._flows.begin_transaction(connector, id_tag, via_app=via_app, profile=profile)

    def end_transaction(
        self, connector: ConnectorState, reason: str, *, id_tag: str | None = None
    ) -> None:
        self._flows.end_transaction(connector, reason, id_tag=id_tag)
