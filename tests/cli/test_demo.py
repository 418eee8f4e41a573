"""`csms demo`: this CSMS on SQLite with a shipped scenario in virtual time, reconciled."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from csms.cli import main
from csms.storage.sqlite import SqliteStore


def test_demo_runs_a_scenario_and_reconciles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "demo.db"
    argv = ["demo", "--chargers", "12", "--duration", "12h", "--database", str(database), "--json"]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["reconciliation"]["exact"] is True
    assert summary["sessions"] == summary["reconciliation"]["simulated_sessions"] > 0
    # The ledger file is there to inspect, and holds exactly the demo's sessions.
    store = SqliteStore(str(database))
    try:
        assert len(store.list_sessions(limit=10_000)) == summary["sessions"]
    finally:
        store.close()
    # A second run starts afresh rather than piling onto the first.
    with pytest.raises(SystemExit):
        main(argv)
    again = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["sessions"] == summary["sessions"]


def test_demo_refuses_a_bad_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--scenario", "atlantis"])
    assert exited.value.code == 1
    assert "no shipped scenario" in capsys.readouterr().err
