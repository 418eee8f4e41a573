"""The re-rating benchmark runs end to end on a few sessions and reports both timings."""

from __future__ import annotations

import pytest

from loadtest.bench_rerate import main


def test_bench_rerate_runs_small_and_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sessions", "3000", "--loop-sessions", "300", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    for case in ("totals: re-rating 3,000 sessions", "readings: re-rating 3,000 sessions"):
        assert case in out
    assert out.count("agree to the cent on 300 sessions: yes") == 2
    assert out.count("extrapolated from 300 sessions") == 2
    assert out.count("ratio loop/vectorised:") == 2


def test_bench_rerate_without_extrapolation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sessions", "50", "--loop-sessions", "100"]) == 0
    out = capsys.readouterr().out
    assert "extrapolated" not in out and out.count("agree to the cent on 50 sessions: yes") == 2
    with pytest.raises(SystemExit):
        main(["--sessions", "0"])
