"""How a virtual charger's OCPP text reaches a CSMS: the `MessageTransport` port and its
WebSocket adapter.

A charger needs only to send a text message, receive the next one and close. Wire mode opens
a real WebSocket to any CSMS URL (`ws://HOST:PORT/ocpp/` + the charge point id, subprotocol
`ocpp1.6` or, for a 2.0.1 charger, `ocpp2.0.1`); the in-process mode runs the same
WebSocket framing over an in-memory stream (`connect_stream`). Tests may plug in any other
`MessageTransport`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol
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


def _split_ws_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise TransportClosed(f"not a ws:// URL: {url!r}")
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return parts.hostname, parts.port or 80, target


async def connect_url(
    base_url: str,
    station_id: str,
    *,
    timeout: float = 30.0,
    subprotocols: tuple[str, ...] = SUBPROTOCOLS,
) -> WebSocketTransport:
    """Wire mode: open a WebSocket to `base_url/station_id` offering `subprotocols`.

    Raises `TransportClosed` when the CSMS cannot be reached or refuses the handshake.
    """
    url = station_url(base_url, station_id)
    host, port, target = _split_ws_url(url)
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
            ws = await open_client(
                stream,
                host if port == 80 else f"{host}:{port}",
                target,
                list(subprotocols),
                max_message_size=MAX_MESSAGE_SIZE,
            )
    except (OSError, HandshakeRefused, WebSocketClosed, trio.TooSlowError) as exc:
        raise TransportClosed(f"cannot connect to {url}: {exc!r}") from None
    return WebSocketTransport(ws)


def url_connector(base_url: str, station_id: str, version: str = SUBPROTOCOLS[0]) -> Connector:
    """A `Connector` for wire mode against the CSMS at `base_url`, speaking `version`."""

    async def connect(nursery: trio.Nursery) -> MessageTransport:
        return await connect_url(base_url, station_id, subprotocols=(version,))

    return connect


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
