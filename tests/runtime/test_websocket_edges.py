"""The server's WebSocket layer at its edges, on in-memory streams and virtual time.

What a well-behaved client library never does: stay silent before the handshake, send
something that is not a WebSocket upgrade, fragment a message, send binary, close first.
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from runtime_harness import BOOT, WsprotoPeer, memory_csms, open_store
from support.settings import make_settings
from wsproto.events import BytesMessage, CloseConnection

from csms.config import Settings

Clock = trio.testing.MockClock


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"handshake_timeout": 5.0, "max_message_size": 2048}
    values.update(overrides)
    settings: Settings = make_settings(tmp_path, **values)
    return settings


async def _read_all(stream: trio.abc.ReceiveStream) -> bytes:
    """Everything the server writes until it closes the stream."""
    received = b""
    while data := await stream.receive_some(65536):
        received += data
    return received


async def test_silent_client_is_dropped_after_the_handshake_timeout(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = _settings(tmp_path)
    async with memory_csms(settings) as server:
        client, server_stream = trio.testing.memory_stream_pair()
        await server.serve(server_stream)
        started = trio.current_time()
        with trio.fail_after(60):
            assert await _read_all(client) == b""  # closed without a word
        waited = trio.current_time() - started
        assert settings.handshake_timeout <= waited < settings.handshake_timeout + 1
        assert len(server.registry) == 0


async def test_plain_http_request_is_refused_with_400(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        client, server_stream = trio.testing.memory_stream_pair()
        await server.serve(server_stream)
        await client.send_all(b"GET /ocpp/CP-1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with trio.fail_after(60):
            response = await _read_all(client)
        assert response.startswith(b"HTTP/1.1 400")
        assert len(server.registry) == 0


async def test_fragmented_message_is_reassembled(tmp_path: Path, autojump_clock: Clock) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        peer = await WsprotoPeer.connect(server)
        await peer.open("CP-FRAG")
        await peer.call("BootNotification", BOOT)
        text = '[2, "f1", "Heartbeat", {}]'
        for i in range(0, len(text), 5):
            chunk = text[i : i + 5]
            await peer.stream.send_all(peer.text(chunk, finished=i + 5 >= len(text)))
            await trio.sleep(0.1)
        with trio.fail_after(60):
            reply = await peer.next_frame()
        assert reply[:2] == [3, "f1"]
        assert "currentTime" in reply[2]


async def test_fragments_over_the_size_limit_close_with_1009(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = _settings(tmp_path)
    async with memory_csms(settings) as server:
        peer = await WsprotoPeer.connect(server)
        await peer.open("CP-FRAGBIG")
        await peer.call("BootNotification", BOOT)
        # Each fragment is small; together they are over the limit.
        await peer.stream.send_all(
            peer.text('[2, "big", "DataTransfer", {"vendorId": "v", "data": "', finished=False)
        )
        for _ in range(settings.max_message_size // 500 + 1):
            await peer.stream.send_all(peer.text("x" * 500, finished=False))
        with trio.fail_after(60):
            close = await peer.next_event(CloseConnection)
        assert close.code == 1009
        with trio.fail_after(60):
            while "CP-FRAGBIG" in server.registry:
                await trio.sleep(0.1)


async def test_binary_message_closes_with_1003(tmp_path: Path, autojump_clock: Clock) -> None:
    async with memory_csms(_settings(tmp_path)) as server:
        peer = await WsprotoPeer.connect(server)
        await peer.open("CP-BIN")
        await peer.call("BootNotification", BOOT)
        await peer.stream.send_all(peer.ws.send(BytesMessage(data=b'[2,"b","Heartbeat",{}]')))
        with trio.fail_after(60):
            close = await peer.next_event(CloseConnection)
        assert close.code == 1003
        with trio.fail_after(60):
            while "CP-BIN" in server.registry:
                await trio.sleep(0.1)


async def test_client_close_is_answered_and_recorded(tmp_path: Path, autojump_clock: Clock) -> None:
    settings = _settings(tmp_path)
    async with memory_csms(settings) as server, open_store(settings) as store:
        peer = await WsprotoPeer.connect(server)
        await peer.open("CP-BYE")
        await peer.call("BootNotification", BOOT)
        assert store.get_station("CP-BYE")["online"] == 1  # type: ignore[index]
        await peer.stream.send_all(peer.ws.send(CloseConnection(code=1000, reason="bye")))
        with trio.fail_after(60):
            answer = await peer.next_event(CloseConnection)
        assert answer.code == 1000
        with trio.fail_after(60):
            while not store.events("CP-BYE", "disconnected"):
                await trio.sleep(0.1)
        assert "CP-BYE" not in server.registry
        assert store.get_station("CP-BYE")["online"] == 0  # type: ignore[index]


async def test_dropped_stream_without_close_is_recorded(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = _settings(tmp_path)
    async with memory_csms(settings) as server, open_store(settings) as store:
        peer = await WsprotoPeer.connect(server)
        await peer.open("CP-CUT")
        await peer.call("BootNotification", BOOT)
        await peer.stream.aclose()  # the cable is pulled: no close frame
        with trio.fail_after(60):
            while not store.events("CP-CUT", "disconnected"):
                await trio.sleep(0.1)
        assert "CP-CUT" not in server.registry
        assert store.get_station("CP-CUT")["online"] == 0  # type: ignore[index]
