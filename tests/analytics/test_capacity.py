"""Reading a capacity run's CSV and fitting latency against chargers."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.analytics import AnalyticsError, latency_fit, read_capacity

CSV = """profile,chargers,type,name,requests,failures,msgs_per_s,p50_ms,p90_ms,p99_ms,max_ms
realistic,100,OCPP1.6,Heartbeat,10,0,1.0,2.0,3.0,4.0,5.0
realistic,100,,Aggregated,100,0,10.0,3.0,8.0,12.0,20.0
realistic,200,,Aggregated,200,0,20.0,5.0,12.0,22.0,30.0
realistic,400,,Aggregated,400,0,40.0,9.0,20.0,42.0,50.0
stress,10,,Aggregated,5000,0,500.0,2.0,4.0,8.0,9.0
"""


def test_latency_is_fitted_against_chargers(tmp_path: Path) -> None:
    (tmp_path / "capacity.csv").write_text(CSV)
    frame = read_capacity(tmp_path)
    fit = latency_fit(frame)
    assert fit.points == 3
    assert fit.slope_ms_per_charger == pytest.approx(0.1)
    assert fit.intercept_ms == pytest.approx(2.0)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.chargers_at(100.0) == pytest.approx(980.0)
    assert fit.predict([1000]).tolist() == pytest.approx([102.0])
    p50 = latency_fit(frame, metric="p50_ms")
    assert p50.slope_ms_per_charger == pytest.approx(0.02)


def test_too_few_steps_or_a_wrong_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "capacity.csv").write_text(CSV)
    with pytest.raises(AnalyticsError, match="two"):
        latency_fit(read_capacity(tmp_path), profile="stress")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(AnalyticsError, match="not a capacity CSV"):
        read_capacity(tmp_path / "other.csv")
