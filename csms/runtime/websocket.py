"""`ServerWebSocket`: the server end of one WebSocket, with the upgrade handshake.

The message layer is `csms.websocket.WebSocket`, shared with the simulator's client end; this
module adds what only a server does: read the upgrade request, let the caller decide on it
(path, subprotocol, credentials), and accept or refuse it with an HTTP answer.

A client that goes away in the middle of the handshake (before or while it is answered) ends
only its own handshake: `handshake` returns None, it never raises for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio
from wsproto import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from csms.websocket import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_DATA,
    WebSocket,
    WebSocketClosed,
)


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the client asked for in its upgrade request."""

    path: str
    subprotocols: tuple[str, ...]
    host: str
    #: The Authorization header's value, if the client sent one.
    authorization: bytes | None = None


#: Decides a handshake: (subprotocol to accept, None) or (None, (HTTP status, reason)).
Decision = tuple[str | None, tuple[int, str] | None]
Decide = Callable[[Handshake], Awaitable[Decision]]


class ServerWebSocket(WebSocket):
    __slots__ = ()

    def __init__(self, stream: trio.abc.Stream, *, max_message_size: int) -> None:
        super().__init__(stream, ConnectionType.SERVER, max_message_size=max_message_size)

    async def handshake(self, decide: Decide) -> Handshake | None:
        """Read the upgrade request and accept or refuse it; the request if accepted.

        None if it was refused or the client went away; `subprotocol` is set once `decide`
        accepted, even if the acceptance could then not be written.
        """
        ws = self._ws
        try:
            while True:
                data = await self._receive_some()
                if not data:
                    self._closed = True
                    return None
                try:
                    ws.receive_data(data)
                    for event in ws.events():
                        if isinstance(event, Request):
                            return await self._answer_request(event, decide)
                except RemoteProtocolError as exc:
                    await self._refuse(exc.event_hint, 400, f"bad WebSocket handshake: {exc}")
                    return None
        except WebSocketClosed:
            await self._abort()
            return None

    async def _answer_request(self, request: Request, decide: Decide) -> Handshake | None:
        authorization = next(
            (value for name, value in request.extra_headers if name.lower() == b"authorization"),
            None,
        )
        handshake = Handshake(
            request.target, tuple(request.subprotocols), request.host, authorization
        )
        subprotocol, refusal = await decide(handshake)
        if refusal is not None:
            status, reason = refusal
            await self._refuse(None, status, reason)
            return None
        self.subprotocol = subprotocol
        await self._write(self._ws.send(AcceptConnection(subprotocol=subprotocol)))
        self._upgraded()
        return handshake

    async def _refuse(self, hint: object, status: int, reason: str) -> None:
        body = reason.encode()
        if isinstance(hint, RejectConnection):  # wsproto's status, with our reason
            status = hint.status_code
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:  # RFC 9110: a 401 names the scheme it wants
            headers.append((b"www-authenticate", b'Basic realm="OCPP"'))
        try:
            data = self._ws.send(
                RejectConnection(status_code=status, headers=headers, has_body=True)
            )
            data += self._ws.send(RejectData(data=body))
            await self._write(data)
        except (LocalProtocolError, WebSocketClosed):
            pass
        await self._abort()


__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_UNSUPPORTED_DATA",
    "Decide",
    "Decision",
    "Handshake",
    "ServerWebSocket",
    "WebSocketClosed",
]
