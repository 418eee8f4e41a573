"""Which connection of a station wins across nodes: the newest claim in the database's order,
whatever the nodes' wall clocks say; an older claim published late loses and closes itself."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
from cluster_harness import WAIT_S, eventually, held_by, two_nodes
from psycopg_pool import ConnectionPool
from support.charger import TestCharger, connect_charger
from support.postgres import fresh_database

from csms.cluster.nodes import NodeDirectory
from csms.cluster.schema import migrate
from csms.runtime.connection import utc_now

HOUR = 3600.0


class SkewedClock:
    """The wall clock of whichever machine is acting: `offset` seconds off the true time."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._true_time = time.time

    def time(self) -> float:
        return self._true_time() + self.offset

    def now(self) -> datetime:
        return utc_now() + timedelta(seconds=self.offset)


async def _until_closed(charger: TestCharger) -> None:
    with trio.fail_after(WAIT_S):
        while not charger.ws.closed:
            await trio.sleep(0.02)


@pytest.mark.parametrize("first", ["a", "b"])
async def test_the_later_connection_wins_though_its_node_clock_is_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    clock = SkewedClock()
    # Whatever reads the wall clock (the process's or the node's) sees the skew.
    monkeypatch.setattr(time, "time", clock.time)
    async with two_nodes(tmp_path, wall_clocks=(clock.now, clock.now)) as (a, b):
        older_node, newer_node = (a, b) if first == "a" else (b, a)
        clock.offset = HOUR  # the first connection's node is an hour ahead
        async with connect_charger(older_node.ocpp_port, "CP-1") as old:
            await old.boot()
            await eventually(lambda: held_by(older_node, "CP-1"))
            clock.offset = -HOUR  # the second's is an hour behind
            async with connect_charger(newer_node.ocpp_port, "CP-1") as new:
                await new.boot()
                await eventually(lambda: held_by(newer_node, "CP-1"))
                await _until_closed(old)
                assert "CP-1" not in older_node.registry
                assert not new.ws.closed and "CP-1" in newer_node.registry

                reply = await older_node.registry.send_command("CP-1", "Reset", {"type": "Soft"})

                assert reply == {"status": "Accepted"}
                assert new.received_calls == [("Reset", {"type": "Soft"})]


async def test_an_older_claim_published_late_closes_its_own_connection(tmp_path: Path) -> None:
    # Heartbeats that never come in the test: expiry is done by hand, at a chosen moment.
    slow = {"cluster_heartbeat_s": 30.0, "cluster_node_ttl_s": 60.0}
    async with two_nodes(tmp_path, overrides=slow) as (a, b):
        assert a.cluster is not None
        async with connect_charger(a.ocpp_port, "CP-1") as old:
            await old.boot()
            await eventually(lambda: held_by(a, "CP-1"))

            def expire_a() -> None:
                # What another node's heartbeat does to a node silent past the TTL.
                assert a.cluster is not None
                with a.cluster.pool.connection() as conn:
                    conn.execute(
                        "DELETE FROM cluster_nodes WHERE node_id = %s", (a.cluster.node_id,)
                    )

            await trio.to_thread.run_sync(expire_a)
            async with connect_charger(b.ocpp_port, "CP-1") as new:
                await new.boot()
                await eventually(lambda: held_by(b, "CP-1"))
                # Nobody told A: its row was gone when B claimed the station.
                assert not old.ws.closed and "CP-1" in a.registry

                await a.cluster.beat()  # A comes back and publishes its (older) claim again

                await _until_closed(old)
                assert await held_by(b, "CP-1")
                assert not new.ws.closed
                reply = await a.registry.send_command("CP-1", "Reset", {"type": "Hard"})
                assert reply == {"status": "Accepted"}


Pool = ConnectionPool[psycopg.Connection[Any]]


def _directories(url: str) -> tuple[Pool, NodeDirectory, NodeDirectory]:
    pool: Pool = ConnectionPool(url, min_size=1, open=True)
    with pool.connection() as conn:
        migrate(conn)
    a, b = NodeDirectory(pool, "node-a", "a:1", 60.0), NodeDirectory(pool, "node-b", "b:2", 60.0)
    for directory in (a, b):
        assert directory.heartbeat()
    return pool, a, b


def test_claims_are_ordered_by_the_database() -> None:
    with fresh_database() as url:
        pool, a, b = _directories(url)
        with pool:
            first = a.claim("CP-1", "ocpp1.6", None)
            assert first.applied and first.previous_node is None

            second = b.claim("CP-1", "ocpp2.0.1", None)
            assert second.applied and second.previous_node == "node-a"
            assert second.stamp > first.stamp

            # A's connection published again (after a rejoin) keeps its older place: it loses.
            late = a.claim("CP-1", "ocpp1.6", first.stamp)
            assert not late.applied and late.stamp == first.stamp
            a.release("CP-1", first.stamp)  # only A's own claim would go

            (holder,) = a.holders().values()
            assert (holder.node_id, holder.node_name, holder.ocpp_version) == (
                "node-b",
                "b:2",
                "ocpp2.0.1",
            )
            assert holder.claimed_at is not None
            b.release("CP-1", second.stamp)
            assert a.holders() == {}


def test_rows_of_the_wall_clock_schema_give_way_to_any_new_claim() -> None:
    with fresh_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE cluster_nodes (node_id TEXT PRIMARY KEY, name TEXT NOT NULL,"
                " pid INTEGER NOT NULL, started_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
                " heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            conn.execute(
                "CREATE TABLE cluster_stations (station_id TEXT PRIMARY KEY, node_id TEXT NOT NULL"
                " REFERENCES cluster_nodes (node_id) ON DELETE CASCADE,"
                " ocpp_version TEXT NOT NULL, claimed_at DOUBLE PRECISION NOT NULL)"
            )
            conn.execute("INSERT INTO cluster_nodes (node_id, name, pid) VALUES ('old', 'o:1', 1)")
            # Claimed by a clock far in the future: under the old order nothing could beat it.
            conn.execute("INSERT INTO cluster_stations VALUES ('CP-1', 'old', 'ocpp1.6', 1e12)")
        pool, a, _ = _directories(url)
        with pool:
            claim = a.claim("CP-1", "ocpp1.6", None)
            assert claim.applied and claim.previous_node == "old"
            assert a.holders()["CP-1"].node_id == "node-a"
