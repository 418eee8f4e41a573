"""How a virtual charger's OCPP text reaches a CSMS: the `MessageTransport` port and its
WebSocket adapter.

A charger needs only to send a text message, receive the next one and close. Wire mode opens
a real WebSocket to any CSMS URL (`ws://HOST:PORT/ocpp/` + the charge point id, subprotocol
`ocpp1.6`); the in-process mode runs the same WebSocket framing over an in-memory stream
(`trio_websocket.wrap_client_stream`). Tests may plug in any other `MessageTransport`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    connect_websocket_url,
    open_websocket_url,
    wrap_client_stream,
)

SUBPROTOCOLS = ("ocpp1.6",)


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
#: connection's background tasks (trio-websocket's reader) for as long as it is up.
Connector = Callable[[trio.Nursery], Awaitable[MessageTransport]]


class WebSocketTransport:
    """`MessageTransport` over a trio-websocket client connection."""

    __slots__ = ("_ws",)

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws

    @property
    def subprotocol(self) -> str | None:
        return self._ws.subprotocol

    async def send(self, text: str) -> None:
        try:
            await self._ws.send_message(text)
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise TransportClosed(str(exc)) from None

    async def receive(self) -> str:
        try:
            message = await self._ws.get_message()
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise TransportClosed(str(exc)) from None
        return message if isinstance(message, str) else message.decode()

    async def aclose(self) -> None:
        # A peer that vanished never answers the close handshake: do not wait for it long.
        with trio.move_on_after(5):
            await self._ws.aclose()


def station_url(base_url: str, station_id: str) -> str:
    """`ws://host:9000/ocpp` + `CP1` -> `ws://host:9000/ocpp/CP1` (one slash between)."""
    return f"{base_url.rstrip('/')}/{station_id}"


async def connect_url(
    nursery: trio.Nursery, base_url: str, station_id: str, *, timeout: float = 30.0
) -> WebSocketTransport:
    """Wire mode: open a WebSocket to `base_url/station_id` offering `ocpp1.6`.

    Raises `TransportClosed` when the CSMS cannot be reached or refuses the handshake.
    """
    url = station_url(base_url, station_id)
    try:
        with trio.fail_after(timeout):
            ws = await connect_websocket_url(nursery, url, subprotocols=list(SUBPROTOCOLS))
    except (OSError, HandshakeError, trio.TooSlowError) as exc:
        raise TransportClosed(f"cannot connect to {url}: {exc!r}") from None
    return WebSocketTransport(ws)


def url_connector(base_url: str, station_id: str) -> Connector:
    """A `Connector` for wire mode against the CSMS at `base_url`."""

    async def connect(nursery: trio.Nursery) -> MessageTransport:
        return await connect_url(nursery, base_url, station_id)

    return connect


async def connect_stream(
    nursery: trio.Nursery,
    stream: trio.abc.Stream,
    station_id: str,
    *,
    host: str = "localhost",
    path_prefix: str = "/ocpp/",
) -> WebSocketTransport:
    """In-process mode: the WebSocket client handshake over an already open stream."""
    try:
        ws = await wrap_client_stream(
            nursery,
            stream,  # type: ignore[arg-type]  # any trio stream works; the hint is narrow
            host,
            f"{path_prefix}{station_id}",
            subprotocols=list(SUBPROTOCOLS),
        )
    except (HandshakeError, trio.BrokenResourceError) as exc:
        raise TransportClosed(f"handshake failed: {exc!r}") from None
    return WebSocketTransport(ws)


@asynccontextmanager
async def open_wire_transport(base_url: str, station_id: str) -> AsyncIterator[MessageTransport]:
    """A one-off wire connection as a context manager (scripts and notebooks)."""
    async with open_websocket_url(
        station_url(base_url, station_id), subprotocols=list(SUBPROTOCOLS)
    ) as ws:
        yield WebSocketTransport(ws)
