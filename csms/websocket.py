"""`WebSocket`: one end of a WebSocket over a trio stream, driven by wsproto in the caller's task.

trio-websocket gives each connection a reader task and a message channel; at thousands of
connections and thousands of messages per second that extra task switch per message and the
per-connection task, channel and lock cost a measurable share of the CPU and memory (see the
benchmark). Here the task that wants the next message reads the stream, feeds wsproto (the
same sans-I/O library trio-websocket builds on) and gets whole text messages back; writes from
several tasks are serialised without a lock by coalescing into one writer.

The CSMS's connection actors use the server end (`csms.runtime.websocket`); the fleet
simulator's chargers use the client end (`open_client`), which is why this lives outside the
runtime.

Every buffer is bounded: a message being reassembled by `max_message_size`, and the writes
queued behind the one in progress by `MAX_BACKLOG_BYTES`, past which a writer waits for the
queue to be flushed (backpressure), so a peer that stops reading cannot grow our memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

RECEIVE_BYTES = 64 * 1024
#: Bytes queued behind the write in progress before more writers have to wait for it.
MAX_BACKLOG_BYTES = 64 * 1024
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011


class WebSocketClosed(Exception):
    """The WebSocket is closed; `code` is the close code, if there was one."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"closed ({code}): {reason}" if reason else f"closed ({code})")
        self.code = code
        self.reason = reason


class HandshakeRefused(Exception):
    """The server did not upgrade the connection; `status` is its HTTP status, if any."""

    def __init__(self, status: int | None, reason: str) -> None:
        super().__init__(f"handshake refused ({status}): {reason}")
        self.status = status
        self.reason = reason


class WebSocket:
    __slots__ = (
        "_backlog",
        "_backlogged",
        "_buffer",
        "_buffered",
        "_closed",
        "_drained",
        "_max_message_size",
        "_pong",
        "_stream",
        "_writing",
        "_ws",
        "close_code",
        "subprotocol",
    )

    def __init__(
        self, stream: trio.abc.Stream, kind: ConnectionType, *, max_message_size: int
    ) -> None:
        self._stream = stream
        self._ws: WSConnection | Connection = WSConnection(kind)
        self._max_message_size = max_message_size
        self._buffer: list[str] = []
        self._buffered = 0
        self._writing = False
        self._backlog: list[bytes] = []
        self._backlogged = 0
        #: Set when the backlog is taken for sending; created only when a writer waits.
        self._drained: trio.Event | None = None
        self._closed = False
        self._pong: trio.Event | None = None
        self.close_code: int | None = None
        self.subprotocol: str | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def _upgraded(self) -> None:
        """Keep only the WebSocket protocol once the handshake is over: the HTTP/1.1 state
        wsproto keeps for it (an h11 connection, buffers) is a few KB per connection."""
        if isinstance(self._ws, WSConnection) and self._ws.connection is not None:
            self._ws = self._ws.connection

    # -- messages ----------------------------------------------------------------------

    async def receive(self) -> str:
        """The next whole text message. Pings are answered on the way.

        Raises WebSocketClosed when the peer closes, the stream ends, or a rule is broken
        (a binary message, a message over the size limit, a protocol error); the close
        handshake has then been done.
        """
        ws = self._ws
        while True:
            for event in ws.events():
                if isinstance(event, TextMessage):
                    try:
                        text = self._collect(event)
                    except _TooBig:
                        reason = f"message larger than {self._max_message_size} characters"
                        await self.close(CLOSE_MESSAGE_TOO_BIG, reason)
                        raise WebSocketClosed(CLOSE_MESSAGE_TOO_BIG, reason) from None
                    if text is not None:
                        return text
                elif isinstance(event, Ping):
                    await self._write(ws.send(event.response()))
                elif isinstance(event, Pong):
                    if self._pong is not None:
                        self._pong.set()
                elif isinstance(event, CloseConnection):
                    await self._answer_close(event)
                elif isinstance(event, BytesMessage):
                    await self.close(CLOSE_UNSUPPORTED_DATA, "OCPP-J uses text messages")
                    raise WebSocketClosed(CLOSE_UNSUPPORTED_DATA, "binary message")
            data = await self._receive_some()
            if not data:
                await self._abort()
                raise WebSocketClosed(self.close_code, "the stream ended")
            try:
                ws.receive_data(data)
            except RemoteProtocolError as exc:
                await self.close(CLOSE_PROTOCOL_ERROR, str(exc))
                raise WebSocketClosed(CLOSE_PROTOCOL_ERROR, str(exc)) from None

    def _collect(self, event: TextMessage) -> str | None:
        if event.message_finished and not self._buffer:
            if len(event.data) > self._max_message_size:
                raise _TooBig()
            return event.data
        self._buffer.append(event.data)
        self._buffered += len(event.data)
        if self._buffered > self._max_message_size:
            raise _TooBig()
        if not event.message_finished:
            return None
        text = "".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        return text

    async def send(self, text: str) -> None:
        """Send a text message; raises WebSocketClosed if the connection is gone."""
        if self._closed:
            raise WebSocketClosed(self.close_code, "send on a closed WebSocket")
        try:
            data = self._ws.send(TextMessage(data=text))
        except LocalProtocolError:
            raise WebSocketClosed(self.close_code, "the WebSocket is closing") from None
        await self._write(data)

    async def ping(self) -> None:
        """Send a ping and wait for a pong (which `receive`, running elsewhere, sees)."""
        if self._closed:
            raise WebSocketClosed(self.close_code, "ping on a closed WebSocket")
        self._pong = pong = trio.Event()
        try:
            await self._write(self._ws.send(Ping(payload=b"csms")))
        except LocalProtocolError:
            raise WebSocketClosed(self.close_code, "the WebSocket is closing") from None
        await pong.wait()

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the close handshake (if still open) and close the stream."""
        if not self._closed:
            self.close_code = code
            with contextlib.suppress(LocalProtocolError, WebSocketClosed):
                await self._write(self._ws.send(CloseConnection(code=code, reason=reason)))
        await self._abort()

    async def _answer_close(self, event: CloseConnection) -> None:
        self.close_code = event.code
        with contextlib.suppress(LocalProtocolError, WebSocketClosed):
            await self._write(self._ws.send(event.response()))
        await self._abort()
        raise WebSocketClosed(event.code, event.reason or "")

    # -- the stream --------------------------------------------------------------------

    async def _receive_some(self) -> bytes:
        try:
            return bytes(await self._stream.receive_some(RECEIVE_BYTES))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def _write(self, data: bytes) -> None:
        """Write `data`; if another task is writing, it is queued behind and sent by it.

        When the queue is already over `MAX_BACKLOG_BYTES` (the peer reads slower than we
        write), the caller waits until the writer takes the queue before adding to it.
        """
        while True:
            if self._closed:
                raise WebSocketClosed(self.close_code, "write on a closed WebSocket")
            if not self._writing:
                break
            if self._backlogged <= MAX_BACKLOG_BYTES:
                self._backlog.append(data)
                self._backlogged += len(data)
                return
            if self._drained is None:
                self._drained = trio.Event()
            await self._drained.wait()
        self._writing = True
        try:
            await self._stream.send_all(data)
            while self._backlog:
                pending = b"".join(self._backlog)
                self._backlog.clear()
                self._backlogged = 0
                self._wake_writers()
                await self._stream.send_all(pending)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._closed = True
            raise WebSocketClosed(self.close_code, "the connection broke") from None
        finally:
            self._writing = False
            self._wake_writers()

    def _wake_writers(self) -> None:
        if self._drained is not None:
            self._drained.set()
            self._drained = None

    @property
    def backlog_bytes(self) -> int:
        """Bytes queued behind the write in progress."""
        return self._backlogged

    async def _abort(self) -> None:
        self._closed = True
        if self._pong is not None:
            self._pong.set()
        self._wake_writers()
        await self._stream.aclose()


class _TooBig(Exception):
    """A message over the size limit (close code 1009)."""


async def open_client(
    stream: trio.abc.Stream,
    host: str,
    target: str,
    subprotocols: list[str],
    *,
    max_message_size: int = 1024 * 1024,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> WebSocket:
    """The client handshake over an open stream: a `WebSocket` once the server accepts.

    `extra_headers` go into the upgrade request as they are (e.g. an Authorization).

    Raises `HandshakeRefused` when the server answers with anything but an upgrade, and
    `WebSocketClosed` when the stream ends first. The stream is closed on failure.
    """
    socket = WebSocket(stream, ConnectionType.CLIENT, max_message_size=max_message_size)
    ws = socket._ws
    try:
        request = Request(
            host=host, target=target, subprotocols=subprotocols, extra_headers=list(extra_headers)
        )
        await socket._write(ws.send(request))
        refusal: RejectConnection | None = None
        body = bytearray()
        while True:
            data = await socket._receive_some()
            if not data:
                if refusal is not None:
                    raise HandshakeRefused(refusal.status_code, body.decode(errors="replace"))
                raise WebSocketClosed(None, "the stream ended during the handshake")
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    socket.subprotocol = event.subprotocol
                    socket._upgraded()
                    return socket
                if isinstance(event, RejectConnection):
                    refusal = event
                    if not event.has_body:
                        raise HandshakeRefused(event.status_code, "")
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished and refusal is not None:
                        raise HandshakeRefused(refusal.status_code, body.decode(errors="replace"))
    except RemoteProtocolError as exc:
        await socket._abort()
        raise HandshakeRefused(None, f"bad handshake answer: {exc}") from None
    except BaseException:
        with trio.CancelScope(shield=True):
            await socket._abort()
        raise
