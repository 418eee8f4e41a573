"""The OCPP WebSocket endpoint and the CSMS's root: `run_csms` under one `trio.run`.

`ws://HOST:PORT/ANY/PREFIX/{chargePointId}`: the last path segment is the charge point id.
A handshake that offers no supported subprotocol, or names no usable id, is refused with an
HTTP status and a body saying why. With `ocpp_tls_port` set, `wss://` is served there too.
Authentication (`csms.runtime.security`) is decided in the handshake, before any OCPP frame:
a failure is a 401 and nothing else; repeated failures per id or address get 429.
Beyond `max_connections` upgraded connections a new handshake gets 503 (a station replacing
its own live connection is still let in: the count does not grow); the whole handshake, TLS
included, must be done within `handshake_timeout`. Handshakes in progress are capped apart
(`max_handshakes`): beyond it a new TCP connection gets a canned 503 written without reading
its request (over TLS, just a close), so a flood of slow handshakes is bounded by the cap,
not by the timeout alone, and connected chargers do not notice it.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import unquote

import structlog
import trio

from csms.config import Settings
from csms.domain.events import DomainEvent
from csms.domain.identity import BadStationId, validate_station_id
from csms.domain.ledger import LedgerRules
from csms.domain.replies import Reply
from csms.protocol.adapters import ADAPTERS, negotiate
from csms.runtime.auth_limits import FailureLimiter
from csms.runtime.connection import ChargerConnection, WallClock, utc_now
from csms.runtime.events import EventBus
from csms.runtime.keepalive import watch_connections
from csms.runtime.ledger_actor import LedgerActor
from csms.runtime.metrics import CsmsMetrics
from csms.runtime.password_rotation import confirm_rotation
from csms.runtime.payments import provider_from, run_payments
from csms.runtime.rate_limit import RateLimits
from csms.runtime.registry import ConnectionRegistry
from csms.runtime.security import Transport, authenticate, tls_context
from csms.runtime.websocket import Decision, Handshake, ServerWebSocket
from csms.storage.base import Store, StoreError, open_store
from csms.storage.database import store_target
from csms.storage.sqlite_credentials import CredentialReader, CredentialsUnavailable

if TYPE_CHECKING:
    from csms.cluster.node import ClusterNode

log = structlog.get_logger("csms.server")

_BUSY_REASON = b"the server has too many handshakes in progress; try again later"
#: The refusal beyond `max_handshakes`: fixed bytes, so nothing is parsed to write it.
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_BUSY_REASON)).encode() + b"\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n\r\n" + _BUSY_REASON
)
#: How long writing that refusal may take (a fresh socket's buffer takes it at once).
BUSY_WRITE_S = 1.0


def station_id_from_path(path: str) -> str:
    """The charge point id of a request path: its last segment, URL-decoded."""
    # "/ocpp/" names no id (its last segment is empty); it is not the station "ocpp".
    raw = path.split("?", 1)[0].rsplit("/", 1)[-1]
    if not raw:
        raise BadStationId("the URL names no charge point id (expected /ocpp/{id})")
    station_id = unquote(raw)
    if station_id in {".", ".."}:  # RFC 3986 dot-segments: a proxy would resolve them away
        raise BadStationId(f"{station_id!r} is a relative path segment, not a charge point id")
    return validate_station_id(station_id)


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
    #: The wss:// listeners (profiles 2 and 3), when `ocpp_tls_port` is set.
    tls_listeners: list[trio.SSLListener[trio.SocketStream]] = field(default_factory=list)
    #: This process as a node of a cluster on PostgreSQL (None: on SQLite, alone).
    cluster: ClusterNode | None = None
    #: Where stations' security profiles are read (None: every station is profile 0).
    credentials: CredentialReader | None = None

    def __post_init__(self) -> None:
        settings = self.settings
        #: Handshakes accepted and not yet ended (the `max_connections` count).
        self.open_connections = 0
        #: TCP (or in-memory) connections whose handshake is not yet decided.
        self.handshakes = 0
        #: Connections refused at the `max_handshakes` cap (a log line per burst, not each).
        self.refused_handshakes = 0
        self._refusing = False
        self._failures_by_id = FailureLimiter(
            settings.auth_max_failures_per_station, settings.auth_failure_window, trio.current_time
        )
        self._failures_by_address = FailureLimiter(
            settings.auth_max_failures_per_address, settings.auth_failure_window, trio.current_time
        )
        self.rate_limits = RateLimits(
            settings.max_messages_per_second,
            settings.message_burst,
            capacity=2 * settings.max_connections,
        )

    def singleton(
        self, name: str, duty: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """`duty` as run by one node of the cluster at a time (on PostgreSQL: whichever holds
        its advisory lock); on SQLite, `duty` itself."""
        if not self.settings.is_postgres:
            return duty
        from csms.cluster.duties import run_exclusively

        return partial(
            run_exclusively,
            self.settings.database_url,
            name,
            duty,
            retry_s=self.settings.cluster_heartbeat_s,
        )

    def _background(self) -> trio.Nursery:
        assert self.background is not None, "serve_ocpp has not started"
        return self.background

    @property
    def ocpp_port(self) -> int:
        assert self.listeners, "serve_ocpp has not started"
        port: int = self.listeners[0].socket.getsockname()[1]
        return port

    @property
    def ocpp_tls_port(self) -> int:
        assert self.tls_listeners, "serve_ocpp has not started a TLS listener"
        listener = self.tls_listeners[0].transport_listener
        assert isinstance(listener, trio.SocketListener)
        port: int = listener.socket.getsockname()[1]
        return port

    async def _decide(self, transport: Transport, remote: str, handshake: Handshake) -> Decision:
        """Accept a handshake with its subprotocol, or refuse it with a status and why."""
        try:
            station_id = station_id_from_path(handshake.path)
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
        address = remote.rsplit(":", 1)[0]
        if self._failures_by_id.blocked(station_id) or self._failures_by_address.blocked(address):
            log.warning("authentication rate-limited", station_id=station_id, remote=remote)
            return None, (429, "too many failed authentication attempts; try again later")
        try:
            reader = self.credentials
            if reader is None:
                security = None
            elif reader.remote:
                security = await trio.to_thread.run_sync(reader.lookup, station_id)
            else:
                security = reader.lookup(station_id)
        except CredentialsUnavailable as exc:
            log.error("cannot read station credentials", station_id=station_id, why=str(exc))
            return None, (503, "the station registry cannot be read; try again later")
        verdict = await authenticate(
            station_id, security, transport, handshake.authorization, self.settings.operator_name
        )
        if verdict.refused is not None:
            self._failures_by_id.failed(station_id)
            self._failures_by_address.failed(address)
            log.warning(
                "authentication failed", station_id=station_id, remote=remote, why=verdict.refused
            )
            return None, (401, "authentication failed")
        if verdict.rotated_to is not None:
            await confirm_rotation(self.ledger, station_id, verdict.rotated_to, self.wall_clock())
        # Checked last, after the awaits above, so that the count cannot be overtaken.
        if (
            self.open_connections >= self.settings.max_connections
            and station_id not in self.registry
        ):
            log.warning("connection limit reached", station_id=station_id, remote=remote)
            return None, (503, "the server is at its connection limit; try again later")
        self.open_connections += 1  # released by handle_stream when the connection ends
        return version, None

    async def handle_stream(self, stream: trio.abc.Stream, remote: str = "") -> None:
        """Serve one TCP (or in-memory) stream: the WebSocket handshake, then the charger."""
        settings = self.settings
        transport = Transport(tls=isinstance(stream, trio.SSLStream))
        socket_stream = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        if not remote and isinstance(socket_stream, trio.SocketStream):
            host, port = socket_stream.socket.getpeername()[:2]
            remote = f"{host}:{port}"
        if self.handshakes >= settings.max_handshakes:
            await self._refuse_busy(stream, socket_stream, remote)
            return
        ws = ServerWebSocket(stream, max_message_size=settings.max_message_size)
        try:
            self.handshakes += 1
            try:
                handshake = await self._handshake(ws, stream, transport, remote)
            finally:
                self.handshakes -= 1
                if self._refusing and self.handshakes < settings.max_handshakes:
                    self._refusing = False
            if handshake is not None and ws.subprotocol is not None:
                await self._serve_charger(ws, handshake, ws.subprotocol, remote)
        finally:
            if ws.subprotocol is not None:  # `_decide` counted it
                self.open_connections -= 1

    async def _refuse_busy(
        self, stream: trio.abc.Stream, socket_stream: trio.abc.Stream, remote: str
    ) -> None:
        self.refused_handshakes += 1
        if not self._refusing:
            self._refusing = True
            log.warning(
                "too many handshakes in progress: refusing new connections",
                limit=self.settings.max_handshakes,
                remote=remote,
            )
        # Over TLS an HTTP answer would need a TLS handshake first: the socket is just closed.
        if not isinstance(stream, trio.SSLStream):
            with trio.move_on_after(BUSY_WRITE_S):
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await socket_stream.send_all(BUSY_RESPONSE)
        await trio.aclose_forcefully(socket_stream)

    async def _handshake(
        self, ws: ServerWebSocket, stream: trio.abc.Stream, transport: Transport, remote: str
    ) -> Handshake | None:
        """The TLS and WebSocket handshakes, within `handshake_timeout`; the accepted request,
        or None (refused, timed out, or the client went away: then the stream is closed)."""
        handshake = None
        with trio.move_on_after(self.settings.handshake_timeout):
            if isinstance(stream, trio.SSLStream):
                try:
                    await stream.do_handshake()
                except trio.BrokenResourceError as exc:
                    # Includes a client certificate that does not chain to the CA.
                    log.info("TLS handshake failed", remote=remote, why=str(exc.__cause__ or exc))
                    await trio.aclose_forcefully(stream)
                    return None
                transport = Transport(tls=True, peer_cert=stream.getpeercert() or None)
            handshake = await ws.handshake(partial(self._decide, transport, remote))
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
            return None
        return handshake

    async def _serve_charger(
        self, ws: ServerWebSocket, handshake: Handshake, subprotocol: str, remote: str
    ) -> None:
        station_id = station_id_from_path(handshake.path)
        connection = ChargerConnection(
            station_id,
            ws,
            subprotocol,
            ledger=self.ledger,
            registry=self.registry,
            settings=self.settings,
            background=self._background(),
            wall_clock=self.wall_clock,
            remote=remote,
            metrics=self.metrics,
            rate_limit=self.rate_limits.for_station(station_id, trio.current_time()),
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
        if listen and settings.reuse_port:
            from csms.cluster.workers import open_shared_listeners

            self.listeners = await open_shared_listeners(settings.ocpp_host, settings.ocpp_port)
        elif listen:
            self.listeners = await trio.open_tcp_listeners(
                settings.ocpp_port, host=settings.ocpp_host
            )
            if settings.ocpp_tls_port is not None:
                self.tls_listeners = await trio.open_ssl_over_tcp_listeners(
                    settings.ocpp_tls_port, tls_context(settings), host=settings.ocpp_host
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
                if self.tls_listeners:
                    await handlers.start(
                        partial(trio.serve_listeners, handler_nursery=handlers),
                        self.handle_stream,
                        self.tls_listeners,
                    )
                    log.info(
                        "OCPP TLS endpoint listening",
                        host=settings.ocpp_host,
                        port=self.ocpp_tls_port,
                    )
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
        credentials=_credential_reader(settings.database_url),
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
                    # handed in (tests).
                    if provider is not None and own_store:
                        payments = partial(
                            run_payments,
                            settings,
                            provider,
                            csms.wall_clock,
                            in_thread=not virtual_time,
                        )
                        # Two workers of one outbox would call the provider twice.
                        services.start_soon(csms.singleton("payments", payments))
                    if settings.is_postgres:
                        from csms.cluster.node import ClusterNode  # needs psycopg

                        csms.cluster = await services.start(
                            ClusterNode(settings, csms.registry).run
                        )
                    await services.start(partial(csms.serve_ocpp, listen=listen))
                    if listen:
                        from csms.api.launch import serve_api  # the layer above: imported late

                        await services.start(serve_api, csms)
                    task_status.started(csms)
            finally:
                ledger_scope.cancel()
    finally:
        if csms.credentials is not None:
            csms.credentials.close()
        if own_store:
            the_store.close()


def _credential_reader(database_url: str) -> CredentialReader | None:
    """A reader of the stations' security profiles (SQLite file or PostgreSQL).

    Fails closed: a server that cannot read credentials does not start, rather than let
    every station in as profile 0. Only a private in-memory database (tests, demos) has no
    reader; its stations are all profile 0.
    """
    target = store_target(database_url)
    if target == ":memory:":
        return None
    try:
        return CredentialReader(target)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read station credentials: {exc}") from None


async def _stop_on_signals(scope: trio.CancelScope) -> None:
    """SIGTERM and SIGINT end the server in order: connections first, then the ledger."""
    if threading.current_thread() is not threading.main_thread():
        return  # a host running the server on another thread (tests): no signals there
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
        async for signum in received:
            log.info("stopping", signal=signal.Signals(signum).name)
            scope.cancel()
            return
