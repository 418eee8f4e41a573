"""The OCPP WebSocket endpoint and the CSMS's root: `run_csms` under one `trio.run`.

`ws://HOST:PORT/ANY/PREFIX/{chargePointId}`: the last path segment is the charge point id.
A handshake that offers no supported subprotocol, or names no usable id, is refused with an
HTTP status and a body saying why.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from urllib.parse import unquote

import structlog
import trio
from trio_websocket import WebSocketRequest, WebSocketServer, serve_websocket

from csms.config import Settings
from csms.domain.identity import BadStationId, validate_station_id
from csms.domain.ledger import LedgerRules
from csms.protocol.adapters import ADAPTERS, negotiate
from csms.runtime.connection import ChargerConnection, WallClock, utc_now
from csms.runtime.keepalive import watch_connections
from csms.runtime.ledger_actor import LedgerActor
from csms.runtime.registry import ConnectionRegistry
from csms.storage.base import Store, open_store

log = structlog.get_logger("csms.server")


def station_id_from_path(path: str) -> str:
    """The charge point id of a request path: its last non-empty segment, URL-decoded."""
    raw = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    if not raw:
        raise BadStationId("the URL names no charge point id (expected /ocpp/{id})")
    return validate_station_id(unquote(raw))


@dataclass
class Csms:
    """The running server's parts, for callers that host it (tests, the API, the simulator)."""

    settings: Settings
    ledger: LedgerActor
    registry: ConnectionRegistry
    ocpp_server: WebSocketServer | None = None
    wall_clock: WallClock = utc_now
    #: Where short-lived tasks of connections run (outbound commands).
    background: trio.Nursery | None = None

    def _background(self) -> trio.Nursery:
        assert self.background is not None, "serve_ocpp has not started"
        return self.background

    @property
    def ocpp_port(self) -> int:
        assert self.ocpp_server is not None
        return self.ocpp_server.port

    async def handle_request(self, request: WebSocketRequest) -> None:
        """Serve one WebSocket handshake and, if accepted, its connection."""
        try:
            station_id = station_id_from_path(request.path)
        except BadStationId as exc:
            log.warning("handshake refused", path=request.path[:200], reason=str(exc))
            await request.reject(400, body=str(exc).encode())
            return
        version = negotiate(request.proposed_subprotocols)
        if version is None:
            offered = ", ".join(request.proposed_subprotocols) or "none"
            reason = (
                f"no supported OCPP subprotocol offered ({offered}); "
                f"this server speaks {', '.join(ADAPTERS)}"
            )
            log.warning("handshake refused", station_id=station_id, reason=reason)
            await request.reject(400, body=reason.encode())
            return
        ws = await request.accept(subprotocol=version)
        endpoint = request.remote
        remote = (
            str(endpoint) if isinstance(endpoint, str) else f"{endpoint.address}:{endpoint.port}"
        )
        connection = ChargerConnection(
            station_id,
            ws,
            version,
            ledger=self.ledger,
            registry=self.registry,
            settings=self.settings,
            background=self._background(),
            wall_clock=self.wall_clock,
            remote=remote,
        )
        await connection.run()

    async def serve_ocpp(
        self, *, task_status: trio.TaskStatus[WebSocketServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        settings = self.settings
        async with trio.open_nursery() as handlers:
            self.background = handlers
            await handlers.start(watch_connections, self.registry, settings)
            self.ocpp_server = await handlers.start(
                lambda task_status: serve_websocket(
                    self.handle_request,
                    settings.ocpp_host,
                    settings.ocpp_port,
                    None,
                    handler_nursery=handlers,
                    max_message_size=settings.max_message_size,
                    connect_timeout=settings.handshake_timeout,
                    disconnect_timeout=settings.handshake_timeout,
                    task_status=task_status,
                )
            )
            log.info("OCPP endpoint listening", host=settings.ocpp_host, port=self.ocpp_port)
            task_status.started(self.ocpp_server)


async def run_csms(
    settings: Settings,
    *,
    store: Store | None = None,
    wall_clock: WallClock = utc_now,
    task_status: trio.TaskStatus[Csms] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the CSMS until cancelled: the ledger actor and the OCPP endpoint."""
    own_store = store is None
    the_store: Store = store if store is not None else open_store(settings.database_url)
    the_store.mark_all_offline()
    rules = LedgerRules(
        unknown_stations=settings.unknown_stations, heartbeat_interval=settings.heartbeat_interval
    )
    ledger = LedgerActor(
        the_store, rules, queue_size=settings.ledger_queue_size, max_batch=settings.ledger_max_batch
    )
    csms = Csms(settings, ledger, ConnectionRegistry(), wall_clock=wall_clock)
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
                    await services.start(csms.serve_ocpp)
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
