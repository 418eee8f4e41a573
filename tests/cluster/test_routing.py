"""Two in-process nodes on one PostgreSQL database: routed commands, presence, takeover."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from cluster_harness import WAIT_S, eventually, two_nodes
from support.charger import connect_charger

from csms.protocol import v16
from csms.protocol.errors import NotSupported
from csms.protocol.session import OcppSession
from csms.runtime.registry import CommandRejected, StationOffline
from csms.runtime.server import Csms


async def test_a_command_to_one_node_reaches_a_charger_on_another(tmp_path: Path) -> None:
    async with (
        two_nodes(tmp_path) as (a, b),
        connect_charger(
            b.ocpp_port, "CP-1", answers={"GetConfiguration": {"configurationKey": []}}
        ) as charger,
    ):
        await charger.boot()
        await eventually(lambda: _online(a, "CP-1"))
        assert await a.registry.versions() == {"CP-1": "ocpp1.6"}
        assert "CP-1" not in a.registry

        reply = await a.registry.send_command("CP-1", "Reset", {"type": "Soft"})

        assert reply == {"status": "Accepted"}
        assert charger.received_calls == [("Reset", {"type": "Soft"})]


async def test_a_big_payload_goes_through_a_table_row(tmp_path: Path) -> None:
    keys = [f"Key{i:04d}" for i in range(900)]  # over 8000 bytes of JSON each way
    answer = {"configurationKey": [{"key": k, "readonly": True, "value": "x" * 4} for k in keys]}
    async with (
        two_nodes(tmp_path) as (a, b),
        connect_charger(b.ocpp_port, "CP-1", answers={"GetConfiguration": answer}) as charger,
    ):
        await charger.boot()
        await eventually(lambda: _online(a, "CP-1"))

        reply = await a.registry.send_command("CP-1", "GetConfiguration", {"key": keys})

        assert reply == answer
        assert charger.received_calls == [("GetConfiguration", {"key": keys})]


async def test_a_callerror_comes_back_as_a_rejection(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (a, b), connect_charger(b.ocpp_port, "CP-1") as charger:
        await charger.boot()
        await eventually(lambda: _online(a, "CP-1"))
        charger.session = RefusingSession("ocpp1.6", v16.CSMS_ACTIONS)

        with pytest.raises(StationOffline):
            await a.registry.send_command("CP-2", "Reset", {"type": "Soft"})
        with pytest.raises(CommandRejected) as rejected:
            await a.registry.send_command("CP-1", "Reset", {"type": "Soft"})
        assert isinstance(rejected.value.error, NotSupported)
        assert (rejected.value.error.description, rejected.value.error.details) == (
            "not here",
            {"n": 1},
        )


async def test_a_station_leaves_the_registry_when_it_disconnects(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (a, b):
        async with connect_charger(b.ocpp_port, "CP-1") as charger:
            await charger.boot()
            await eventually(lambda: _online(a, "CP-1"))
        await eventually(lambda: _offline(a, "CP-1"))
        with pytest.raises(StationOffline):
            await a.registry.send_command("CP-1", "Reset", {"type": "Soft"})


async def test_a_reconnection_to_another_node_takes_the_station_over(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (a, b), connect_charger(a.ocpp_port, "CP-1") as old:
        await old.boot()
        await eventually(lambda: _held_by(b, a))
        async with connect_charger(b.ocpp_port, "CP-1") as new:
            await new.boot()
            await eventually(lambda: _held_by(a, b))
            with trio.fail_after(WAIT_S):
                await _closed(old)
            assert "CP-1" not in a.registry

            reply = await a.registry.send_command("CP-1", "Reset", {"type": "Hard"})

            assert reply == {"status": "Accepted"}
            assert new.received_calls == [("Reset", {"type": "Hard"})]
            assert old.received_calls == []


class RefusingSession(OcppSession):
    """A charger's session that answers every CSMS call with a CALLERROR."""

    def reply_result(self, message_id: str, payload: dict[str, Any]) -> str:
        return orjson.dumps([4, message_id, "NotSupported", "not here", {"n": 1}]).decode()


async def _online(node: Csms, station_id: str) -> bool:
    return await node.registry.version_of(station_id) is not None


async def _offline(node: Csms, station_id: str) -> bool:
    return await node.registry.version_of(station_id) is None


async def _held_by(asker: Csms, holder: Csms) -> bool:
    """True when `asker` sees the station held by `holder` (not by itself)."""
    assert holder.cluster is not None and asker.cluster is not None
    holders = await trio.to_thread.run_sync(holder.cluster.directory.holders, None)
    return "CP-1" in holders and holders["CP-1"].node_id == holder.cluster.node_id


async def _closed(charger: object) -> None:
    from support.charger import TestCharger

    assert isinstance(charger, TestCharger)
    while not charger.ws.closed:
        await trio.sleep(0.02)


async def test_the_stations_of_a_dead_node_expire(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (a, _):
        assert a.cluster is not None
        directory = a.cluster.directory

        def a_dead_node_holds(station_id: str) -> None:
            with directory.pool.connection() as conn:
                conn.execute(
                    "INSERT INTO cluster_nodes (node_id, name, pid, heartbeat_at)"
                    " VALUES ('dead', 'gone:1', 1, now() - interval '1 hour')"
                )
                conn.execute(
                    "INSERT INTO cluster_stations (station_id, node_id, ocpp_version, claim)"
                    " VALUES (%s, 'dead', 'ocpp1.6', 0)",
                    (station_id,),
                )

        def node_ids() -> list[str]:
            with directory.pool.connection() as conn:
                rows = conn.execute("SELECT node_id FROM cluster_nodes").fetchall()
            return sorted(str(row[0]) for row in rows)

        await trio.to_thread.run_sync(a_dead_node_holds, "CP-9")

        assert await a.registry.versions() == {}
        with pytest.raises(StationOffline):
            await a.registry.send_command("CP-9", "Reset", {"type": "Soft"})
        with trio.fail_after(WAIT_S):
            while "dead" in await trio.to_thread.run_sync(node_ids):
                await trio.sleep(0.05)
        assert len(await trio.to_thread.run_sync(node_ids)) == 2


async def test_a_node_listens_again_when_its_connection_breaks(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (a, b), connect_charger(b.ocpp_port, "CP-1") as charger:
        await charger.boot()
        await eventually(lambda: _online(a, "CP-1"))
        assert a.cluster is not None
        pool = a.cluster.directory.pool

        def end_the_listening_sessions() -> int:
            with pool.connection() as conn:
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'csms-cluster-listen'"
                    " AND datname = current_database()"
                ).fetchall()
            return len(rows)

        assert await trio.to_thread.run_sync(end_the_listening_sessions) == 2
        with trio.fail_after(WAIT_S):
            while True:
                # Until B listens again, a command to it is lost and would time out.
                with trio.move_on_after(1.0):
                    reply = await a.registry.send_command("CP-1", "Reset", {"type": "Soft"})
                    break
        assert reply == {"status": "Accepted"}
