"""Timeouts on virtual time: offline detection, command timeouts, the ping keepalive.

Connections run over in-memory streams (`memory_csms`) so that `autojump_clock` can skip
the waiting. The ledger's commit normally runs on a worker thread; while a thread runs the
run loop is idle and the mock clock would race ahead, so here it runs inline.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from runtime_harness import (
    BOOT,
    MemoryCsms,
    RawCharger,
    WsprotoPeer,
    memory_csms,
    open_store,
)
from support.charger import TestCharger
from support.settings import make_settings
from trio_websocket import ConnectionClosed
from wsproto.events import Ping

from csms.config import Settings
from csms.runtime.registry import CommandTimeout

Clock = trio.testing.MockClock


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "heartbeat_interval": 10,
        "offline_after_heartbeats": 2.5,  # offline after 25 s of silence
        "ping_interval": 1000.0,
        "ping_timeout": 5.0,
        "call_timeout": 30.0,
        "handshake_timeout": 2.0,
    }
    values.update(overrides)
    settings: Settings = make_settings(tmp_path, **values)
    return settings


# -- offline detection by heartbeat silence -------------------------------------------------


async def test_silent_station_is_closed_and_marked_offline(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = _settings(tmp_path)
    async with memory_csms(settings) as server, open_store(settings) as store:
        ws = await server.connect("CP-SILENT")
        charger = RawCharger(ws)
        assert (await charger.boot())[2]["status"] == "Accepted"
        assert store.get_station("CP-SILENT")["online"] == 1  # type: ignore[index]

        # A heartbeat within the allowance keeps the station online ...
        await trio.sleep(20)
        assert (await charger.call("Heartbeat", {}))[0] == 3
        await trio.sleep(20)  # 40 s since boot, 20 s since the heartbeat
        assert "CP-SILENT" in server.registry
        assert store.events("CP-SILENT", "offline") == []

        # ... silence beyond 2.5 heartbeat intervals does not.
        quiet_since = trio.current_time() - 20
        with trio.fail_after(100), pytest.raises(ConnectionClosed):
            await ws.get_message()
        closed_after = trio.current_time() - quiet_since
        offline_after = settings.heartbeat_interval * settings.offline_after_heartbeats
        assert offline_after <= closed_after <= offline_after + 10

        with trio.fail_after(10):
            while not store.events("CP-SILENT", "offline"):
                await trio.sleep(0.1)
        assert "CP-SILENT" not in server.registry
        assert store.get_station("CP-SILENT")["online"] == 0  # type: ignore[index]


async def test_station_that_keeps_talking_stays_online(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = _settings(tmp_path)
    async with memory_csms(settings) as server, open_store(settings) as store:
        charger = RawCharger(await server.connect("CP-CHATTY"))
        await charger.boot()
        for _ in range(10):  # 200 s, never 25 s quiet
            await trio.sleep(settings.heartbeat_interval * 2)
            assert (await charger.call("Heartbeat", {}))[0] == 3
        assert "CP-CHATTY" in server.registry
        assert store.events("CP-CHATTY", "offline") == []
        assert store.get_station("CP-CHATTY")["online"] == 1  # type: ignore[index]


# -- command timeout ------------------------------------------------------------------------


async def test_unanswered_command_times_out_and_late_answer_is_dropped(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = _settings(tmp_path, call_timeout=30.0, heartbeat_interval=1000)
    async with memory_csms(settings) as server:
        charger = RawCharger(await server.connect("CP-SLOW"))
        await charger.boot()
        received: list[list[Any]] = []

        async def read_calls() -> None:
            while True:
                received.append(await charger.receive(timeout=math.inf))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_calls)
            started = trio.current_time()
            with trio.fail_after(100), pytest.raises(CommandTimeout):
                await server.registry.send_command("CP-SLOW", "Reset", {"type": "Soft"})
            waited = trio.current_time() - started
            assert settings.call_timeout <= waited < settings.call_timeout + 1
            assert [frame[2] for frame in received] == ["Reset"]
            late_id = received[0][1]

            # The late answer is dropped: it must not be taken as the answer of the next
            # command, which gets its own (different) answer.
            result: dict[str, Any] = {}

            async def next_command() -> None:
                result.update(await server.registry.send_command("CP-SLOW", "ClearCache", {}))

            nursery.start_soon(next_command)
            with trio.fail_after(10):
                while len(received) < 2:
                    await trio.sleep(0.1)
            assert received[1][2] == "ClearCache"
            assert received[1][1] != late_id
            await charger.send([3, late_id, {"status": "Accepted"}])
            await trio.sleep(1)
            assert result == {}  # the late answer did not complete the second command
            await charger.send([3, received[1][1], {"status": "Rejected"}])
            with trio.fail_after(10):
                while not result:
                    await trio.sleep(0.1)
            assert result == {"status": "Rejected"}
            nursery.cancel_scope.cancel()

        # The connection is unharmed.
        assert "CP-SLOW" in server.registry
        assert (await charger.call("Heartbeat", {}))[0] == 3


async def test_commands_are_serialized_on_virtual_time(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    """Several concurrent commands: the charger never has two CALLs outstanding."""
    settings = _settings(tmp_path, heartbeat_interval=1000)
    async with memory_csms(settings) as server:
        charger = RawCharger(await server.connect("CP-Q"))
        await charger.boot()
        outstanding = 0
        most_outstanding = 0
        results: list[dict[str, Any]] = []

        async def answer_slowly(message_id: str) -> None:
            nonlocal outstanding
            await trio.sleep(3)  # a slow charger: a second CALL would arrive meanwhile
            outstanding -= 1
            await charger.send([3, message_id, {"status": "Accepted"}])

        async def charger_side(answers: trio.Nursery) -> None:
            nonlocal outstanding, most_outstanding
            while True:  # keeps reading while answers are pending
                call = await charger.receive(timeout=math.inf)
                outstanding += 1
                most_outstanding = max(most_outstanding, outstanding)
                answers.start_soon(answer_slowly, call[1])

        async def command(i: int) -> None:
            results.append(await server.registry.send_command("CP-Q", "Reset", {"type": "Soft"}))

        with trio.fail_after(100):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(charger_side, nursery)
                async with trio.open_nursery() as commands:
                    for i in range(5):
                        commands.start_soon(command, i)
                nursery.cancel_scope.cancel()
        assert results == [{"status": "Accepted"}] * 5
        assert most_outstanding == 1


# -- ping keepalive -------------------------------------------------------------------------


async def _half_open(server: MemoryCsms, station_id: str) -> WsprotoPeer:
    """A peer that completes the handshake and a boot, then stops reading.

    It plays a peer behind a dead NAT or a pulled cable: nothing it is sent is ever read,
    so no pong (and no close reply) ever comes back.
    """
    peer = await WsprotoPeer.connect(server)
    await peer.open(station_id)
    assert (await peer.call("BootNotification", BOOT))[2]["status"] == "Accepted"
    return peer


async def test_half_open_peer_is_closed_by_ping_timeout(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    # Heartbeat silence alone would take 10000 s; the ping must catch it long before.
    settings = _settings(tmp_path, heartbeat_interval=4000, ping_interval=60.0, ping_timeout=20.0)
    async with memory_csms(settings) as server, open_store(settings) as store:
        await _half_open(server, "CP-HALF")
        booted_at = trio.current_time()
        assert "CP-HALF" in server.registry
        with trio.fail_after(1000):
            while "CP-HALF" in server.registry:
                await trio.sleep(1)
        gone_after = trio.current_time() - booted_at
        # Quiet for ping_interval, then ping_timeout without a pong; the watch ticks
        # every ping_interval / 4.
        earliest = settings.ping_interval + settings.ping_timeout
        assert earliest <= gone_after <= earliest + settings.ping_interval / 4 + 1
        with trio.fail_after(60):
            while not store.events("CP-HALF", "offline"):
                await trio.sleep(1)
        assert store.get_station("CP-HALF")["online"] == 0  # type: ignore[index]


async def test_peer_that_answers_pings_is_kept(tmp_path: Path, autojump_clock: Clock) -> None:
    settings = _settings(tmp_path, heartbeat_interval=4000, ping_interval=60.0, ping_timeout=20.0)
    async with memory_csms(settings) as server, open_store(settings) as store:
        ws = await server.connect("CP-PONG")  # trio-websocket answers pings by itself
        charger = TestCharger(ws, {})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(charger._pump)
            await charger.boot()
            await trio.sleep(600)  # ten ping intervals, all silent at the OCPP level
            assert "CP-PONG" in server.registry
            assert store.events("CP-PONG", "offline") == []
            assert (await charger.call("Heartbeat", {}))[0] == 3
            nursery.cancel_scope.cancel()


async def test_an_answering_peer_is_pinged_once_per_quiet_interval(
    tmp_path: Path, autojump_clock: Clock
) -> None:
    settings = _settings(tmp_path, heartbeat_interval=4000, ping_interval=60.0, ping_timeout=20.0)
    async with memory_csms(settings) as server:
        peer = await WsprotoPeer.connect(server)
        await peer.open("CP-COUNT")
        assert (await peer.call("BootNotification", BOOT))[2]["status"] == "Accepted"
        pings = 0
        with trio.move_on_after(600):
            while True:
                for event in peer.ws.events():
                    if isinstance(event, Ping):
                        pings += 1
                        await peer.stream.send_all(peer.ws.send(event.response()))
                data = await peer.stream.receive_some(65536)
                assert data, "the server closed a connection that answers its pings"
                peer.ws.receive_data(data)
        # A pong counts as traffic: one ping per quiet ping_interval, not one per tick.
        assert 600 / 60 - 2 <= pings <= 600 / 60 + 1
        assert "CP-COUNT" in server.registry
