"""Utilization per station and hour, load curves and trends on the hand-built ledger."""

from __future__ import annotations

import pandas as pd

from csms.analytics import (
    energy_by_period,
    hourly_heatmap,
    power_profile,
    revenue_by_period,
    sessions,
    stations,
    utilization,
)

MONDAY = ("2026-03-02", "2026-03-03")


def test_stations_have_their_connectors_and_sites(ledger_url: str) -> None:
    frame = stations(ledger_url)
    assert frame[["station_id", "site", "connectors"]].values.tolist() == [
        ["A-1", "A", 2],
        ["A-2", "A", 1],
        ["B-1", "B", 1],
    ]


def test_utilization_is_occupancy_and_energy_per_station_and_hour(ledger_url: str) -> None:
    frame = utilization(ledger_url, *MONDAY)
    # B-1 is part of the network from its first event, at noon.
    assert len(frame) == 24 + 24 + 12
    busy = frame[frame["occupied_s"] > 0]
    assert [
        (row.station_id, row.hour.hour, row.occupied_s, row.occupancy, row.energy_wh)
        for row in busy.itertuples()
    ] == [
        ("A-1", 8, 3600.0, 0.5, 11000.0),
        ("A-1", 9, 3600.0, 0.5, 0.0),
        ("A-2", 9, 3600.0, 1.0, 3000.0),
        ("A-2", 10, 3600.0, 1.0, 0.0),
        ("A-2", 11, 3600.0, 1.0, 0.0),
        # Session 3 runs to 00:30 Tuesday: half of its hour and half of its energy are Monday's.
        ("B-1", 23, 1800.0, 0.5, 1000.0),
    ]
    assert frame["energy_wh"].sum() == 15000.0


def test_utilization_heatmap_by_local_weekday_and_hour(ledger_url: str) -> None:
    heat = hourly_heatmap(utilization(ledger_url, *MONDAY), "occupancy")
    assert heat.shape == (7, 24)
    assert heat.loc["Mon", 8] == 0.5 / 2
    assert heat.loc["Mon", 9] == 1.5 / 2
    assert heat.loc["Mon", 23] == 0.5 / 3
    assert heat.loc["Tue"].isna().all()
    # In Berlin (UTC+1 in March) 08:00 UTC is 09:00.
    berlin = hourly_heatmap(utilization(ledger_url, *MONDAY), "occupancy", "Europe/Berlin")
    assert berlin.loc["Mon", 9] == 0.5 / 2
    assert berlin.loc["Tue", 0] == 0.5 / 3


def test_utilization_stops_at_the_ledger_horizon(ledger_url: str) -> None:
    frame = utilization(ledger_url, "2026-03-03", "2026-03-10")
    assert frame["hour"].max() == pd.Timestamp("2026-03-03T23:00:00Z")


def test_power_profile_per_site(ledger_url: str) -> None:
    kw = power_profile(ledger_url, *MONDAY, freq="1h")
    assert list(kw.columns) == ["A", "B"]
    assert len(kw) == 24
    active = kw[(kw > 0).any(axis=1)]
    assert active.index.hour.tolist() == [8, 9, 23]
    assert active.values.tolist() == [[11.0, 0.0], [3.0, 0.0], [0.0, 1.0]]
    quarter = power_profile(ledger_url, *MONDAY, freq="15min", by=None)
    assert quarter.loc[pd.Timestamp("2026-03-02T08:15:00Z"), "total"] == 11.0
    assert quarter["total"].sum() * 0.25 == 15.0


def test_energy_by_day_week_and_month(ledger_url: str) -> None:
    days = energy_by_period(ledger_url, "day")
    assert days.index.tolist() == [pd.Timestamp("2026-03-02"), pd.Timestamp("2026-03-03")]
    assert days.values.tolist() == [[3, 16.0, 2, 3], [2, 6.0, 2, 2]]
    # In Berlin session 3 starts at 00:30 on Tuesday.
    berlin = energy_by_period(ledger_url, "day", tz="Europe/Berlin")
    assert berlin["sessions"].tolist() == [2, 3]
    assert berlin["energy_kwh"].tolist() == [14.0, 8.0]
    week = energy_by_period(ledger_url, "week")
    assert week.index.tolist() == [pd.Timestamp("2026-03-02")]
    assert week["energy_kwh"].tolist() == [22.0]
    month = energy_by_period(sessions(ledger_url), "month")
    assert month.index.tolist() == [pd.Timestamp("2026-03-01")]
    assert month["tokens"].tolist() == [3]


def test_revenue_by_period_is_exact_in_cents(ledger_url: str) -> None:
    days = revenue_by_period(ledger_url, "day")
    assert days.index.tolist() == [(pd.Timestamp("2026-03-02"), "EUR")]
    assert days.values.tolist() == [[3, 6.4, 7.62]]
    berlin = revenue_by_period(ledger_url, "day", tz="Europe/Berlin")
    assert berlin["revenue_incl_vat"].tolist() == [6.67, 0.95]
