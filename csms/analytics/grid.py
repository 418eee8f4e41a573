"""Grid impact of a site: its sessions' load per time bucket, its peak against a transformer
limit, and what a site-wide smart-charging limit would change.

The limit model (`limit_site_power`) replays the measured sessions: in each bucket every
plugged-in car asks for the energy it drew in that bucket plus what it is still owed, up to
the most it ever drew in one bucket; when the site's total ask exceeds the limit every car gets
the same share of its ask (proportional allocation, as a site load manager does). What a car is
still owed when it leaves is unserved energy. Cars do not charge faster than they were seen to,
and arrivals and departures do not move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from csms.analytics.intervals import split_into_buckets
from csms.analytics.ledger import AnalyticsError, Ledger, Moment, site_of, using, utc
from csms.analytics.usage import session_activity


@dataclass(frozen=True)
class SiteLoads:
    """Per session (rows) and bucket (columns, UTC starts): energy drawn and plugged-in."""

    energy_wh: pd.DataFrame
    plugged: pd.DataFrame
    step: pd.Timedelta

    def power_kw(self, energy_wh: pd.DataFrame | None = None) -> pd.Series:
        """The site's average power per bucket (kW), of `energy_wh` or the measured load."""
        frame = self.energy_wh if energy_wh is None else energy_wh
        hours = self.step.total_seconds() / 3600
        return (frame.sum(axis=0) / 1000 / hours).rename("site power")


def site_loads(
    source: Ledger | str, site: str, since: Moment, until: Moment, *, freq: str = "15min"
) -> SiteLoads:
    """The sessions of one site overlapping [since, until), bucket by bucket."""
    start, end = utc(since), utc(until)
    if start is None or end is None or end <= start:
        raise AnalyticsError("site_loads needs since < until")
    step = pd.Timedelta(freq)
    with using(source) as ledger:
        rows, intervals = session_activity(ledger, start, end)
    rows = rows[site_of(rows["station_id"]) == site]
    intervals = intervals[intervals["session_id"].isin(rows["session_id"])]
    buckets = pd.date_range(start.floor(step), end, freq=step, inclusive="left", tz="UTC")
    energy = split_into_buckets(intervals, step, shared=["wh"]).pivot_table(
        index="session_id", columns="bucket", values="wh", aggfunc="sum"
    )
    plugged = split_into_buckets(rows, step, begin="started_at", end="occupied_until").pivot_table(
        index="session_id", columns="bucket", values="seconds", aggfunc="sum"
    )
    ids = pd.Index(rows["session_id"].unique(), name="session_id")
    energy = energy.reindex(index=ids, columns=buckets).fillna(0.0)
    plugged = plugged.reindex(index=ids, columns=buckets).fillna(0.0) > 0
    return SiteLoads(energy, plugged | (energy > 0), step)


def peak_against(power_kw: pd.Series, limit_kw: float, step: pd.Timedelta) -> dict[str, object]:
    """The peak of a load curve against a limit: peak_kw, peak_at, buckets_over, hours_over
    and energy_over_kwh (the energy drawn above the limit)."""
    hours = step.total_seconds() / 3600
    over = (power_kw - limit_kw).clip(lower=0)
    return {
        "peak_kw": float(power_kw.max()) if len(power_kw) else 0.0,
        "peak_at": power_kw.idxmax() if len(power_kw) else None,
        "buckets_over": int((over > 0).sum()),
        "hours_over": float((over > 0).sum() * hours),
        "energy_over_kwh": float(over.sum() * hours),
    }


def limit_site_power(loads: SiteLoads, limit_kw: float) -> tuple[pd.DataFrame, pd.Series]:
    """The sessions' energy per bucket under a site limit, and each session's unserved Wh."""
    if limit_kw <= 0:
        raise AnalyticsError("the limit must be positive")
    wanted = loads.energy_wh.to_numpy(dtype=np.float64)
    plugged = loads.plugged.to_numpy(dtype=bool)
    sessions, buckets = wanted.shape
    ceiling = wanted.max(axis=1, initial=0.0)
    budget = limit_kw * 1000 * loads.step.total_seconds() / 3600
    leaves = np.where(plugged.any(axis=1), buckets - 1 - np.argmax(plugged[:, ::-1], axis=1), -1)
    owed = np.zeros(sessions)
    unserved = np.zeros(sessions)
    given = np.zeros_like(wanted)
    # Each bucket depends on what the earlier ones left owing: a loop over time, vectors over
    # sessions.
    for t in range(buckets):
        ask = np.where(plugged[:, t], np.minimum(owed + wanted[:, t], ceiling), 0.0)
        total = ask.sum()
        given[:, t] = ask if total <= budget else ask * (budget / total)
        owed += wanted[:, t] - given[:, t]
        gone = leaves == t
        unserved[gone] += owed[gone]
        owed[gone] = 0.0
    unserved += owed
    delivered = pd.DataFrame(given, index=loads.energy_wh.index, columns=loads.energy_wh.columns)
    return delivered, pd.Series(unserved, index=loads.energy_wh.index, name="unserved_wh")
