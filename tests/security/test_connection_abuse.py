"""Misbehaving connections, over loopback against a live CSMS with a SQLite file.

- Duplicate connections for one id: the newest wins; the older is closed (1000, "replaced")
  and the command it was carrying fails cleanly with StationOffline.
- A crossing CALL: the CSMS's RemoteStartTransaction is in flight when the station's own
  StartTransaction arrives; both complete, each reply paired to its CALL by message id.
- Pipelined CALLs: OCPP-J allows one outstanding CALL per direction. The server reads a
  connection's next message only after answering the previous, so CALLs sent without
  waiting are answered one by one, in order, each exactly once; nothing is refused or lost.
- Late and unknown CALLRESULTs/CALLERRORs are dropped (and logged); the connection lives on.

A bystander charger is served after each case.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from security_harness import BOOT, add_figure, row_counts
from support.charger import connect_charger, ts
from support.settings import make_settings
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from csms.runtime.registry import CommandTimeout, StationOffline
from csms.runtime.server import Csms, run_csms


@asynccontextmanager
async def live_csms(tmp_path: Path, **overrides: object) -> AsyncIterator[Csms]:
    async with trio.open_nursery() as nursery:
        csms: Csms = await nursery.start(run_csms, make_settings(tmp_path, **overrides))
        yield csms
        nursery.cancel_scope.cancel()


def database(csms: Csms) -> Path:
    return Path(csms.settings.database_url.removeprefix("sqlite:///"))


class Raw:
    """A charger whose every frame the test sends and reads itself."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, frame: list[Any]) -> None:
        await self.ws.send_message(orjson.dumps(frame).decode())

    async def receive(self) -> list[Any]:
        with trio.fail_after(10):
            frame: list[Any] = orjson.loads(await self.ws.get_message())
        return frame

    async def call(self, message_id: str, action: str, payload: dict[str, Any]) -> list[Any]:
        await self.send([2, message_id, action, payload])
        return await self.receive()


@asynccontextmanager
async def raw(csms: Csms, station_id: str) -> AsyncIterator[Raw]:
    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp/{station_id}"
    async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
        charger = Raw(ws)
        assert (await charger.call("boot", "BootNotification", BOOT))[2]["status"] == "Accepted"
        yield charger


async def bystander_served(csms: Csms) -> None:
    async with connect_charger(csms.ocpp_port, "CP-BYSTANDER") as bystander:
        with trio.fail_after(10):
            assert (await bystander.boot())[2]["status"] == "Accepted"
            assert await csms.registry.send_command("CP-BYSTANDER", "ClearCache", {}) == {
                "status": "Accepted"
            }
    add_figure("connection abuse cases with the bystander served")


START = {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": ts()}


async def test_newest_connection_wins_and_the_olders_command_fails_cleanly(
    tmp_path: Path,
) -> None:
    async with live_csms(tmp_path) as csms, raw(csms, "CP-DUP") as older:
        outcome: list[BaseException] = []

        async def command() -> None:
            try:
                await csms.registry.send_command("CP-DUP", "Reset", {"type": "Soft"})
            except (StationOffline, CommandTimeout) as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(command)
            reset = await older.receive()  # the older gets the CALL and never answers
            assert reset[2] == "Reset"
            async with raw(csms, "CP-DUP") as newer:
                with trio.fail_after(10), pytest.raises(ConnectionClosed) as closed:
                    await older.ws.get_message()
                assert closed.value.reason is not None
                assert closed.value.reason.code == 1000
                assert "replaced" in (closed.value.reason.reason or "")
                assert (await newer.call("hb", "Heartbeat", {}))[0] == 3
                assert csms.registry.get("CP-DUP") is not None
                with trio.fail_after(10):
                    while not outcome:
                        await trio.sleep(0.01)
                assert isinstance(outcome[0], StationOffline)
                # Commands now reach the newer connection.
                nursery.start_soon(csms.registry.send_command, "CP-DUP", "ClearCache", {})
                clear = await newer.receive()
                assert clear[2] == "ClearCache"
                await newer.send([3, clear[1], {"status": "Accepted"}])
        rows = row_counts(database(csms))
        assert rows["stations"] == 1
        await bystander_served(csms)


@pytest.mark.parametrize("csms_first", [True, False], ids=["csms-call-first", "station-first"])
async def test_crossing_calls_both_complete_paired_by_message_id(
    tmp_path: Path, csms_first: bool
) -> None:
    async with live_csms(tmp_path) as csms, raw(csms, "CP-X") as station:
        before = row_counts(database(csms))["transactions"]
        result: dict[str, Any] = {}

        async def remote_start() -> None:
            result.update(
                await csms.registry.send_command(
                    "CP-X", "RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG1"}
                )
            )

        async with trio.open_nursery() as nursery:
            if csms_first:
                nursery.start_soon(remote_start)
                remote = await station.receive()  # the CSMS's CALL, left unanswered ...
                assert remote[0] == 2 and remote[2] == "RemoteStartTransaction"
                await station.send([2, "st1", "StartTransaction", START])  # ... crossed
                answer = await station.receive()
            else:
                await station.send([2, "st1", "StartTransaction", START])
                nursery.start_soon(remote_start)
                first, second = await station.receive(), await station.receive()
                remote, answer = (first, second) if first[0] == 2 else (second, first)
                assert remote[2] == "RemoteStartTransaction"
            assert answer[:2] == [3, "st1"]
            assert isinstance(answer[2]["transactionId"], int)
            await station.send([3, remote[1], {"status": "Accepted"}])
        assert result == {"status": "Accepted"}
        assert row_counts(database(csms))["transactions"] == before + 1
        await bystander_served(csms)


async def test_pipelined_calls_are_answered_in_order_exactly_once(tmp_path: Path) -> None:
    async with live_csms(tmp_path) as csms, raw(csms, "CP-PIPE") as station:
        before = row_counts(database(csms))["meter_samples"]
        count = 12
        for i in range(count):
            meter = {
                "connectorId": 1,
                "meterValue": [
                    {"timestamp": ts(60 * i), "sampledValue": [{"value": str(1000 + i)}]}
                ],
            }
            await station.send([2, f"mv{i}", "MeterValues", meter])
        answers = [await station.receive() for _ in range(count)]
        assert [a[:2] for a in answers] == [[3, f"mv{i}"] for i in range(count)]
        await station.send([2, "after", "Heartbeat", {}])
        assert (await station.receive())[:2] == [3, "after"]  # no extra answers were queued
        assert row_counts(database(csms))["meter_samples"] == before + count
        await bystander_served(csms)


async def test_late_and_unknown_replies_are_dropped_and_the_connection_kept(
    tmp_path: Path,
) -> None:
    async with live_csms(tmp_path, call_timeout=0.5) as csms, raw(csms, "CP-LATE") as station:
        before = row_counts(database(csms))
        for frame in (
            [3, "never-sent", {"status": "Accepted"}],
            [4, "never-sent", "GenericError", "no such call", {}],
            [3, "1", {}],
        ):
            await station.send(frame)
        async with trio.open_nursery() as nursery:
            failures: list[BaseException] = []

            async def timed_out() -> None:
                try:
                    await csms.registry.send_command("CP-LATE", "ClearCache", {})
                except CommandTimeout as exc:
                    failures.append(exc)

            nursery.start_soon(timed_out)
            late = await station.receive()
            with trio.fail_after(10):
                while not failures:
                    await trio.sleep(0.05)
            await station.send([3, late[1], {"status": "Accepted"}])  # after the timeout
            await station.send([4, late[1], "InternalError", "late too", {}])
        # Nothing answers the dropped replies: the next frame is the heartbeat's answer.
        assert (await station.call("hb", "Heartbeat", {}))[:2] == [3, "hb"]
        assert "CP-LATE" in csms.registry
        assert row_counts(database(csms))["transactions"] == before["transactions"]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(csms.registry.send_command, "CP-LATE", "ClearCache", {})
            clear = await station.receive()
            assert clear[1] != late[1]
            await station.send([3, clear[1], {"status": "Accepted"}])
        await bystander_served(csms)
