"""`csms demo` end to end in-process: scripted chargers, real sockets, the real ledger."""

from __future__ import annotations

from pathlib import Path

from conftest import make_settings

from csms.demo import DemoPlan, run_demo
from csms.domain.ledger import UnknownStationPolicy


async def test_demo_records_every_session(tmp_path: Path) -> None:
    # The default policy rejects unknown stations: the demo must register its own.
    settings = make_settings(tmp_path, unknown_stations=UnknownStationPolicy.REJECT)
    plan = DemoPlan(chargers=3, sessions_per_charger=2, meter_samples=4)
    sessions = await run_demo(settings, plan, None)
    assert len(sessions) == 6
    assert {s["status"] for s in sessions} == {"Completed"}
    # Charger i draws 7 + (i % 5) kW for four quarter hours: (7 + i) kWh per session.
    by_station: dict[str, set[int]] = {}
    for s in sessions:
        by_station.setdefault(s["station_id"], set()).add(s["energy_wh"])
    assert by_station == {"DEMO-000": {7000}, "DEMO-001": {8000}, "DEMO-002": {9000}}
