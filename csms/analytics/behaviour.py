"""Driver behaviour from a `sessions` frame: when drivers arrive, how long they stay, and what
each driver (or token, for tokens of no driver) does over the period.

Arrival is a session's start, dwell its duration (plug-in to plug-out), both in the local time
zone `tz`; sessions without a start or an end are left out of what needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import pandas as pd

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
#: Dwell bins in hours: the last is open-ended.
DWELL_EDGES_H = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0)


def arrivals(sessions: pd.DataFrame, tz: str = "UTC") -> pd.DataFrame:
    """Sessions started per local weekday (rows, Monday first) and hour of day (columns)."""
    started = sessions["started_at"].dropna().dt.tz_convert(tz)
    counts = pd.crosstab(started.dt.day_of_week, started.dt.hour)
    table = counts.reindex(index=range(7), columns=range(24), fill_value=0)
    table.index = pd.Index(WEEKDAYS, name="weekday")
    table.columns.name = "hour_of_day"
    return table


def dwell_distribution(
    sessions: pd.DataFrame, edges_h: Sequence[float] = DWELL_EDGES_H
) -> pd.DataFrame:
    """Finished sessions per dwell bin: sessions, share, mean energy_kwh and idle_share (the
    mean share of the dwell the car was plugged in without charging)."""
    done = sessions[sessions["duration_s"].notna()]
    hours = done["duration_s"] / 3600
    bins = [*edges_h, np.inf]
    labels = [f"{low:g}-{high:g} h" for low, high in pairwise(edges_h)]
    labels.append(f">= {edges_h[-1]:g} h")
    dwell = pd.cut(hours, bins=bins, labels=labels, right=False).rename("dwell")
    idle_share = (done["idle_s"] / done["duration_s"]).where(done["duration_s"] > 0)
    out = (
        done.assign(energy_kwh=done["energy_wh"] / 1000, idle_share=idle_share)
        .groupby(dwell, observed=False)
        .agg(
            sessions=("session_id", "count"),
            energy_kwh=("energy_kwh", "mean"),
            idle_share=("idle_share", "mean"),
        )
    )
    out.insert(1, "share", out["sessions"] / max(len(done), 1))
    return out


def driver_summary(sessions: pd.DataFrame, tz: str = "UTC") -> pd.DataFrame:
    """Per driver (`driver_id`, else the token: `driver` column): sessions, energy_kwh,
    mean_dwell_h, mean_idle_h, cost_incl_vat, stations used and the median local arrival
    hour; most sessions first."""
    local = sessions["started_at"].dt.tz_convert(tz)
    frame = sessions.assign(
        driver=sessions["driver_id"].fillna(sessions["id_tag"]),
        arrival_h=local.dt.hour + local.dt.minute / 60,
        energy_kwh=sessions["energy_wh"] / 1000,
        dwell_h=sessions["duration_s"] / 3600,
        idle_h=sessions["idle_s"] / 3600,
    )
    out = frame.groupby("driver").agg(
        sessions=("session_id", "count"),
        energy_kwh=("energy_kwh", "sum"),
        mean_dwell_h=("dwell_h", "mean"),
        mean_idle_h=("idle_h", "mean"),
        cost_incl_vat=("cost_incl_vat", "sum"),
        stations=("station_id", "nunique"),
        median_arrival_h=("arrival_h", "median"),
    )
    return out.sort_values(["sessions", "energy_kwh"], ascending=False)
