"""Transaction ids stay unique when several nodes start transactions at once."""

from __future__ import annotations

from pathlib import Path

import trio
from cluster_harness import two_nodes
from support.charger import connect_charger, ts

STARTS_PER_CHARGER = 8


async def test_two_nodes_starting_transactions_at_once_get_distinct_ids(tmp_path: Path) -> None:
    ids: list[int] = []

    async def charge(port: int, station_id: str) -> None:
        async with connect_charger(port, station_id) as charger:
            await charger.boot()
            for n in range(STARTS_PER_CHARGER):
                start = await charger.call(
                    "StartTransaction",
                    {"connectorId": 1, "idTag": f"T{n}", "meterStart": 0, "timestamp": ts(n)},
                )
                ids.append(start[2]["transactionId"])

    async with two_nodes(tmp_path) as (a, b), trio.open_nursery() as nursery:
        for node, prefix in ((a, "A"), (b, "B")):
            for k in range(3):
                nursery.start_soon(charge, node.ocpp_port, f"{prefix}-{k}")

    assert len(ids) == 2 * 3 * STARTS_PER_CHARGER
    assert len(set(ids)) == len(ids)
