"""How a virtual charger's OCPP text reaches a CSMS: the `MessageTransport` port and its
WebSocket adapter.

A charger needs only to send a text message, receive the next one and close. Wire mode opens
a real WebSocket to any CSMS URL (`ws://HOST:PORT/ocpp/` + the charge point id, subprotocol
`ocpp1.6` or, for a 2.0.1 charger, `ocpp2.0.1`); the in-process mode runs the same
WebSocket framing over an in-memory stream (`connect_stream`). Tests may plug in any other
`MessageTransport`.

Wire mode speaks the OCPP security profiles through `ClientSecurity`: HTTP Basic (the charge
point id and its password) for profiles 1 and 2, TLS for `wss://` URLs (profile 2, trusting a
CA file), and a client certificate for profile 3 (one for a single charger, or one per
charger from a directory: `ID.pem` and `ID.key`, since the certificate's CN is the id).
A charger given a new password by its CSMS (password rotation) hands it to its connector
(`PasswordKeeper`), so that its next connection logs in with it.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import trio

from csms.websocket import HandshakeRefused, WebSocket, WebSocketClosed, open_client

SUBPROTOCOLS = ("ocpp1.6",)
#: Larger than any message a CSMS sends a charger (a full local list, a composite schedule).
MAX_MESSAGE_SIZE = 4 * 1024 * 1024


class TransportClosed(Exception):
    """The connection is gone: nothing more can be sent or received on it."""


class MessageTransport(Protocol):
    """One connection to a CSMS that carries whole OCPP-J text messages."""

    async def send(self, text: str) -> None:
        """Send one message; raise `TransportClosed` if the connection is gone."""
        ...

    async def receive(self) -> str:
        """The next message; raise `TransportClosed` when the connection ends."""
        ...

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        ...


#: Opens a new connection for a charger; the charger passes the nursery that owns the
#: connection for as long as it is up (a transport may run background tasks in it).
Connector = Callable[[trio.Nursery], Awaitable[MessageTransport]]


class WebSocketTransport:
    """`MessageTransport` over a WebSocket client end (`csms.websocket`), read in the
    receiving task: no reader task or message channel per connection."""

    __slots__ = ("_ws",)

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws

    @property
    def subprotocol(self) -> str | None:
        return self._ws.subprotocol

    async def send(self, text: str) -> None:
        try:
            await self._ws.send(text)
        except WebSocketClosed as exc:
            raise TransportClosed(str(exc)) from None

    async def receive(self) -> str:
        try:
            return await self._ws.receive()
        except WebSocketClosed as exc:
            raise TransportClosed(str(exc)) from None

    async def aclose(self) -> None:
        await self._ws.close()


def station_url(base_url: str, station_id: str) -> str:
    """`ws://host:9000/ocpp` + `CP1` -> `ws://host:9000/ocpp/CP1` (one slash between)."""
    return f"{base_url.rstrip('/')}/{station_id}"


@dataclass
class ClientSecurity:
    """How wire-mode chargers prove who they are (OCPP security profiles 1 to 3).

    `password` is every charger's Basic password, `passwords` per-charger ones that take
    precedence (profiles 1 and 2; the username is the charge point id). `ca_file` is what a
    `wss://` connection trusts (the system's CAs without it). `client_cert`/`client_key` is
    one client certificate, `cert_dir` one per charger (`ID.pem`, `ID.key`; profile 3).
    TLS contexts are built once: one shared, or one per charger with a certificate of its own.
    """

    password: str | None = None
    passwords: Mapping[str, str] = field(default_factory=dict)
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    cert_dir: Path | None = None
    #: Passwords the chargers were given since (rotation): they replace the ones above.
    rotated: dict[str, str] = field(default_factory=dict, repr=False)
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict, repr=False)

    def password_of(self, station_id: str) -> str | None:
        """The password `station_id` logs in with now (None: no Basic authentication)."""
        rotated = self.rotated.get(station_id)
        if rotated is not None:
            return rotated
        return self.passwords.get(station_id, self.password)

    def change_password(self, station_id: str, password: str) -> None:
        """`station_id` logs in with `password` from its next connection on."""
        self.rotated[station_id] = password

    def headers(self, station_id: str) -> list[tuple[bytes, bytes]]:
        """The upgrade request's extra headers: an Authorization if there is a password."""
        password = self.password_of(station_id)
        if password is None:
            return []
        token = base64.b64encode(f"{station_id}:{password}".encode())
        return [(b"Authorization", b"Basic " + token)]

    def ssl_context(self, station_id: str) -> ssl.SSLContext:
        """The TLS client context for `station_id` (TLS 1.2 or newer, as OCPP requires)."""
        key = station_id if self.cert_dir is not None else ""
        context = self._contexts.get(key)
        if context is None:
            context = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file is not None else None
            )
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.cert_dir is not None:
                cert = self.cert_dir / f"{station_id}.pem"
                context.load_cert_chain(cert, self.cert_dir / f"{station_id}.key")
            elif self.client_cert is not None:
                context.load_cert_chain(self.client_cert, self.client_key)
            self._contexts[key] = context
        return context


def _split_ws_url(url: str) -> tuple[bool, str, int, str]:
    """(TLS?, host, port, request target) of a ws:// or wss:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise TransportClosed(f"not a ws:// or wss:// URL: {url!r}")
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    tls = parts.scheme == "wss"
    return tls, parts.hostname, parts.port or (443 if tls else 80), target


async def connect_url(
    base_url: str,
    station_id: str,
    *,
    timeout: float = 30.0,
    subprotocols: tuple[str, ...] = SUBPROTOCOLS,
    security: ClientSecurity | None = None,
) -> WebSocketTransport:
    """Wire mode: open a WebSocket to `base_url/station_id` offering `subprotocols`, with
    the credentials and TLS settings of `security` (TLS for a wss:// URL).

    Raises `TransportClosed` when the CSMS cannot be reached or refuses the handshake.
    """
    url = station_url(base_url, station_id)
    tls, host, port, target = _split_ws_url(url)
    security = security or ClientSecurity()
    try:
        with trio.fail_after(timeout):
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
            if tls:
                stream = trio.SSLStream(
                    stream, security.ssl_context(station_id), server_hostname=host
                )
                try:
                    await stream.do_handshake()
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
            ws = await open_client(
                stream,
                host if port == (443 if tls else 80) else f"{host}:{port}",
                target,
                list(subprotocols),
                max_message_size=MAX_MESSAGE_SIZE,
                extra_headers=security.headers(station_id),
            )
    except (
        OSError,
        ssl.SSLError,
        trio.BrokenResourceError,
        HandshakeRefused,
        WebSocketClosed,
        trio.TooSlowError,
    ) as exc:
        raise TransportClosed(f"cannot connect to {url}: {exc!r}") from None
    return WebSocketTransport(ws)


@runtime_checkable
class PasswordKeeper(Protocol):
    """A `Connector` that logs in with a password a charger can change."""

    def change_password(self, password: str) -> None:
        """Log in with `password` from the next connection on."""
        ...


class UrlConnector:
    """A `Connector` for wire mode against the CSMS at `base_url`, speaking `version`, with
    the credentials of `security` (a `PasswordKeeper`: rotated passwords go there)."""

    __slots__ = ("base_url", "security", "station_id", "version")

    def __init__(
        self, base_url: str, station_id: str, version: str, security: ClientSecurity
    ) -> None:
        self.base_url, self.station_id, self.version = base_url, station_id, version
        self.security = security

    async def __call__(self, nursery: trio.Nursery) -> MessageTransport:
        return await connect_url(
            self.base_url, self.station_id, subprotocols=(self.version,), security=self.security
        )

    def change_password(self, password: str) -> None:
        self.security.change_password(self.station_id, password)


def url_connector(
    base_url: str,
    station_id: str,
    version: str = SUBPROTOCOLS[0],
    *,
    security: ClientSecurity | None = None,
) -> UrlConnector:
    """A `Connector` for wire mode against the CSMS at `base_url`, speaking `version`."""
    return UrlConnector(base_url, station_id, version, security or ClientSecurity())


async def connect_stream(
    stream: trio.abc.Stream,
    station_id: str,
    *,
    host: str = "localhost",
    path_prefix: str = "/ocpp/",
    subprotocols: tuple[str, ...] = SUBPROTOCOLS,
) -> WebSocketTransport:
    """In-process mode: the WebSocket client handshake over an already open stream."""
    try:
        ws = await open_client(
            stream,
            host,
            f"{path_prefix}{station_id}",
            list(subprotocols),
            max_message_size=MAX_MESSAGE_SIZE,
        )
    except (HandshakeRefused, WebSocketClosed) as exc:
        raise TransportClosed(f"handshake failed: {exc!r}") from None
    return WebSocketTransport(ws)


@asynccontextmanager
async def open_wire_transport(base_url: str, station_id: str) -> AsyncIterator[MessageTransport]:
    """A one-off wire connection as a context manager (scripts and notebooks)."""
    transport = await connect_url(base_url, station_id)
    try:
        yield transport
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await transport.aclose()
