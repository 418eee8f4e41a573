"""The load generator's WebSocket framing, short runs against the reference CSMS and the
transport limit, and the side-by-side bench of all three end to end (that one only once our
server is importable)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from loadtest.bench import REPO_ROOT, ServerSpec, child_env, running_server
from loadtest.bench_transport import answer
from loadtest.loadgen import LoadConfig, run_load_blocking
from loadtest.wsclient import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameParser,
    WebSocketClient,
    WebSocketError,
    check_handshake_response,
    encode_client_frame,
    mask_bytes,
)

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """An unmasked frame as a server sends it."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    return bytes((first, 126)) + size.to_bytes(2, "big") + payload


def test_client_frames_are_masked_and_unmask_to_the_payload() -> None:
    payload = b'[2,"1","Heartbeat",{}]' * 10
    frame = encode_client_frame(OP_TEXT, payload)
    assert frame[0] == 0x81 and frame[1] == 0x80 | 126
    assert int.from_bytes(frame[2:4], "big") == len(payload)
    key, body = frame[4:8], frame[8:]
    assert mask_bytes(body, key) == payload


def test_parser_reassembles_frames_split_at_any_byte() -> None:
    big = b"x" * 300
    stream = server_frame(OP_TEXT, b'[3,"1",{}]') + server_frame(OP_PING, b"hi")
    stream += server_frame(OP_TEXT, big)
    for cut in range(1, len(stream)):
        parser = FrameParser()
        frames = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert frames == [(OP_TEXT, True, b'[3,"1",{}]'), (OP_PING, True, b"hi"), (1, True, big)]


def test_handshake_needs_the_accept_key_and_the_subprotocol() -> None:
    key = base64.b64encode(b"0123456789abcdef")
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
    head = f"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {accept}\r\n"
    check_handshake_response((head + "Sec-WebSocket-Protocol: ocpp1.6").encode(), key)
    with pytest.raises(WebSocketError, match="subprotocol"):
        check_handshake_response(head.encode(), key)
    with pytest.raises(WebSocketError, match="refused"):
        check_handshake_response(b"HTTP/1.1 400 Bad Request", key)


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def on_open(self, ws: WebSocketClient) -> None:
        self.events.append(("open", None))

    def on_message(self, data: bytes) -> None:
        self.events.append(("message", data))

    def on_close(self, reason: str) -> None:
        self.events.append(("close", reason))


def unmask_client_frame(frame: bytes) -> tuple[int, bytes]:
    size = frame[1] & 0x7F
    assert frame[1] & 0x80 and size < 126
    return frame[0] & 0x0F, mask_bytes(frame[6 : 6 + size], frame[2:6])


def test_client_answers_pings_and_echoes_the_close() -> None:
    handler, transport = Recorder(), FakeTransport()
    client = WebSocketClient(handler, "127.0.0.1:9", "/ocpp/CP1")
    client.connection_made(transport)
    request = transport.written.pop().decode()
    assert request.startswith("GET /ocpp/CP1 HTTP/1.1\r\n")
    assert "Sec-WebSocket-Protocol: ocpp1.6\r\n" in request
    key = request.split("Sec-WebSocket-Key: ")[1].split("\r\n")[0].encode()
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    ).encode()
    # The handshake's tail may already carry frames, and frames may come split.
    stream = response + server_frame(OP_PING, b"p1") + server_frame(OP_TEXT, b'[3,"1",{}]')
    client.data_received(stream[:-3])
    client.data_received(stream[-3:])
    assert handler.events == [("open", None), ("message", b'[3,"1",{}]')]
    assert [unmask_client_frame(f) for f in transport.written] == [(OP_PONG, b"p1")]
    client.data_received(server_frame(OP_CLOSE, (1001).to_bytes(2, "big") + b"bye"))
    assert unmask_client_frame(transport.written[-1]) == (OP_CLOSE, (1001).to_bytes(2, "big"))
    assert transport.closed
    client.connection_lost(None)
    assert handler.events[-1] == ("close", "closed by server (1001 bye)")


def test_load_generator_against_the_reference_server(tmp_path: Path) -> None:
    spec = ServerSpec("reference", "reference")
    with running_server(spec, tmp_path, cpu=None) as server:
        config = LoadConfig(url=server.url, chargers=10, duration=2.0, warmup=0.5)
        result = run_load_blocking(config)
    assert result.connected == 10
    assert result.calls > 100
    assert result.msgs_per_s > 0 and 0 < result.p50_ms <= result.p99_ms
    assert result.call_errors == 0, result.call_error_kinds
    assert result.disconnects == {} and result.bad_frames == 0
    assert set(result.authorize_statuses) == {"Accepted"}


@pytest.mark.parametrize("stack", ["trio-websocket", "wsproto"])
def test_load_generator_against_the_transport_limit(tmp_path: Path, stack: str) -> None:
    spec = ServerSpec("transport", "transport", stack)
    with running_server(spec, tmp_path, cpu=None) as server:
        config = LoadConfig(url=server.url, chargers=10, duration=1.0, warmup=0.3)
        result = run_load_blocking(config)
    assert result.connected == 10 and result.calls > 100
    assert result.call_errors == 0 and result.bad_frames == 0 and result.disconnects == {}


def test_transport_limit_answers_calls_only() -> None:
    assert answer('[2,"7","Heartbeat",{}]') == '[3,"7",{}]'
    assert answer('[2,"8","Anything",{"x":1}]') == '[3,"8",{}]'
    assert answer('[3,"9",{}]') is None  # replies are not answered
    broken = answer('[2,"10","Heartbeat"]')
    assert broken is not None and broken.startswith('[4,"10","FormationViolation"')


@pytest.mark.slow
def test_bench_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("csms.runtime.server")
    out = tmp_path / "bench.json"
    argv = [sys.executable, "-m", "loadtest.bench", "--chargers", "10", "--duration", "2"]
    argv += ["--idle-connections", "50", "--json", str(out)]
    done = subprocess.run(argv, cwd=REPO_ROOT, env=child_env(), capture_output=True, timeout=180)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert b"throughput ours/reference" in done.stdout
    assert b"throughput ours/transport limit" in done.stdout
    report = orjson.loads(out.read_bytes())
    assert list(report["servers"]) == ["ours", "reference", "transport"]
    for name in ("ours", "reference", "transport"):
        server = report["servers"][name]
        assert server["load"]["calls"] > 0, name
        assert server["load"]["call_errors"] == 0, (name, server["load"]["call_error_kinds"])
        assert server["memory"]["connections_open"] == 50, name
        assert server["problems"] == [], (name, server["problems"])
    ratios = report["ratios"]
    assert ratios["throughput"] is not None and ratios["throughput_vs_transport"] is not None
    assert ratios["memory_vs_transport"] is not None
    targets = {t["name"]: t for t in report["targets"]}
    assert targets["throughput ours/transport limit"]["target"] == ">= 0.7x"
