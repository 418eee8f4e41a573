"""Whole runs: virtual time against this CSMS, wire mode against `csms serve`, the CLI."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pandas as pd
import pytest
from support.server_process import run_cli, running_server

from simulator.cli import main
from simulator.fleet import FAULT_KINDS, plan_fleet
from simulator.results import load_results
from simulator.run import run_virtual_sync
from simulator.scenario import Scenario, load_scenario, shipped_scenario


def _faulty(chargers: int = 8) -> Scenario:
    return load_scenario(shipped_scenario("faulty")).with_overrides(chargers=chargers)


def _per_charger(sessions: pd.DataFrame) -> dict[str, list[tuple[object, ...]]]:
    columns = ["connector_id", "started_at", "meter_start_wh", "meter_stop_wh", "energy_wh"]
    return {
        str(station): [tuple(row) for row in group[columns].itertuples(index=False)]
        for station, group in sessions.sort_values(["station_id", "started_at"]).groupby(
            "station_id"
        )
    }


def test_the_same_seed_gives_the_same_run(tmp_path: Path) -> None:
    scenario = load_scenario(shipped_scenario("city")).with_overrides(chargers=6, duration_s=43_200)
    first = run_virtual_sync(scenario, tmp_path / "a.db")
    second = run_virtual_sync(scenario, tmp_path / "b.db")
    assert first.summary["sessions"] > 0
    assert _per_charger(first.frames["sessions"]) == _per_charger(second.frames["sessions"])
    for key in ("sessions", "energy_wh", "arrivals", "plugged", "turned_away", "refusals"):
        assert first.summary[key] == second.summary[key], key
    other = plan_fleet(scenario.with_overrides(seed=scenario.seed + 1))
    assert [s.arrivals for s in other.stations] != [
        s.arrivals for s in plan_fleet(scenario).stations
    ]


def test_the_faulty_fleet_reconciles_exactly(tmp_path: Path) -> None:
    scenario = _faulty()
    outcome = run_virtual_sync(scenario, tmp_path / "ledger.db")
    summary = outcome.summary
    assert set(summary["faults"]) == set(FAULT_KINDS), summary["faults"]  # every kind struck
    assert summary["sessions"] >= 5
    reconciliation = summary["reconciliation"]
    assert reconciliation["lost_sessions"] == 0, outcome.reconciliation.differences  # type: ignore[union-attr]
    assert reconciliation["duplicate_sessions"] == 0
    assert reconciliation["energy_diff_wh"] == 0
    # Priced twice, independently: by the simulator from the readings its chargers sent, by
    # the CSMS from what its ledger stored (through drops, offline queues, retries, resets).
    assert reconciliation["amount_diff"] == "0"
    assert Decimal(summary["revenue"]["EUR"]) > 0
    assert outcome.frames["sessions"]["cost_incl_vat"].notna().sum() == summary["sessions"]
    assert reconciliation["exact"] is True
    # Clock skew is real: the chargers' timestamps are off the CSMS's arrival times.
    assert any(s.clock_skew_s != 0 for s in plan_fleet(scenario).stations)


def test_wire_mode_against_csms_serve(tmp_path: Path) -> None:
    # Two simulated minutes at 10x real time, arrivals scaled up so that sessions happen.
    path = tmp_path / "wire.toml"
    path.write_text(
        "\n".join(
            [
                'name = "wire"',
                "seed = 3",
                "start = 2026-03-02T08:30:00+01:00",  # the morning peak
                'duration = "2m"',
                "[[stations]]",
                'prefix = "WIRE"',
                "count = 6",
                "connectors = 2",
                "max_power_w = 22000",
                "[drivers]",
                'model = "public_ac"',
                "scale = 1000",
                "[charger]",
                "meter_interval_s = 5",
            ]
        )
    )
    assert load_scenario(path).charger_count == 6
    with pytest.raises(SystemExit) as wrote:
        main(["registrations", str(path), "--out", str(tmp_path)])
    assert wrote.value.code == 0
    with running_server(tmp_path, unknown_stations="reject") as server:
        for kind in ("stations", "tokens"):
            done = run_cli([kind, "import", str(tmp_path / f"{kind}.csv")], server.env)
            assert done.returncode == 0, done.stderr
        out = tmp_path / "out"
        with pytest.raises(SystemExit) as exited:
            main(
                [
                    "run",
                    str(path),
                    "--url",
                    f"ws://127.0.0.1:{server.ocpp_port}/ocpp",
                    "--ledger",
                    f"sqlite:///{server.db_path}",
                    "--rate",
                    "10",
                    "--out",
                    str(out),
                    "--json",
                ]
            )
        assert exited.value.code == 0
    frames, summary = load_results(out)
    assert summary["sessions"] > 0
    # Two simulated minutes at ten times real time: about 12 s of wall time.
    assert 12 <= summary["wall_s"] < 60, summary["wall_s"]
    assert summary["simulated_s"] == 120
    assert summary["reconciliation"]["exact"] is True
    assert len(frames["messages"]) == summary["messages"] > 0


def test_cli_json_summary_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "depot", "--chargers", "3", "--duration", "6h", "--json"])
    assert exited.value.code == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    summary = orjson.loads(line)
    assert {"sessions", "energy_wh", "messages", "reconciliation"} <= set(summary)
    assert summary["reconciliation"]["exact"] is True
    for argv, message in [
        (["run", "atlantis"], "no shipped scenario"),
        (["run", "city", "--duration", "soon"], "--duration"),
        (["run", "city", "--chargers", "0"], "--chargers"),
        (["run", "city", "--url", "ws://127.0.0.1:1/ocpp", "--virtual-time"], "exclude"),
        (["run", "city", "--rate", "10"], "--rate applies to wire mode"),
        (["run", "city", "--url", "ws://127.0.0.1:1/ocpp", "--rate", "0"], "--rate"),
        (["report", str(tmp_path)], "not a results directory"),
    ]:
        with pytest.raises(SystemExit) as failed:
            main(argv)
        assert failed.value.code != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def test_chargers_come_up_spread_over_the_connect_spread(tmp_path: Path) -> None:
    base = load_scenario(shipped_scenario("depot")).with_overrides(chargers=6, duration_s=600)
    scenario = base.model_copy(
        update={"charger": base.charger.model_copy(update={"connect_spread_s": 300})}
    )
    messages = run_virtual_sync(scenario, tmp_path / "ledger.db").frames["messages"]
    boots = messages[(messages["action"] == "BootNotification") & (messages["direction"] == "sent")]
    first = boots.groupby("station_id")["at"].min().sort_values()
    offsets = (first - first.iloc[0]).dt.total_seconds().round().tolist()
    assert offsets == [0, 50, 100, 150, 200, 250]  # evenly, in station order
