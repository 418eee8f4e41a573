"""Nodes as real `csms serve` processes: a node killed outright, and `--workers 2`."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg
import trio
from cluster_harness import WAIT_S, api_url, eventually, operator_key, start_node
from support.charger import connect_charger
from support.postgres import fresh_database
from support.server_process import ServerProcess

RESET = {"type": "Soft"}


async def _station(client: httpx.AsyncClient, node: ServerProcess, station_id: str) -> Any:
    response = await client.get(f"{api_url(node)}/api/stations/{station_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def _reset(client: httpx.AsyncClient, node: ServerProcess, station_id: str) -> httpx.Response:
    return await client.post(
        f"{api_url(node)}/api/stations/{station_id}/commands/Reset", json=RESET
    )


async def test_a_killed_nodes_stations_expire_and_come_back_on_another(tmp_path: Path) -> None:
    with fresh_database() as url:
        a = start_node(tmp_path, url, "a")
        b = start_node(tmp_path, url, "b")
        try:
            headers = operator_key(url)
            async with httpx.AsyncClient(headers=headers, timeout=WAIT_S) as client:
                async with connect_charger(b.ocpp_port, "CP-1") as charger:
                    await charger.boot()

                    async def online_on_a() -> bool:
                        return bool((await _station(client, a, "CP-1"))["online"])

                    await eventually(online_on_a)
                    assert (await _reset(client, a, "CP-1")).json()["response"] == {
                        "status": "Accepted"
                    }
                    await trio.to_thread.run_sync(b.kill)

                async def offline_on_a() -> bool:
                    return not (await _station(client, a, "CP-1"))["online"]

                # Until the TTL passes, the dead node's entry still counts; then it expires.
                await eventually(offline_on_a)
                assert (await _reset(client, a, "CP-1")).status_code == 409
                await eventually(lambda: _no_node_named(url, "b"))

                async with connect_charger(a.ocpp_port, "CP-1") as charger:
                    await charger.boot()
                    await eventually(online_on_a)
                    reply = await _reset(client, a, "CP-1")
                    assert reply.status_code == 200, reply.text
                    assert charger.received_calls == [("Reset", RESET)]
        finally:
            a.stop()
            b.stop()


async def test_two_workers_share_the_ports_and_route_commands(tmp_path: Path) -> None:
    stations = [f"CP-{n}" for n in range(12)]
    with fresh_database() as url:
        node = start_node(tmp_path, url, "w", ("--workers", "2"))
        try:
            headers = operator_key(url)
            async with AsyncExitStack() as stack:
                chargers = {}
                for station_id in stations:
                    charger = await stack.enter_async_context(
                        connect_charger(node.ocpp_port, station_id)
                    )
                    await charger.boot()
                    chargers[station_id] = charger

                async def all_held() -> bool:
                    return len(await trio.to_thread.run_sync(_holders, url)) == len(stations)

                await eventually(all_held)
                holders = await trio.to_thread.run_sync(_holders, url)
                # The kernel spreads connections over the workers (all on one: p = 2 ** -11).
                assert len(set(holders.values())) == 2, holders

                for station_id in stations:
                    # A new HTTP connection each time, so requests land on either worker and
                    # about half of them reach a charger the other worker holds.
                    async with httpx.AsyncClient(headers=headers, timeout=WAIT_S) as client:
                        assert (await _station(client, node, station_id))["online"]
                        reply = await _reset(client, node, station_id)
                    assert reply.status_code == 200, reply.text
                    assert reply.json()["response"] == {"status": "Accepted"}
                    assert chargers[station_id].received_calls == [("Reset", RESET)]
        finally:
            assert node.stop() == 0, node.stderr_text()


def _holders(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT s.station_id, n.name FROM cluster_stations s JOIN cluster_nodes n"
            " USING (node_id)"
        ).fetchall()
    return {str(station): str(name) for station, name in rows}


async def _no_node_named(url: str, name: str) -> bool:
    def names() -> list[str]:
        with psycopg.connect(url) as conn:
            return [str(r[0]) for r in conn.execute("SELECT name FROM cluster_nodes")]

    return not any(n.startswith(f"{name}:") for n in await trio.to_thread.run_sync(names))
