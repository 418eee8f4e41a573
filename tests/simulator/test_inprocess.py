"""In-process mode: the real CSMS on virtual time, reached over in-memory streams."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import trio
from support.charger import TestCharger
from support.settings import make_settings

from csms.protocol import v16
from csms.storage.sqlite import SqliteStore, sqlite_path
from simulator.inprocess import hosted_csms

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


async def test_a_day_passes_in_virtual_time(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    settings = make_settings(tmp_path, heartbeat_interval=300)
    wall_started = trio.current_time()
    async with hosted_csms(settings, START) as host:
        ws = await host.connect("VT-1", ["ocpp1.6"])
        charger = TestCharger(ws, {})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(charger._pump)
            boot = await charger.boot()
            assert boot[2]["status"] == "Accepted"
            # The CSMS's clock is the virtual one: its currentTime is the scenario's start.
            assert boot[2]["currentTime"].startswith("2026-03-02T08:00")
            start = await charger.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": v16.iso(START)},
            )
            for _ in range(24):  # 96 min of 4-minute heartbeats: never taken as offline
                await trio.sleep(240)
                assert (await charger.call("Heartbeat", {}))[0] == 3
            reply = await charger.call("Heartbeat", {})
            assert reply[2]["currentTime"].startswith("2026-03-02T09:36")
            await charger.call(
                "StopTransaction",
                {
                    "transactionId": start[2]["transactionId"],
                    "meterStop": 9000,
                    "timestamp": reply[2]["currentTime"],
                },
            )
            nursery.cancel_scope.cancel()
    assert trio.current_time() - wall_started >= 24 * 240
    store = SqliteStore(sqlite_path(settings.database_url))
    (session,) = store.list_sessions()
    assert (session["energy_wh"], session["status"]) == (9000, "Completed")
