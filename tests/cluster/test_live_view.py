"""The live view (`/api/live`, and `node` in the station listing): every charger some live
node holds, with that node's name; one process alone (SQLite) lists its own, with no node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import trio
from cluster_harness import WAIT_S, eventually, held_by, operator_key, two_nodes
from support.charger import connect_charger
from support.settings import make_settings

from csms.runtime.server import Csms, run_csms


async def _get(node: Csms, path: str, headers: dict[str, str]) -> Any:
    async with httpx.AsyncClient(headers=headers, timeout=WAIT_S) as client:
        response = await client.get(f"http://127.0.0.1:{node.http_port}{path}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_every_node_lists_the_chargers_of_every_live_node(tmp_path: Path) -> None:
    async with (
        two_nodes(tmp_path) as (a, b),
        connect_charger(a.ocpp_port, "CP-A") as on_a,
        connect_charger(b.ocpp_port, "CP-B", subprotocols=["ocpp2.0.1"]) as on_b,
    ):
        await on_a.boot()
        boot = {"reason": "PowerUp", "chargingStation": {"model": "T1", "vendorName": "V"}}
        assert (await on_b.call("BootNotification", boot))[0] == 3
        await eventually(lambda: held_by(a, "CP-A"))
        await eventually(lambda: held_by(b, "CP-B"))
        assert a.cluster is not None and b.cluster is not None
        headers = operator_key(a.settings.database_url)

        for asker in (a, b):
            live = await _get(asker, "/api/live", headers)
            assert [(c["station_id"], c["ocpp_version"], c["node"], c["local"]) for c in live] == [
                ("CP-A", "ocpp1.6", a.cluster.name, asker is a),
                ("CP-B", "ocpp2.0.1", b.cluster.name, asker is b),
            ]
            assert all(c["since"] is not None for c in live)
            stations = {s["id"]: s for s in await _get(asker, "/api/stations", headers)}
            assert stations["CP-A"]["node"] == a.cluster.name
            assert stations["CP-B"]["node"] == b.cluster.name


async def test_a_node_left_the_cluster_takes_its_chargers_out_of_the_view(
    tmp_path: Path,
) -> None:
    async with two_nodes(tmp_path) as (a, b):
        headers = operator_key(a.settings.database_url)
        async with connect_charger(b.ocpp_port, "CP-B") as charger:
            await charger.boot()
            await eventually(lambda: held_by(b, "CP-B"))
            assert [c["station_id"] for c in await _get(a, "/api/live", headers)] == ["CP-B"]

        async def gone() -> bool:
            return bool(await _get(a, "/api/live", headers) == [])

        await eventually(gone)


async def test_one_process_alone_lists_its_own_chargers_without_a_node(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with trio.open_nursery() as nursery:
        csms: Csms = await nursery.start(run_csms, settings)
        headers = operator_key(settings.database_url)
        async with connect_charger(csms.ocpp_port, "CP-1") as charger:
            await charger.boot()
            assert await _get(csms, "/api/live", headers) == [
                {
                    "station_id": "CP-1",
                    "ocpp_version": "ocpp1.6",
                    "node": None,
                    "local": True,
                    "since": None,
                }
            ]
            (station,) = await _get(csms, "/api/stations", headers)
            assert (station["online"], station["node"]) == (True, None)
        nursery.cancel_scope.cancel()
