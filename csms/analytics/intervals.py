"""Time intervals as DataFrames: a session's meter intervals and the sharing of intervals
among fixed time buckets (hours, quarter hours). Pure pandas and numpy, no database.

Meter intervals follow the exact rater's rules (`csms.domain.rating`): of readings at the same
moment the highest register counts, and a register that falls or rises faster than
`MAX_PLAUSIBLE_POWER_W` between two readings delivered no energy in that interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from csms.domain.metering import MAX_PLAUSIBLE_POWER_W

NS_PER_S = 1_000_000_000


def meter_intervals(readings: pd.DataFrame) -> pd.DataFrame:
    """Consecutive register readings of each session as intervals.

    `readings`: session_id, at (UTC timestamps), wh (the energy register). Returns session_id,
    begin, end, seconds and wh (the valid energy of the interval, never negative).
    """
    ordered = (
        readings.sort_values(["session_id", "at", "wh"], kind="stable")
        .drop_duplicates(["session_id", "at"], keep="last")
        .reset_index(drop=True)
    )
    following = ordered.groupby("session_id", sort=False).shift(-1)
    pairs = following["at"].notna()
    begin = ordered.loc[pairs, "at"]
    end = following.loc[pairs, "at"]
    seconds = (end - begin).dt.total_seconds()
    rise = following.loc[pairs, "wh"] - ordered.loc[pairs, "wh"]
    valid = (rise >= 0) & (rise * 3600 <= MAX_PLAUSIBLE_POWER_W * seconds)
    return pd.DataFrame(
        {
            "session_id": ordered.loc[pairs, "session_id"],
            "begin": begin,
            "end": end,
            "seconds": seconds,
            "wh": rise.where(valid, 0.0).astype("float64"),
        }
    ).reset_index(drop=True)


def split_into_buckets(
    intervals: pd.DataFrame,
    freq: str | pd.Timedelta,
    *,
    begin: str = "begin",
    end: str = "end",
    shared: Sequence[str] = (),
) -> pd.DataFrame:
    """Each interval cut at the boundaries of fixed buckets (aligned to the Unix epoch, UTC).

    Returns one row per interval and bucket it overlaps: the interval's other columns, `bucket`
    (the bucket's start), `seconds` (the overlap) and each column in `shared` multiplied by the
    overlap's share of the interval. Intervals of no length are left out.
    """
    step = pd.Timedelta(freq).value
    if step <= 0:
        raise ValueError("the bucket length must be positive")
    starts = intervals[begin].to_numpy(dtype="datetime64[ns]").view(np.int64)
    ends = intervals[end].to_numpy(dtype="datetime64[ns]").view(np.int64)
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    first = starts // step
    count = -(-ends // step) - first
    rows = np.repeat(np.flatnonzero(keep), count)
    bucket = np.repeat(first, count) + (
        np.arange(count.sum()) - np.repeat(count.cumsum() - count, count)
    )
    low = np.maximum(np.repeat(starts, count), bucket * step)
    high = np.minimum(np.repeat(ends, count), (bucket + 1) * step)
    share = (high - low) / np.repeat(ends - starts, count)
    out = intervals.iloc[rows].drop(columns=[begin, end]).reset_index(drop=True)
    out["bucket"] = pd.to_datetime(bucket * step, unit="ns", utc=True)
    out["seconds"] = (high - low) / NS_PER_S
    for column in shared:
        out[column] = out[column].to_numpy(dtype="float64") * share
    return out
