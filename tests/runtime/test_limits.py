"""The limits that protect the server: connection count, message rate, slow handshakes,
bounded write queues, and the settings that set them.

Rate and handshake cases run on in-memory streams and virtual time (`memory_csms`,
`autojump_clock`); the connection limit runs over loopback, where HTTP statuses are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from runtime_harness import (
    BOOT,
    RawCharger,
    WsprotoPeer,
    connect_raw,
    memory_csms,
    running_csms,
    wait_until,
)
from support.settings import make_settings
from trio_websocket import ConnectionRejected, open_websocket_url
from wsproto.events import CloseConnection, TextMessage

from csms.config import ConfigError, Settings, load_settings
from csms.runtime.rate_limit import RateLimits
from csms.runtime.server import Csms
from csms.runtime.websocket import Handshake, ServerWebSocket
from csms.websocket import MAX_BACKLOG_BYTES, WebSocket, open_client

Clock = trio.testing.MockClock


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"handshake_timeout": 5.0, "heartbeat_interval": 4000}
    values.update(overrides)
    settings: Settings = make_settings(tmp_path, **values)
    return settings


# -- the connection limit ------------------------------------------------------------------


async def _refusal(csms: Csms, station_id: str) -> ConnectionRejected:
    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/{station_id}"
    with trio.fail_after(10), pytest.raises(ConnectionRejected) as refused:
        async with open_websocket_url(url, subprotocols=["ocpp1.6"]):
            pass
    return refused.value


async def test_handshakes_beyond_max_connections_get_503(tmp_path: Path) -> None:
    settings = _settings(tmp_path, max_connections=2)
    async with running_csms(settings) as csms:
        async with (
            connect_raw(csms.ocpp_port, "CP-A") as a,
            connect_raw(csms.ocpp_port, "CP-B") as b,
        ):
            for charger in (a, b):
                assert (await charger.boot())[2]["status"] == "Accepted"
            refusal = await _refusal(csms, "CP-C")
            assert refusal.status_code == 503
            assert b"connection limit" in (refusal.body or b"")
            assert "CP-C" not in csms.registry
            # The chargers already in are untouched.
            for charger in (a, b):
                assert (await charger.call("Heartbeat", {}))[0] == 3
            # A station replacing its own connection does not grow the count: let in.
            async with connect_raw(csms.ocpp_port, "CP-A") as again:
                assert (await again.call("Heartbeat", {}))[0] == 3
            assert csms.open_connections <= 2
        # Once connections end, their places are free again.
        await wait_until(lambda: csms.open_connections == 0)
        async with connect_raw(csms.ocpp_port, "CP-C") as c:
            assert (await c.boot())[2]["status"] == "Accepted"


# -- handshakes in progress ---------------------------------------------------------------


async def _until_closed(stream: trio.abc.Stream, timeout: float = 10.0) -> bytes:
    """Everything the server writes before it closes the stream."""
    received = b""
    with trio.fail_after(timeout):
        while data := await stream.receive_some(4096):
            received += data
    return received


async def test_connections_beyond_max_handshakes_are_refused_until_one_ends(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = _settings(tmp_path, max_handshakes=3, handshake_timeout=60.0)
    async with memory_csms(settings) as server:
        csms = server.csms
        established = await WsprotoPeer.connect(server)
        await established.open("CP-OLD")
        await established.call("BootNotification", BOOT)
        # Clients that connect and never send their request: each holds a handshake.
        silent = []
        for _ in range(settings.max_handshakes):
            client, server_stream = trio.testing.memory_stream_pair()
            await server.serve(server_stream)
            silent.append(client)
        await wait_until(lambda: csms.handshakes == settings.max_handshakes)

        client, server_stream = trio.testing.memory_stream_pair()
        await server.serve(server_stream)
        refusal = await _until_closed(client)

        assert refusal.startswith(b"HTTP/1.1 503 ")
        assert refusal.endswith(b"too many handshakes in progress; try again later")
        assert csms.refused_handshakes == 1
        assert csms.handshakes == settings.max_handshakes
        # The charger already in does not notice.
        assert (await established.call("Heartbeat", {}))[0] == 3

        await silent.pop().aclose()  # one gives up: its place is free at once
        await wait_until(lambda: csms.handshakes == settings.max_handshakes - 1)
        newcomer = await WsprotoPeer.connect(server)
        await newcomer.open("CP-NEW")
        assert (await newcomer.call("BootNotification", BOOT))[2]["status"] == "Accepted"

        # The others are cut at the handshake timeout, which frees their places too.
        for stalled in silent:
            assert await _until_closed(stalled, 2 * settings.handshake_timeout) == b""
        await wait_until(lambda: csms.handshakes == 0)
        assert csms.refused_handshakes == 1
        assert "CP-OLD" in server.registry and "CP-NEW" in server.registry


async def test_the_handshake_cap_holds_over_loopback(tmp_path: Path) -> None:
    settings = _settings(tmp_path, max_handshakes=2)
    async with running_csms(settings) as csms, connect_raw(csms.ocpp_port, "CP-OLD") as old:
        assert (await old.boot())[2]["status"] == "Accepted"
        silent = [await trio.open_tcp_stream("127.0.0.1", csms.ocpp_port) for _ in range(2)]
        await wait_until(lambda: csms.handshakes == 2)

        refused = await trio.open_tcp_stream("127.0.0.1", csms.ocpp_port)
        refusal = await _until_closed(refused)
        await refused.aclose()

        assert refusal.startswith(b"HTTP/1.1 503 ")
        assert b"too many handshakes" in refusal
        assert (await old.call("Heartbeat", {}))[0] == 3
        for stream in silent:
            await stream.aclose()
        await wait_until(lambda: csms.handshakes == 0)
        async with connect_raw(csms.ocpp_port, "CP-NEW") as new:
            assert (await new.boot())[2]["status"] == "Accepted"
        assert csms.refused_handshakes == 1


# -- the message rate ----------------------------------------------------------------------


async def _answers(peer: WsprotoPeer, count: int) -> tuple[list[list[Any]], CloseConnection | None]:
    """The next `count` frames, or those that come before the server closes."""
    frames: list[list[Any]] = []
    with trio.fail_after(60):
        while len(frames) < count:
            for event in peer.ws.events():
                if isinstance(event, TextMessage):
                    frames.append(orjson.loads(event.data))
                elif isinstance(event, CloseConnection):
                    return frames, event
            data = await peer.stream.receive_some(65536)
            if not data:
                return frames, None
            peer.ws.receive_data(bytes(data))
    return frames, None


async def test_a_charger_at_the_rate_is_never_limited(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = _settings(tmp_path, max_messages_per_second=5.0, message_burst=5)
    async with memory_csms(settings) as server:
        peer = await WsprotoPeer.connect(server)
        await peer.open("CP-CALM")
        await peer.call("BootNotification", BOOT)
        for _ in range(300):  # one a fifth of a second: exactly the rate, for a minute
            await trio.sleep(1 / settings.max_messages_per_second)
            assert (await peer.call("Heartbeat", {}))[0] == 3
        assert "CP-CALM" in server.registry


async def test_a_flood_is_refused_unprocessed_then_closed_with_1008(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    burst = 10
    settings = _settings(tmp_path, max_messages_per_second=1.0, message_burst=burst)
    async with memory_csms(settings) as server:
        peer = await WsprotoPeer.connect(server)
        await peer.open("CP-FLOOD")
        await peer.call("BootNotification", BOOT)
        await trio.sleep(burst)  # the token the boot took is back
        events_before = server.csms.ledger.stats.events
        flood = b"".join(peer.text([2, f"f{i}", "Heartbeat", {}]) for i in range(3 * burst))
        await peer.stream.send_all(flood)
        frames, close = await _answers(peer, 3 * burst)
        assert close is not None and close.code == 1008
        results = [f for f in frames if f[0] == 3]
        refused = [f for f in frames if f[0] == 4]
        # Virtual time stands still while the flood is read: exactly one allowance is served,
        # exactly one tolerance is refused, and the next message closes the connection.
        assert len(results) == burst and len(refused) == burst
        assert all(f[2] == "GenericError" and "rate limit" in f[3] for f in refused)
        assert [f[1] for f in frames] == [f"f{i}" for i in range(2 * burst)]
        # Refused CALLs never reached the ledger.
        await wait_until(lambda: bool(server.store.events("CP-FLOOD", "disconnected")), 60)
        heartbeats = server.csms.ledger.stats.events - events_before
        assert heartbeats == burst + 1  # the one more is the disconnect's record


async def test_twice_the_rate_is_answered_but_never_closed(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = _settings(tmp_path, max_messages_per_second=2.0, message_burst=4)
    async with memory_csms(settings) as server:
        peer = await WsprotoPeer.connect(server)
        await peer.open("CP-EAGER")
        await peer.call("BootNotification", BOOT)
        codes: list[int] = []
        for _ in range(200):
            await trio.sleep(1 / (2 * settings.max_messages_per_second))
            codes.append((await peer.call("Heartbeat", {}))[0])
        assert 4 in codes and 3 in codes
        # Beyond the first burst, half are served: the rate.
        assert codes[20:].count(3) == pytest.approx(len(codes[20:]) / 2, abs=2)
        assert "CP-EAGER" in server.registry


async def test_reconnecting_does_not_refill_the_allowance(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    burst = 6
    settings = _settings(tmp_path, max_messages_per_second=1.0, message_burst=burst)

    def rate_refused(frame: list[Any]) -> bool:
        return frame[0] == 4 and frame[2] == "GenericError"

    async with memory_csms(settings) as server:
        first = await WsprotoPeer.connect(server)
        await first.open("CP-HOPPER")
        await first.call("BootNotification", BOOT)
        frames = [await first.call("Heartbeat", {}) for _ in range(burst + 1)]
        assert [rate_refused(f) for f in frames] == [False] * (burst - 1) + [True, True]
        # A new connection of the same station finds the allowance as the last one left it.
        second = await WsprotoPeer.connect(server)
        await second.open("CP-HOPPER")
        assert rate_refused(await second.call("BootNotification", BOOT))
        # Another station is not affected, and time alone refills the station's allowance.
        other = await WsprotoPeer.connect(server)
        await other.open("CP-OTHER")
        assert (await other.call("BootNotification", BOOT))[0] == 3
        await trio.sleep(burst)
        assert (await second.call("BootNotification", BOOT))[0] == 3


def test_remembered_limits_are_bounded() -> None:
    limits = RateLimits(rate=1.0, burst=1, capacity=2)
    a = limits.for_station("A", 0.0)
    limits.for_station("B", 0.0)
    assert limits.for_station("A", 0.0) is a  # A is now the most recent
    limits.for_station("C", 0.0)  # forgets B, the least recent
    assert len(limits) == 2
    assert limits.for_station("A", 0.0) is a


# -- the handshake's time limit ------------------------------------------------------------


async def test_a_dribbled_handshake_is_cut_at_the_handshake_timeout(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    """Slowloris: each byte arrives in time for the next read, the whole never does."""
    settings = _settings(tmp_path)
    async with memory_csms(settings) as server:
        client, server_stream = trio.testing.memory_stream_pair()
        await server.serve(server_stream)
        request = WsprotoPeer(client).request("CP-SLOW")
        started = trio.current_time()
        closed_at: float | None = None
        with trio.fail_after(len(request)):
            for i in range(len(request)):
                try:
                    await client.send_all(request[i : i + 1])
                except trio.BrokenResourceError:
                    closed_at = trio.current_time()
                    break
                await trio.sleep(0.5)
        assert closed_at is not None, "the server read the whole dribbled request"
        waited = closed_at - started
        assert settings.handshake_timeout <= waited <= settings.handshake_timeout + 1
        assert await client.receive_some(1024) == b""  # no answer, just closed
        assert "CP-SLOW" not in server.registry
        assert server.csms.open_connections == 0


async def test_a_client_gone_before_the_answer_ends_only_its_own_handshake(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    """The refusal (and the acceptance) cannot be written: that is not the server's problem."""
    async with memory_csms(_settings(tmp_path)) as server:
        for path_id in ("CP%2Fbad", "CP-GONE"):
            client, server_stream = trio.testing.memory_stream_pair()
            await client.send_all(WsprotoPeer(client).request(path_id))
            await client.aclose()
            await server.serve(server_stream)
        await trio.sleep(1)
        assert server.csms.open_connections == 0
        peer = await WsprotoPeer.connect(server)
        await peer.open("CP-NEXT")
        assert (await peer.call("BootNotification", BOOT))[2]["status"] == "Accepted"


# -- the write queue -----------------------------------------------------------------------


class _Gate(trio.abc.Stream):
    """A stream that stops sending while `open` is clear: a peer that stopped reading."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.open = trio.Event()
        self.open.set()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.open.wait()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _accept(handshake: Handshake) -> tuple[str | None, tuple[int, str] | None]:
    return "ocpp1.6", None


async def test_writers_behind_a_stalled_write_wait_instead_of_queueing_forever(
    autojump_clock: Clock,
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    gate = _Gate(server_stream)
    server = ServerWebSocket(gate, max_message_size=1 << 20)
    client: WebSocket | None = None

    async def connect_client() -> None:
        nonlocal client
        client = await open_client(client_stream, "localhost", "/ocpp/CP", ["ocpp1.6"])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connect_client)
        assert await server.handshake(_accept) is not None
    assert client is not None
    gate.open = trio.Event()  # the peer stops reading
    message = "x" * 10_000
    done: list[int] = []

    async def write(i: int) -> None:
        await server.send(f"{i}:{message}")
        done.append(i)

    writers = 40
    async with trio.open_nursery() as nursery:
        for i in range(writers):
            nursery.start_soon(write, i)
            await trio.sleep(0.01)
        await trio.sleep(1)
        # The first write stalls; the queue behind it fills to the limit, then writers wait.
        assert server.backlog_bytes <= MAX_BACKLOG_BYTES + len(message) + 100
        assert 0 < len(done) < writers
        gate.open.set()
        received = [await client.receive() for _ in range(writers)]
    assert sorted(done) == list(range(writers))
    # Each message whole (concurrent writers have no order among themselves).
    assert sorted(int(text.split(":", 1)[0]) for text in received) == list(range(writers))
    assert all(text.endswith(message) for text in received)
    assert server.backlog_bytes == 0


async def test_a_peer_that_stops_reading_blocks_nobody_and_is_closed_by_ping(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = _settings(tmp_path, ping_interval=60.0, ping_timeout=20.0)
    async with memory_csms(settings) as server:
        client_stream, server_stream = trio.testing.memory_stream_pair()
        gate = _Gate(server_stream)
        await server.serve(gate)
        stalled = WsprotoPeer(client_stream)
        await stalled.open("CP-STALL")
        await stalled.call("BootNotification", BOOT)
        gate.open = trio.Event()  # from here on nothing the server writes to it gets out
        for i in range(5):
            await stalled.stream.send_all(stalled.text([2, f"s{i}", "Heartbeat", {}]))
        stalled_at = trio.current_time()
        neighbour = RawCharger(await server.connect("CP-OK"))
        assert (await neighbour.boot())[2]["status"] == "Accepted"
        for _ in range(3):
            await trio.sleep(10)
            assert (await neighbour.call("Heartbeat", {}))[0] == 3
        with trio.fail_after(200):
            while "CP-STALL" in server.registry:
                await trio.sleep(1)
        # Quiet for a ping interval, then no pong within the ping timeout.
        gone_after = trio.current_time() - stalled_at
        assert gone_after <= settings.ping_interval + settings.ping_timeout + 20
        assert (await neighbour.call("Heartbeat", {}))[0] == 3


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("max_connections = 0", "max_connections"),
        ('max_connections = "many"', "max_connections"),
        ("max_messages_per_second = 0", "max_messages_per_second"),
        ("max_messages_per_second = -5.0", "max_messages_per_second"),
        ("max_messages_per_second = nan", "max_messages_per_second"),
        ("max_messages_per_second = inf", "max_messages_per_second"),
        ("message_burst = 0", "message_burst"),
        ("message_burst = 1.5", "message_burst"),
        ("handshake_timeout = -1", "handshake_timeout"),
        ("max_handshakes = 0", "max_handshakes"),
        ("max_handshakes = -3", "max_handshakes"),
        ('max_handshakes = "lots"', "max_handshakes"),
        ("max_handshakes = 2.5", "max_handshakes"),
    ],
)
def test_bad_limits_are_refused_naming_the_setting(tmp_path: Path, toml: str, named: str) -> None:
    config = tmp_path / "csms.toml"
    config.write_text(f"[ocpp]\n{toml}\n")
    with pytest.raises(ConfigError, match=named):
        load_settings(config)


def test_limits_are_read_from_the_ocpp_section(tmp_path: Path) -> None:
    config = tmp_path / "csms.toml"
    config.write_text(
        "[ocpp]\nmax_connections = 50\nmax_messages_per_second = 2.5\nmessage_burst = 7\n"
        "handshake_timeout = 3\nmax_handshakes = 40\n"
    )
    settings = load_settings(config)
    assert settings.max_handshakes == 40
    assert Settings.model_fields["max_handshakes"].default == 10_000
    assert settings.max_connections == 50
    assert settings.max_messages_per_second == 2.5
    assert settings.message_burst == 7
    assert settings.handshake_timeout == 3
