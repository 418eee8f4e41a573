"""The OCPP WebSocket endpoint and the CSMS's root: `run_csms` under one `trio.run`.

`ws://HOST:PORT/ANY/PREFIX/{chargePointId}`: the last path segment is the charge point id.
A handshake that offers no supported subprotocol, or names no usable id, is refused with an
HTTP status and a body saying why.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import unquote

import structlog
import trio

from csms.config import Settings
from csms.domain.events import DomainEvent
from csms.domain.identity import BadStationId, validate_station_id
from csms.domain.ledger import LedgerRules
from csms.domain.replies import Reply
from csms.protocol.adapters import ADAPTERS, negotiate
from csms.runtime.connection import ChargerConnection, WallClock, utc_now
from csms.runtime.events import EventBus
from csms.runtime.keepalive import watch_connections
from csms.runtime.ledger_actor import LedgerActor
from csms.runtime.metrics import CsmsMetrics
from csms.runtime.payments import provider_from, run_payments
from csms.runtime.registry import ConnectionRegistry
from csms.runtime.websocket import Decision, Handshake, ServerWebSocket
from csms.storage.base import Store, open_store

log = structlog.get_logger("csms.server")


def station_id_from_path(path: str) -> str:
    """The charge point id of a request path: its last segment, URL-decoded."""
    # "/ocpp/" names no id (its last segment is empty); it is not the station "ocpp".
    raw = path.split("?", 1)[0].rsplit("/", 1)[-1]
    if not raw:
        raise BadStationId("the URL names no charge point id (expected /ocpp/{id})")
    return validate_station_id(unquote(raw))


@dataclass
class Csms:
    """The running server's parts, for callers that host it (tests, the API, the simulator)."""

    settings: Settings
    ledger: LedgerActor
    registry: ConnectionRegistry
    listeners: list[trio.SocketListener] = field(default_factory=list)
    wall_clock: WallClock = utc_now
    #: Where short-lived tasks of connections run (outbound commands).
    background: trio.Nursery | None = None
    events: EventBus = field(default_factory=EventBus)
    metrics: CsmsMetrics = field(default_factory=CsmsMetrics)
    #: The operator API's port once it listens (None: not served).
    http_port: int | None = None

    def _background(self) -> trio.Nursery:
        assert self.background is not None, "serve_ocpp has not started"
        return self.background

    @property
    def ocpp_port(self) -> int:
        assert self.listeners, "serve_ocpp has not started"
        port: int = self.listeners[0].socket.getsockname()[1]
        return port

    def _decide(self, handshake: Handshake) -> Decision:
        """Accept a handshake with its subprotocol, or refuse it with a status and why."""
        try:
            station_id_from_path(handshake.path)
        except BadStationId as exc:
            return None, (400, str(exc))
        version = negotiate(handshake.subprotocols)
        if version is None:
            offered = ", ".join(handshake.subprotocols) or "none"
            return None, (
                400,
                f"no supported OCPP subprotocol offered ({offered}); "
                f"this server speaks {', '.join(ADAPTERS)}",
            )
        return version, None

    async def handle_stream(self, stream: trio.abc.Stream, remote: str = "") -> None:
        """Serve one TCP (or in-memory) stream: the WebSocket handshake, then the charger."""
        settings = self.settings
        if not remote and isinstance(stream, trio.SocketStream):
            host, port = stream.socket.getpeername()[:2]
            remote = f"{host}:{port}"
        ws = ServerWebSocket(stream, max_message_size=settings.max_message_size)
        handshake = None
        with trio.move_on_after(settings.handshake_timeout):
            handshake = await ws.handshake(self._decide)
        if handshake is None or ws.subprotocol is None:
            if not ws.closed:
                log.warning("handshake timed out", remote=remote)
                await ws.close()
            else:
                log.info(
                    "handshake refused",
                    remote=remote,
                    path=(handshake.path if handshake else "")[:200],
                )
            return
        connection = ChargerConnection(
            station_id_from_path(handshake.path),
            ws,
            ws.subprotocol,
            ledger=self.ledger,
            registry=self.registry,
            settings=settings,
            background=self._background(),
            wall_clock=self.wall_clock,
            remote=remote,
            metrics=self.metrics,
        )
        await connection.run()

    async def serve_ocpp(
        self,
        *,
        listen: bool = True,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve connections until cancelled: on the TCP port, and whatever streams a host
        hands to `handle_stream` (they need `background`, which this provides)."""
        settings = self.settings
        if listen:
            self.listeners = await trio.open_tcp_listeners(
                settings.ocpp_port, host=settings.ocpp_host
            )
        async with trio.open_nursery() as handlers:
            self.background = handlers
            await handlers.start(watch_connections, self.registry, settings)
            if listen:
                await handlers.start(
                    partial(trio.serve_listeners, handler_nursery=handlers),
                    self.handle_stream,
                    self.listeners,
                )
                log.info("OCPP endpoint listening", host=settings.ocpp_host, port=self.ocpp_port)
            task_status.started()
            await trio.sleep_forever()


async def run_csms(
    settings: Settings,
    *,
    store: Store | None = None,
    wall_clock: WallClock = utc_now,
    virtual_time: bool = False,
    listen: bool = True,
    task_status: trio.TaskStatus[Csms] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the CSMS until cancelled: the ledger actor, the OCPP endpoint and (when it
    listens on SQLite) the operator's HTTP API.

    `virtual_time` is for hosts that run it under a jumping MockClock (the simulator's
    in-process mode): commits then run inline. With `listen=False` no TCP port is opened;
    streams are handed to `Csms.handle_stream` by the host.
    """
    own_store = store is None
    the_store: Store = store if store is not None else open_store(settings.database_url)
    the_store.mark_all_offline()
    events, metrics = EventBus(), CsmsMetrics()

    def committed(batch: Sequence[tuple[DomainEvent, Reply]], seconds: float) -> None:
        metrics.ledger_committed(batch, seconds)
        events.ledger_committed(batch)

    rules = LedgerRules(
        unknown_stations=settings.unknown_stations,
        heartbeat_interval=settings.heartbeat_interval,
        billing=settings.billing_rules(),
    )
    ledger = LedgerActor(
        the_store,
        rules,
        queue_size=settings.ledger_queue_size,
        max_batch=settings.ledger_max_batch,
        commit_in_thread=not virtual_time,
        on_commit=committed,
    )
    csms = Csms(
        settings,
        ledger,
        ConnectionRegistry(),
        wall_clock=wall_clock,
        events=events,
        metrics=metrics,
    )
    # The ledger outlives the connections: their last words (disconnects) still get recorded.
    ledger_scope = trio.CancelScope(shield=True)

    async def run_ledger(*, task_status: trio.TaskStatus[None]) -> None:
        with ledger_scope:
            await ledger.run(task_status=task_status)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signals, nursery.cancel_scope)
            await nursery.start(run_ledger)
            try:
                async with trio.open_nursery() as services:
                    provider = provider_from(settings, csms.wall_clock)
                    # On its own connection to the server's own database: not for a store
                    # handed in (tests), nor for PostgreSQL (not available yet).
                    if (
                        provider is not None
                        and own_store
                        and settings.database_url.startswith("sqlite:///")
                    ):
                        await services.start(
                            partial(
                                run_payments,
                                settings,
                                provider,
                                csms.wall_clock,
                                in_thread=not virtual_time,
                            )
                        )
                    await services.start(partial(csms.serve_ocpp, listen=listen))
                    if listen and settings.database_url.startswith("sqlite:///"):
                        from csms.api.launch import serve_api  # the layer above: imported late

                        await services.start(serve_api, csms)
                    task_status.started(csms)
            finally:
                ledger_scope.cancel()
    finally:
        if own_store:
            the_store.close()


async def _stop_on_signals(scope: trio.CancelScope) -> None:
    """SIGTERM and SIGINT end the server in order: connections first, then the ledger."""
    try:
        signals = trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT)
    except RuntimeError:  # not the main thread (a test hosting the server): no signals
        return
    with signals as received:
        async for signum in received:
            log.info("stopping", signal=signal.Signals(signum).name)
            scope.cancel()
            return
