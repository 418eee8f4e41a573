"""A minimal HTTP/1.1 client on trio for the charger's file transfers (diagnostics upload,
firmware download): one request per connection, h11 (the sans-I/O HTTP library that
trio-websocket's wsproto already depends on) over `trio.open_tcp_stream`, TLS for https.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11
import trio

RECEIVE_BYTES = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class HttpError(Exception):
    """The request could not be made or its response not read."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


async def http_request(
    method: str, url: str, body: bytes = b"", *, timeout: float = 30.0
) -> HttpResponse:
    """Send one request and read the whole response; raise `HttpError` on any failure."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"unsupported URL {url!r} (only http:// and https://)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rsplit("@", 1)[-1]
    try:
        with trio.fail_after(timeout):
            stream: trio.abc.Stream
            if parts.scheme == "https":
                stream = await trio.open_ssl_over_tcp_stream(
                    parts.hostname, port, ssl_context=ssl.create_default_context()
                )
            else:
                stream = await trio.open_tcp_stream(parts.hostname, port)
            async with stream:
                return await _exchange(stream, method, target, host_header, body)
    except (OSError, trio.TooSlowError, trio.BrokenResourceError, h11.ProtocolError) as exc:
        raise HttpError(f"{method} {url}: {exc!r}") from None


async def _exchange(
    stream: trio.abc.Stream, method: str, target: str, host: str, body: bytes
) -> HttpResponse:
    conn = h11.Connection(our_role=h11.CLIENT)
    headers = [
        ("Host", host),
        ("User-Agent", "csms-simulator"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    data = conn.send(h11.Request(method=method, target=target, headers=headers))
    data += conn.send(h11.Data(data=body)) if body else b""
    data += conn.send(h11.EndOfMessage())
    await stream.send_all(data)
    status = 0
    chunks: list[bytes] = []
    size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(RECEIVE_BYTES)))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_BODY:
                raise HttpError(f"response body larger than {MAX_BODY} bytes")
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return HttpResponse(status, b"".join(chunks))
