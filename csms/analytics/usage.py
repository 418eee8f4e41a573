"""How the network is used: occupancy and energy per station and hour, load curves, and
energy and revenue by day, week or month.

- Occupancy: a connector is occupied from a session's start to its end (for a session without
  an end, to its last meter reading); a station-hour's occupancy is its occupied
  connector-seconds over 3,600 x its connectors.
- Energy per hour and load curves: each meter interval's energy is shared among the buckets it
  spans in proportion to time (the energy flowed when it flowed).
- Trends (`energy_by_period`, `revenue_by_period`) count each session in the period, in the
  local time zone `tz`, in which it started; revenue is the CDRs' total cost, summed exactly in
  the currency's minor unit.

Buckets are aligned to UTC (whole hours, quarter hours); bounds are rounded out to them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from csms.analytics.intervals import meter_intervals, split_into_buckets
from csms.analytics.ledger import (
    AnalyticsError,
    Ledger,
    Moment,
    bounds,
    parse_times,
    site_of,
    using,
    utc,
)
from csms.analytics.sessions import session_readings, sessions
from csms.analytics.tables import first_seen
from csms.domain.money import minor_unit

PERIODS = {"day": "D", "week": "W", "month": "M"}

_OCCUPIED_UNTIL = "COALESCE(t.ended_at, t.last_meter_at, t.started_at)"
_OVERLAPPING = f"""
    SELECT t.id AS session_id, t.station_id, t.connector_id, t.started_at, t.ended_at,
        {_OCCUPIED_UNTIL} AS occupied_until, t.meter_start_wh, t.meter_stop_wh
    FROM transactions t
    WHERE t.started_at IS NOT NULL
        AND (:until IS NULL OR t.started_at < :until)
        AND (:since IS NULL OR {_OCCUPIED_UNTIL} >= :since)
    ORDER BY t.id
"""
_READINGS = f"""
    SELECT IFNULL(m.transaction_id, 0) AS session_id, m.timestamp AS at, m.wh
    FROM meter_samples m
    WHERE m.measurand = 'Energy.Active.Import.Register' AND m.phase IS NULL
        AND m.wh IS NOT NULL
        AND IFNULL(m.transaction_id, 0) IN (SELECT session_id FROM ({_OVERLAPPING}) o)
"""
_STATIONS = """
    SELECT s.id AS station_id, COALESCE(p.ports, 1) AS connectors
    FROM stations s LEFT JOIN (
        SELECT station_id, COUNT(*) AS ports FROM (
            SELECT station_id, connector_id FROM connectors WHERE connector_id > 0
            UNION SELECT station_id, connector_id FROM transactions WHERE connector_id > 0
        ) c GROUP BY station_id
    ) p ON p.station_id = s.id
    WHERE s.registered = 1 OR s.id IN (SELECT station_id FROM transactions)
    ORDER BY s.id
"""


def stations(source: Ledger | str) -> pd.DataFrame:
    """The network's stations (registered, or with sessions): station_id, site, connectors
    (connector ids above 0 seen in the ledger; at least 1)."""
    with using(source) as ledger:
        frame = ledger.frame(_STATIONS)
    frame["site"] = site_of(frame["station_id"])
    return frame.astype({"station_id": "string", "connectors": "int64"})


def session_activity(
    ledger: Ledger, since: Moment, until: Moment
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sessions overlapping [since, until) and their meter intervals (with station_id)."""
    params = bounds(since, until)
    rows = parse_times(
        ledger.frame(_OVERLAPPING, params), "started_at", "ended_at", "occupied_until"
    )
    samples = parse_times(ledger.frame(_READINGS, params), "at")
    intervals = meter_intervals(session_readings(rows, samples))
    intervals = intervals.merge(rows[["session_id", "station_id"]], on="session_id")
    return rows, intervals


def _span(rows: pd.DataFrame, since: Moment, until: Moment, step: pd.Timedelta) -> pd.DatetimeIndex:
    start, end = utc(since), utc(until)
    if start is None:
        start = rows["started_at"].min() if len(rows) else None
    if end is None:
        end = rows["occupied_until"].max() if len(rows) else None
    if start is None or end is None or pd.isna(start) or pd.isna(end):
        return pd.DatetimeIndex([], tz="UTC")
    return pd.date_range(start.floor(step), end, freq=step, inclusive="left", tz="UTC")


def utilization(
    source: Ledger | str, since: Moment = None, until: Moment = None, *, freq: str = "1h"
) -> pd.DataFrame:
    """One row per station and hour (bucket) of [since, until): station_id, site, hour,
    connectors, occupied_s, occupancy (0-1), energy_wh. Without bounds: the data's span; never
    before the station's first event nor beyond the ledger's horizon (`Ledger.horizon`)."""
    step = pd.Timedelta(freq)
    with using(source) as ledger:
        rows, intervals = session_activity(ledger, since, until)
        network = stations(ledger)
        first = first_seen(ledger)
        horizon = ledger.horizon()
    hours = _span(rows, since, until, step)
    hours = hours[hours < horizon] if horizon is not None else hours[:0]
    occupied = split_into_buckets(rows, step, begin="started_at", end="occupied_until")
    energy = split_into_buckets(intervals, step, shared=["wh"])
    grid = pd.MultiIndex.from_product(
        [network["station_id"], hours], names=["station_id", "hour"]
    ).to_frame(index=False)
    per_hour = grid.merge(
        occupied.groupby(["station_id", "bucket"])["seconds"].sum().rename("occupied_s"),
        left_on=["station_id", "hour"],
        right_index=True,
        how="left",
    ).merge(
        energy.groupby(["station_id", "bucket"])["wh"].sum().rename("energy_wh"),
        left_on=["station_id", "hour"],
        right_index=True,
        how="left",
    )
    per_hour = per_hour.merge(network, on="station_id")
    # A station is part of the network from the hour of its first event on.
    per_hour = per_hour.merge(first, on="station_id")
    per_hour = per_hour[per_hour["hour"] >= per_hour["first_seen"].dt.floor(step)]
    per_hour[["occupied_s", "energy_wh"]] = per_hour[["occupied_s", "energy_wh"]].fillna(0.0)
    per_hour["occupancy"] = per_hour["occupied_s"] / (step.total_seconds() * per_hour["connectors"])
    columns = ["station_id", "site", "hour", "connectors", "occupied_s", "occupancy", "energy_wh"]
    return per_hour[columns].reset_index(drop=True)


def hourly_heatmap(frame: pd.DataFrame, value: str, tz: str = "UTC") -> pd.DataFrame:
    """The mean of `value` by local weekday (rows, Monday first) and hour of day (columns)
    over the rows of `utilization` (or any frame with an `hour` column)."""
    local = frame["hour"].dt.tz_convert(tz)
    table = frame.groupby(
        [local.dt.day_of_week.rename("weekday"), local.dt.hour.rename("hour_of_day")]
    )[value].mean()
    heat = table.unstack("hour_of_day").reindex(index=range(7), columns=range(24))
    heat.index = pd.Index(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], name="weekday")
    return heat


def power_profile(
    source: Ledger | str,
    since: Moment = None,
    until: Moment = None,
    *,
    freq: str = "15min",
    by: str | None = "site",
) -> pd.DataFrame:
    """Average power (kW) per bucket of [since, until) (rows, UTC) per site, station
    (`by="station_id"`) or for the whole network (`by=None`: one column `total`)."""
    if by not in ("site", "station_id", None):
        raise AnalyticsError("by must be 'site', 'station_id' or None")
    step = pd.Timedelta(freq)
    with using(source) as ledger:
        rows, intervals = session_activity(ledger, since, until)
        groups = stations(ledger)
    buckets = _span(rows, since, until, step)
    energy = split_into_buckets(intervals, step, shared=["wh"])
    energy["site"] = site_of(energy["station_id"])
    energy["total"] = "total"
    key = by or "total"
    names = sorted(groups[by].unique()) if by else ["total"]
    table = energy.pivot_table(index="bucket", columns=key, values="wh", aggfunc="sum")
    hours = step.total_seconds() / 3600
    kw = table.reindex(index=buckets, columns=names).fillna(0.0) / 1000 / hours
    kw.index.name = "bucket"
    kw.columns.name = key
    return kw


def _local_period(moments: pd.Series, freq: str, tz: str) -> pd.Series:
    if freq not in PERIODS:
        raise AnalyticsError(f"period must be one of {', '.join(PERIODS)}")
    local = moments.dt.tz_convert(tz).dt.tz_localize(None)
    return local.dt.to_period(PERIODS[freq]).dt.start_time


def energy_by_period(
    source: Ledger | str | pd.DataFrame,
    freq: str = "day",
    since: Moment = None,
    until: Moment = None,
    *,
    tz: str = "UTC",
) -> pd.DataFrame:
    """Per local day, week (from Monday) or month of the session's start: sessions,
    energy_kwh, tokens and stations seen. `source` may be a `sessions` frame."""
    frame = source if isinstance(source, pd.DataFrame) else sessions(source, since, until)
    frame = frame[frame["started_at"].notna()]
    period = _local_period(frame["started_at"], freq, tz).rename("period")
    out = frame.groupby(period).agg(
        sessions=("session_id", "count"),
        energy_kwh=("energy_wh", "sum"),
        tokens=("id_tag", "nunique"),
        stations=("station_id", "nunique"),
    )
    out["energy_kwh"] = out["energy_kwh"] / 1000
    return out


def revenue_by_period(
    source: Ledger | str | pd.DataFrame,
    freq: str = "day",
    since: Moment = None,
    until: Moment = None,
    *,
    tz: str = "UTC",
) -> pd.DataFrame:
    """Per local period of the session's start and currency: priced sessions,
    revenue_excl_vat and revenue_incl_vat (the CDRs' totals)."""
    frame = source if isinstance(source, pd.DataFrame) else sessions(source, since, until)
    priced = frame[frame["currency"].notna() & frame["started_at"].notna()].copy()
    scale = priced["currency"].map(lambda code: 10 ** minor_unit(code)).astype("int64")
    for column in ("cost_excl_vat", "cost_incl_vat"):
        priced[column] = np.rint(priced[column] * scale).astype("int64")
    priced["scale"] = scale
    priced["period"] = _local_period(priced["started_at"], freq, tz)
    out = priced.groupby(["period", "currency"]).agg(
        sessions=("session_id", "count"),
        revenue_excl_vat=("cost_excl_vat", "sum"),
        revenue_incl_vat=("cost_incl_vat", "sum"),
        scale=("scale", "first"),
    )
    for column in ("revenue_excl_vat", "revenue_incl_vat"):
        out[column] = out[column] / out["scale"]
    return out.drop(columns="scale")
