"""Uptime, availability and fault statistics on the hand-built ledger."""

from __future__ import annotations

import pandas as pd
import pytest

from csms.analytics import AnalyticsError, fault_episodes, fault_stats, uptime

MONDAY = ("2026-03-02", "2026-03-03")
HOUR = 3600.0


def test_uptime_per_station(ledger_url: str) -> None:
    frame = uptime(ledger_url, *MONDAY).set_index("station_id")
    a1 = frame.loc["A-1"]
    assert a1["ports"] == 2
    assert a1["observed_s"] == 24 * HOUR
    assert a1["online_s"] == 23 * HOUR
    assert a1["port_s"] == 48 * HOUR
    # Down: offline 10-11 (2 port-hours), port 1 Faulted 6-8 (2), the station Unavailable
    # 20-22 (4).
    assert a1["faulted_s"] == 2 * HOUR
    assert a1["unavailable_s"] == 4 * HOUR
    assert a1["up_s"] == 40 * HOUR
    assert a1["uptime_pct"] == pytest.approx(100 * 40 / 48)
    assert a1["online_pct"] == pytest.approx(100 * 23 / 24)
    a2 = frame.loc["A-2"]
    assert (a2["uptime_pct"], a2["available_pct"]) == (100.0, 100 * 21 / 24)
    # B-1 is counted from its first event, at noon; Faulted from 18:00.
    b1 = frame.loc["B-1"]
    assert (b1["observed_s"], b1["faulted_s"], b1["uptime_pct"]) == (12 * HOUR, 6 * HOUR, 50.0)


def test_uptime_before_a_station_was_seen_is_not_observed(ledger_url: str) -> None:
    frame = uptime(ledger_url, "2026-03-02T00:00Z", "2026-03-02T06:00Z").set_index("station_id")
    assert frame.loc["B-1", "observed_s"] == 0.0
    assert pd.isna(frame.loc["B-1", "uptime_pct"])
    assert frame.loc["A-1", "uptime_pct"] == 100.0


def test_uptime_needs_a_period(ledger_url: str) -> None:
    with pytest.raises(AnalyticsError):
        uptime(ledger_url, None, "2026-03-03")


def test_fault_episodes_and_their_statistics(ledger_url: str) -> None:
    episodes = fault_episodes(ledger_url, *MONDAY)
    assert episodes[
        ["station_id", "connector_id", "error_code", "duration_s", "ongoing"]
    ].values.tolist() == [
        ["A-1", 1, "GroundFailure", 7200.0, False],
        ["B-1", 1, "OverCurrentFailure", 21600.0, True],
    ]
    assert episodes["ended_at"].iloc[0] == pd.Timestamp("2026-03-02T08:00:00Z")
    by_code = fault_stats(episodes)
    assert by_code.loc["GroundFailure"].tolist() == [1, 1, 2.0, 120.0, 2.0]
    assert by_code.loc["OverCurrentFailure", "down_h"] == 6.0
    assert pd.isna(by_code.loc["OverCurrentFailure", "mttr_min"])
    by_site = fault_stats(episodes, "site")
    assert by_site["faults"].to_dict() == {"A": 1, "B": 1}
    assert fault_episodes(ledger_url, "2026-03-02T07:00Z", "2026-03-03")["station_id"].tolist() == [
        "B-1"
    ]
    # Still open: it lasts to the ledger's horizon (Wednesday 00:00), not to the month's end.
    march = fault_episodes(ledger_url, "2026-03-01", "2026-04-01")
    assert march["duration_s"].tolist() == [7200.0, 30 * 3600.0]
