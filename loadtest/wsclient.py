"""A minimal client side of RFC 6455 WebSocket, for the load generator.

Owns: the upgrade handshake offering the `ocpp1.6` subprotocol (and checking the server's
answer), masked client frames, incremental parsing of server frames, a pong for every ping, the
close handshake, and `WebSocketClient`, the asyncio protocol that drives a `MessageHandler` from
protocol callbacks (no coroutine per message).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import struct
from typing import Protocol, cast

SUBPROTOCOL = "ocpp1.6"
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_FRAME_BYTES = 16 * 1024 * 1024
MAX_HANDSHAKE_BYTES = 16 * 1024


class WebSocketError(Exception):
    """The server broke the WebSocket protocol or refused the handshake."""


def mask_bytes(payload: bytes, key: bytes) -> bytes:
    """XOR `payload` with the repeated 4-byte `key` (RFC 6455 5.3), as one big integer op."""
    size = len(payload)
    if size == 0:
        return b""
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        size, "little"
    )


def encode_client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    key = random.getrandbits(32).to_bytes(4, "big")
    size = len(payload)
    first = 0x80 | opcode
    if size < 126:
        header = bytes((first, 0x80 | size))
    elif size < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, size)
    return header + key + mask_bytes(payload, key)


class FrameParser:
    """Splits a byte stream from the server into (opcode, fin, payload) frames, incrementally."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bool, bytes]]:
        if self._buffer:
            self._buffer += data
            view: bytes | bytearray = self._buffer
        else:
            view = data
        frames: list[tuple[int, bool, bytes]] = []
        pos, size = 0, len(view)
        while size - pos >= 2:
            parsed = _parse_frame(view, pos, size)
            if parsed is None:
                break
            frame, pos = parsed
            frames.append(frame)
        if pos < size:
            self._buffer = bytearray(view[pos:])
        elif self._buffer:
            self._buffer = bytearray()
        return frames


def _parse_frame(
    view: bytes | bytearray, pos: int, size: int
) -> tuple[tuple[int, bool, bytes], int] | None:
    """The frame starting at `pos` and the position after it, or None if it is incomplete."""
    first, second = view[pos], view[pos + 1]
    length = second & 0x7F
    head = pos + 2
    if length == 126:
        if size - head < 2:
            return None
        length = int.from_bytes(view[head : head + 2], "big")
        head += 2
    elif length == 127:
        if size - head < 8:
            return None
        length = int.from_bytes(view[head : head + 8], "big")
        head += 8
    if length > MAX_FRAME_BYTES:
        raise WebSocketError(f"frame of {length} bytes is over the limit")
    key = b""
    if second & 0x80:  # servers must not mask, but tolerate it
        if size - head < 4:
            return None
        key = bytes(view[head : head + 4])
        head += 4
    end = head + length
    if end > size:
        return None
    payload = bytes(view[head:end])
    if key:
        payload = mask_bytes(payload, key)
    return (first & 0x0F, bool(first & 0x80), payload), end


def handshake_request(host: str, path: str, key: bytes) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n"
        "\r\n"
    ).encode()


def check_handshake_response(head: bytes, key: bytes) -> None:
    """Raise WebSocketError unless `head` accepts the upgrade with the ocpp1.6 subprotocol."""
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or status[1] != "101":
        raise WebSocketError(f"handshake refused: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != accept:
        raise WebSocketError("handshake: wrong Sec-WebSocket-Accept")
    if headers.get("sec-websocket-protocol") != SUBPROTOCOL:
        raise WebSocketError(f"handshake: server did not select the {SUBPROTOCOL} subprotocol")


class MessageHandler(Protocol):
    def on_open(self, ws: WebSocketClient) -> None: ...
    def on_message(self, data: bytes) -> None: ...
    def on_close(self, reason: str) -> None: ...


class WebSocketClient(asyncio.Protocol):
    """A WebSocket client connection driving a `MessageHandler` from protocol callbacks."""

    def __init__(self, handler: MessageHandler, host: str, path: str) -> None:
        self.handler = handler
        self._host, self._path = host, path
        self._key = base64.b64encode(os.urandom(16))
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._parser: FrameParser | None = None
        self._fragments: list[bytes] | None = None
        self._close_reason = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(handshake_request(self._host, self._path, self._key))

    def data_received(self, data: bytes) -> None:
        try:
            if self._parser is None:
                self._handshake_data(data)
                return
            for opcode, fin, payload in self._parser.feed(data):
                self._on_frame(opcode, fin, payload)
        except WebSocketError as exc:
            self._abort(str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self._close_reason or (f"connection lost: {exc}" if exc else "closed by server")
        self.handler.on_close(reason)

    def send_text(self, payload: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(encode_client_frame(OP_TEXT, payload))

    def close(self, code: int = 1000) -> None:
        """Start the close handshake (best effort) and close the socket once it is flushed."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._close_reason = self._close_reason or "closed by client"
        if self._parser is not None:
            transport.write(encode_client_frame(OP_CLOSE, code.to_bytes(2, "big")))
        transport.close()

    def _handshake_data(self, data: bytes) -> None:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HANDSHAKE_BYTES:
                raise WebSocketError("handshake response too long")
            return
        check_handshake_response(bytes(self._head[:end]), self._key)
        rest = bytes(self._head[end + 4 :])
        self._head = bytearray()
        self._parser = FrameParser()
        self.handler.on_open(self)
        if rest:
            self.data_received(rest)

    def _on_frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if fin:
                self.handler.on_message(payload)
            else:
                self._fragments = [payload]
        elif opcode == OP_CONTINUATION:
            if self._fragments is None:
                raise WebSocketError("continuation frame without a first fragment")
            self._fragments.append(payload)
            if fin:
                message, self._fragments = b"".join(self._fragments), None
                self.handler.on_message(message)
        elif opcode == OP_PING:
            self._write(encode_client_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            detail = payload[2:].decode("utf-8", "replace")
            self._close_reason = f"closed by server ({code} {detail})".replace(" )", ")")
            self.close(code if code != 1005 else 1000)
        elif opcode != OP_PONG:
            raise WebSocketError(f"unknown opcode {opcode}")

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _abort(self, reason: str) -> None:
        self._close_reason = reason
        if self._transport is not None:
            self._transport.abort()
