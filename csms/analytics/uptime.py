"""Uptime, availability and faults per station, as charging networks report them.

Definitions, over a period [since, until), per charging port (connector above 0):

- A station is observed from the later of `since` and its first event in the ledger (it did
  not exist for the CSMS before); a station never seen has no observed time (uptime NaN).
- Online: the station's connection is up, from a `connected` event to the next
  `disconnected` or `offline` event (the events table; the CSMS's clock).
- A port is up while its station is online and neither the port nor connector 0 (the whole
  station) is Faulted or Unavailable; an unknown status counts as up. This is the uptime of
  the US NEVI rule (23 CFR 680.116) without its excluded outages.
- `uptime_pct` = up port-time / observed port-time; `online_pct` the station's connected time;
  `available_pct` the port-time up and in status Available (free for the next driver).

A fault episode begins with a connector status Faulted or an error code other than NoError
and ends at the connector's next status without either; `duration_s` is its time to repair
(to `until` while it is still open).
"""

from __future__ import annotations

import pandas as pd

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
from csms.analytics.tables import connections, first_seen

DOWN = ("Faulted", "Unavailable")

_PORTS = """
    SELECT s.id AS station_id, c.connector_id
    FROM stations s LEFT JOIN (
        SELECT station_id, connector_id FROM connectors WHERE connector_id > 0
        UNION SELECT station_id, connector_id FROM status_history WHERE connector_id > 0
        UNION SELECT station_id, connector_id FROM transactions WHERE connector_id > 0
    ) c ON c.station_id = s.id
    WHERE s.registered = 1 OR s.id IN (SELECT station_id FROM transactions)
"""
_STATUSES = """
    SELECT station_id, connector_id, status, error_code, info, vendor_error_code,
        received_at AS at, id
    FROM status_history WHERE (:until IS NULL OR received_at < :until)
    ORDER BY received_at, id
"""


def _period(since: Moment, until: Moment) -> tuple[pd.Timestamp, pd.Timestamp]:
    start, end = utc(since), utc(until)
    if start is None or end is None:
        raise AnalyticsError("uptime needs both since and until")
    if end <= start:
        raise AnalyticsError("until must be after since")
    return start, end


def uptime(source: Ledger | str, since: Moment, until: Moment) -> pd.DataFrame:
    """Per station: ports, observed_s, online_s, online_pct, port_s, up_s, uptime_pct,
    faulted_s, unavailable_s, available_pct (port-seconds, see the module's definitions).
    The period ends at the ledger's horizon if that is earlier (`Ledger.horizon`)."""
    start, end = _period(since, until)
    with using(source) as ledger:
        end = max(start, ledger.within_horizon(end))
        ports = ledger.frame(_PORTS)
        first = first_seen(ledger)
        statuses = parse_times(ledger.frame(_STATUSES, bounds(None, end)), "at")
        links = connections(ledger, end)
    ports["connector_id"] = ports["connector_id"].fillna(0).astype("int64")
    ports = ports.merge(first, on="station_id", how="left")
    ports["begin"] = ports["first_seen"].clip(lower=start)
    every = ports.groupby("station_id").agg(
        ports=("connector_id", "count"), begin=("begin", "first")
    )
    ports = ports[ports["begin"] < end]

    # Every moment a port's state may change: its start, its station's connection changes,
    # and its own and its station's (connector 0) statuses.
    station_times = pd.concat(
        [
            links[["station_id", "at"]],
            statuses.loc[statuses["connector_id"] == 0, ["station_id", "at"]],
        ]
    )
    changes = pd.concat(
        [
            ports[["station_id", "connector_id", "begin"]].rename(columns={"begin": "at"}),
            ports[["station_id", "connector_id"]].merge(station_times, on="station_id"),
            statuses[["station_id", "connector_id", "at"]].merge(
                ports[["station_id", "connector_id"]], on=["station_id", "connector_id"]
            ),
        ]
    )
    changes = changes.merge(
        ports[["station_id", "connector_id", "begin"]], on=["station_id", "connector_id"]
    )
    points = (
        changes[changes["at"] >= changes["begin"]]
        .drop(columns="begin")
        .drop_duplicates()
        .sort_values("at", kind="stable")
        .reset_index(drop=True)
    )
    points = pd.merge_asof(points, links[["station_id", "at", "online"]], on="at", by="station_id")
    points = pd.merge_asof(
        points,
        statuses[["station_id", "connector_id", "at", "status"]],
        on="at",
        by=["station_id", "connector_id"],
    )
    station_status = statuses.loc[statuses["connector_id"] == 0, ["station_id", "at", "status"]]
    points = pd.merge_asof(
        points,
        station_status.rename(columns={"status": "station_status"}),
        on="at",
        by="station_id",
    )
    points = points.sort_values(["station_id", "connector_id", "at"], kind="stable")
    following = points.groupby(["station_id", "connector_id"])["at"].shift(-1).fillna(end)
    points["seconds"] = (following - points["at"]).dt.total_seconds()

    online = points["online"].eq(True)
    faulted = online & (points["status"].eq("Faulted") | points["station_status"].eq("Faulted"))
    unavailable = (
        online
        & ~faulted
        & (points["status"].eq("Unavailable") | points["station_status"].eq("Unavailable"))
    )
    up = online & ~faulted & ~unavailable
    seconds = points["seconds"]
    points = points.assign(
        online_s=seconds.where(online, 0.0),
        up_s=seconds.where(up, 0.0),
        faulted_s=seconds.where(faulted, 0.0),
        unavailable_s=seconds.where(unavailable, 0.0),
        available_s=seconds.where(up & points["status"].eq("Available"), 0.0),
    )
    per_station = points.groupby("station_id").agg(
        port_s=("seconds", "sum"),
        online_port_s=("online_s", "sum"),
        up_s=("up_s", "sum"),
        faulted_s=("faulted_s", "sum"),
        unavailable_s=("unavailable_s", "sum"),
        available_s=("available_s", "sum"),
    )
    out = every.join(per_station)
    out["observed_s"] = (end - out["begin"]).dt.total_seconds().clip(lower=0).fillna(0.0)
    out["online_s"] = out["online_port_s"] / out["ports"]
    out["online_pct"] = 100 * out["online_s"] / out["observed_s"]
    out["uptime_pct"] = 100 * out["up_s"] / out["port_s"]
    out["available_pct"] = 100 * out["available_s"] / out["port_s"]
    out = out.reset_index()
    out["site"] = site_of(out["station_id"])
    columns = [
        "station_id",
        "site",
        "ports",
        "observed_s",
        "online_s",
        "online_pct",
        "port_s",
        "up_s",
        "uptime_pct",
        "faulted_s",
        "unavailable_s",
        "available_pct",
    ]
    return out[columns]


FAULT_COLUMNS = {
    "station_id": "string",
    "site": "string",
    "connector_id": "int64",
    "started_at": "datetime64[us, UTC]",
    "ended_at": "datetime64[us, UTC]",
    "duration_s": "float64",
    "ongoing": "bool",
    "status": "string",
    "error_code": "string",
    "info": "string",
    "vendor_error_code": "string",
}


def fault_episodes(source: Ledger | str, since: Moment, until: Moment) -> pd.DataFrame:
    """Fault episodes that began in [since, until), in order (columns: `FAULT_COLUMNS`); an
    open one lasts to `until` or the ledger's horizon, whichever is earlier."""
    start, end = _period(since, until)
    with using(source) as ledger:
        end = max(start, ledger.within_horizon(end))
        rows = parse_times(ledger.frame(_STATUSES, bounds(None, end)), "at")
    rows = rows.sort_values(["station_id", "connector_id", "at", "id"], kind="stable")
    faulty = rows["status"].eq("Faulted") | (
        rows["error_code"].notna() & rows["error_code"].ne("NoError")
    )
    connector = ["station_id", "connector_id"]
    previous = faulty.groupby([rows[c] for c in connector]).shift(1, fill_value=False)
    rows["episode"] = (faulty & ~previous).cumsum()
    rows["next_at"] = rows.groupby(connector)["at"].shift(-1)
    episodes = (
        rows[faulty]
        .groupby("episode")
        .agg(
            station_id=("station_id", "first"),
            connector_id=("connector_id", "first"),
            started_at=("at", "first"),
            ended_at=("next_at", "last"),
            status=("status", "first"),
            error_code=("error_code", "first"),
            info=("info", "first"),
            vendor_error_code=("vendor_error_code", "first"),
        )
    )
    episodes = episodes[episodes["started_at"] >= start].reset_index(drop=True)
    episodes["ended_at"] = episodes["ended_at"].where(episodes["ended_at"] < end)
    episodes["ongoing"] = episodes["ended_at"].isna()
    episodes["duration_s"] = (
        episodes["ended_at"].fillna(end) - episodes["started_at"]
    ).dt.total_seconds()
    episodes["site"] = site_of(episodes["station_id"])
    episodes = episodes[list(FAULT_COLUMNS)].astype(FAULT_COLUMNS)
    return episodes.sort_values("started_at", kind="stable").reset_index(drop=True)


def fault_stats(episodes: pd.DataFrame, by: str = "error_code") -> pd.DataFrame:
    """Per `by` (error_code, station_id, site, ...) over `fault_episodes`: faults, stations,
    down_h (total duration), mttr_min (mean time to repair of the closed episodes) and
    longest_h; most faults first."""
    closed = episodes["duration_s"].where(~episodes["ongoing"])
    stats = (
        episodes.assign(closed_s=closed)
        .groupby(by)
        .agg(
            faults=("started_at", "count"),
            stations=("station_id", "nunique"),
            down_h=("duration_s", "sum"),
            mttr_min=("closed_s", "mean"),
            longest_h=("duration_s", "max"),
        )
    )
    stats["down_h"] /= 3600
    stats["mttr_min"] /= 60
    stats["longest_h"] /= 3600
    return stats.sort_values(["faults", "down_h"], ascending=False)
