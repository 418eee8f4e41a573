"""The wire-mode fleet bench, shrunk: a few chargers against a real `csms serve`, each step in
a process of its own, the table and the JSON written."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from loadtest.bench_fleet import main


@pytest.mark.slow
def test_bench_fleet_runs_a_small_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fleet.json"
    main(["--chargers", "12", "--duration", "14", "--ramp", "6", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "| 12 |" in printed and "most chargers on schedule" in printed
    (step,) = orjson.loads(out.read_bytes())["steps"]
    assert step["chargers"] == 12
    assert step["rss_per_charger_kb"] > 0
    assert 0 <= step["lag_p50_s"] <= step["lag_p99_s"] <= step["lag_max_s"]


def test_bench_fleet_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--chargers", "ten"], ["--chargers", "0"], ["--duration", "30", "--ramp", "60"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert "--chargers takes positive integers" in capsys.readouterr().err
