"""Charging sessions as a DataFrame: one row per transaction of the ledger, with what it
delivered, how long it took, how much of that the car sat idle, what it cost and whose it was.

Definitions (the exact rater's, `csms.domain.rating`, so that they agree with the CDRs):

- readings: the meter start at the start, the session's energy-register samples in between,
  the meter stop at the end; `charging_s` is the time of meter intervals whose average power
  is at least `idle_power_w`, `idle_s` the rest of the session (OCPI's parking time before any
  grace period; for a session without an end, up to its last reading).
- `max_power_kw`: the highest average power over one meter interval.
- `site`: the station id up to its last '-' (`ledger.site_of`).
- `driver_id`: the driver owning the token (NULL for tokens of no driver); costs come from the
  session's CDR (NULL when no tariff applied).

`rating_inputs` gives the same readings in the column contract of the bulk rater
(`csms.domain.rerating.rerate_samples`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from csms.analytics.intervals import meter_intervals
from csms.analytics.ledger import Ledger, Moment, bounds, parse_times, site_of, using
from csms.domain.rating import DEFAULT_IDLE_POWER_W

SESSION_COLUMNS = {
    "session_id": "int64",
    "station_id": "string",
    "site": "string",
    "connector_id": "int64",
    "id_tag": "string",
    "driver_id": "string",
    "auth_status": "string",
    "status": "string",
    "started_at": "datetime64[us, UTC]",
    "ended_at": "datetime64[us, UTC]",
    "duration_s": "float64",
    "energy_wh": "float64",
    "charging_s": "float64",
    "idle_s": "float64",
    "max_power_kw": "float64",
    "stop_reason": "string",
    "tariff_id": "string",
    "currency": "string",
    "cost_excl_vat": "float64",
    "cost_incl_vat": "float64",
    "needs_reconciliation": "bool",
    "anomalies": "string",
}

_SELECT = """
    SELECT t.id AS session_id, t.station_id, t.connector_id, t.id_tag, k.driver_id,
        t.auth_status, t.status, t.started_at, t.ended_at, t.meter_start_wh, t.meter_stop_wh,
        COALESCE(t.energy_wh, t.last_meter_wh - t.meter_start_wh) AS energy_wh,
        t.stop_reason, c.tariff_id, c.currency, c.cost_excl_vat, c.cost_incl_vat,
        t.needs_reconciliation, t.anomalies
    FROM transactions t
    LEFT JOIN id_tokens k ON k.id_tag = t.id_tag
    LEFT JOIN cdrs c ON c.transaction_id = t.id
"""
_STARTED_WITHIN = """
    (:since IS NULL OR t.started_at >= :since) AND (:until IS NULL OR t.started_at < :until)
"""
_PAGE = f"{_STARTED_WITHIN} AND t.id > :after ORDER BY t.id LIMIT :rows"
# IFNULL, as in the ledger's unique index on meter_samples, so SQLite reads through the index.
_READINGS = """
    SELECT IFNULL(m.transaction_id, 0) AS session_id, m.timestamp AS at, m.wh
    FROM meter_samples m
    WHERE m.measurand = 'Energy.Active.Import.Register' AND m.phase IS NULL
        AND m.wh IS NOT NULL AND IFNULL(m.transaction_id, 0) IN ({ids})
"""


def sessions(
    source: Ledger | str,
    since: Moment = None,
    until: Moment = None,
    *,
    idle_power_w: int = DEFAULT_IDLE_POWER_W,
) -> pd.DataFrame:
    """Sessions that started in [since, until), in id order (columns: `SESSION_COLUMNS`)."""
    with using(source) as ledger:
        where = f"{_STARTED_WITHIN} ORDER BY t.id"
        params = bounds(since, until)
        rows = ledger.frame(f"{_SELECT} WHERE {where}", params)
        ids = f"SELECT t.id FROM transactions t WHERE {_STARTED_WITHIN}"
        readings = ledger.frame(_READINGS.format(ids=ids), params)
    return _sessions_frame(rows, readings, idle_power_w)


def session_pages(
    source: Ledger,
    since: Moment = None,
    until: Moment = None,
    *,
    rows: int = 20_000,
    idle_power_w: int = DEFAULT_IDLE_POWER_W,
) -> Iterator[pd.DataFrame]:
    """`sessions` a page of `rows` sessions at a time (for exports of large ledgers)."""
    params: dict[str, object] = {**bounds(since, until), "rows": rows, "after": -1}
    while True:
        page = source.frame(f"{_SELECT} WHERE {_PAGE}", params)
        if page.empty:
            return
        ids = f"SELECT t.id FROM transactions t WHERE {_PAGE}"
        readings = source.frame(_READINGS.format(ids=ids), params)
        yield _sessions_frame(page, readings, idle_power_w)
        params["after"] = int(page["session_id"].iloc[-1])


def count_sessions(source: Ledger, since: Moment = None, until: Moment = None) -> int:
    sql = f"SELECT COUNT(*) FROM transactions t WHERE {_STARTED_WITHIN}"
    return int(source.scalar(sql, bounds(since, until)))


def _sessions_frame(rows: pd.DataFrame, samples: pd.DataFrame, idle_power_w: int) -> pd.DataFrame:
    frame = parse_times(rows, "started_at", "ended_at")
    readings = session_readings(frame, parse_times(samples, "at"))
    intervals = meter_intervals(readings)
    charging = intervals["wh"] * 3600 >= idle_power_w * intervals["seconds"]
    intervals["charging_s"] = intervals["seconds"].where(charging & (intervals["seconds"] > 0), 0.0)
    intervals["kw"] = (intervals["wh"] * 3.6 / intervals["seconds"]).where(intervals["seconds"] > 0)
    per_session = intervals.groupby("session_id").agg(
        covered_s=("seconds", "sum"), charging_s=("charging_s", "sum"), max_power_kw=("kw", "max")
    )
    frame = frame.join(per_session, on="session_id")
    frame["duration_s"] = (frame["ended_at"] - frame["started_at"]).dt.total_seconds()
    has_start = frame["started_at"].notna()
    frame["charging_s"] = frame["charging_s"].fillna(0.0).where(has_start)
    # Timestamps have microseconds: round away the float sums' noise below that.
    frame["charging_s"] = frame["charging_s"].round(6)
    frame["idle_s"] = (frame["duration_s"].fillna(frame["covered_s"]) - frame["charging_s"]).round(
        6
    )
    frame["site"] = site_of(frame["station_id"])
    for column in ("cost_excl_vat", "cost_incl_vat", "energy_wh"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    # An active session's energy is its last reading's, toward zero as the store gives it
    # (in pandas: SQL's CAST to an integer truncates on SQLite but rounds on PostgreSQL).
    frame["energy_wh"] = np.trunc(frame["energy_wh"])
    frame["needs_reconciliation"] = frame["needs_reconciliation"].fillna(0).astype(bool)
    return frame[list(SESSION_COLUMNS)].astype(SESSION_COLUMNS)


def session_readings(sessions: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """The register readings the rater uses per session: session_id, at, wh.

    `sessions`: session_id, started_at, ended_at, meter_start_wh, meter_stop_wh; `samples`:
    session_id, at, wh. Samples outside a session's start and end are left out.
    """
    started = sessions[sessions["started_at"].notna()]
    window = samples.merge(started[["session_id", "started_at", "ended_at"]], on="session_id")
    inside = (window["at"] >= window["started_at"]) & ~(window["at"] > window["ended_at"])
    start = pd.DataFrame(
        {
            "session_id": started["session_id"],
            "at": started["started_at"],
            "wh": started["meter_start_wh"].fillna(0).astype("float64"),
        }
    )
    stopped = started[started["ended_at"].notna() & started["meter_stop_wh"].notna()]
    stop = pd.DataFrame(
        {
            "session_id": stopped["session_id"],
            "at": stopped["ended_at"],
            "wh": stopped["meter_stop_wh"].astype("float64"),
        }
    )
    middle = window.loc[inside, ["session_id", "at", "wh"]]
    parts = [part for part in (start, middle, stop) if not part.empty]
    if not parts:
        return pd.DataFrame(
            {
                "session_id": np.array([], dtype=np.int64),
                "at": pd.Series([], dtype="datetime64[us, UTC]"),
                "wh": np.array([], dtype=np.float64),
            }
        )
    return pd.concat(parts, ignore_index=True)


def rating_inputs(
    source: Ledger | str, since: Moment = None, until: Moment = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The finished sessions that started in [since, until) and their register readings, as
    `rerate_samples(samples, sessions, tariff)` takes them: the same readings the ledger rated
    each session's CDR from (session_id, timestamp, register_wh; session_id, started_at,
    ended_at)."""
    with using(source) as ledger:
        params = bounds(since, until)
        rows = ledger.frame(
            "SELECT t.id AS session_id, t.started_at, t.ended_at, t.meter_start_wh,"
            f" t.meter_stop_wh FROM transactions t WHERE {_STARTED_WITHIN}"
            " AND t.ended_at IS NOT NULL ORDER BY t.id",
            params,
        )
        ids = f"SELECT t.id FROM transactions t WHERE {_STARTED_WITHIN} AND t.ended_at IS NOT NULL"
        samples = ledger.frame(_READINGS.format(ids=ids), params)
    rows = parse_times(rows, "started_at", "ended_at")
    readings = session_readings(rows, parse_times(samples, "at"))
    readings = readings.rename(columns={"at": "timestamp", "wh": "register_wh"})
    return readings, rows[["session_id", "started_at", "ended_at"]]
