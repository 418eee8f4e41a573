"""The ledger's other records as tidy DataFrames: meter values (one row per sampled value),
connector status history, CDRs and the stations' connection events.

Each has a column contract (`*_COLUMNS`, name to pandas dtype) shared with the exports, a
query bounded by `since`/`until` and a function returning the whole frame. Moments are UTC;
`received_at` is the CSMS's clock, `timestamp` the charger's (which may be skewed).
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pandas as pd

from csms.analytics.ledger import Ledger, Moment, bounds, parse_times, site_of, using

METER_VALUE_COLUMNS = {
    "sample_id": "int64",
    "station_id": "string",
    "site": "string",
    "connector_id": "int64",
    "session_id": "Int64",
    "reported_transaction_id": "Int64",
    "timestamp": "datetime64[us, UTC]",
    "received_at": "datetime64[us, UTC]",
    "measurand": "string",
    "phase": "string",
    "unit": "string",
    "context": "string",
    "location": "string",
    "value": "float64",
    "raw_value": "string",
    "wh": "float64",
    "anomaly": "string",
}
STATUS_COLUMNS = {
    "station_id": "string",
    "site": "string",
    "connector_id": "int64",
    "status": "string",
    "error_code": "string",
    "info": "string",
    "vendor_error_code": "string",
    "timestamp": "datetime64[us, UTC]",
    "received_at": "datetime64[us, UTC]",
    "next_at": "datetime64[us, UTC]",
    "duration_s": "float64",
}
CDR_COLUMNS = {
    "session_id": "int64",
    "station_id": "string",
    "site": "string",
    "connector_id": "Int64",
    "id_tag": "string",
    "driver_id": "string",
    "tariff_id": "string",
    "tariff_version": "Int64",
    "currency": "string",
    "cost_excl_vat": "float64",
    "cost_incl_vat": "float64",
    "total_energy_kwh": "float64",
    "total_time_h": "float64",
    "total_parking_time_h": "float64",
    "flags": "string",
    "started_at": "datetime64[us, UTC]",
    "ended_at": "datetime64[us, UTC]",
    "body": "string",
}
CONNECTION_KINDS = ("connected", "disconnected", "offline")

_WITHIN = "(:since IS NULL OR {at} >= :since) AND (:until IS NULL OR {at} < :until)"
METER_VALUES_SQL = f"""
    SELECT id AS sample_id, station_id, connector_id, transaction_id AS session_id,
        reported_transaction_id, timestamp, received_at, measurand, phase, unit, context,
        location, numeric AS value, value AS raw_value, wh, anomaly
    FROM meter_samples WHERE {_WITHIN.format(at="timestamp")} ORDER BY id
"""
# The next status of the same connector is looked up over the whole history, so a status that
# began before `until` gets its true end even when that lies beyond.
STATUS_SQL = f"""
    SELECT * FROM (
        SELECT station_id, connector_id, status, error_code, info, vendor_error_code,
            timestamp, received_at, id,
            LEAD(received_at) OVER (
                PARTITION BY station_id, connector_id ORDER BY received_at, id
            ) AS next_at
        FROM status_history
    ) h WHERE {_WITHIN.format(at="received_at")}
    ORDER BY station_id, connector_id, received_at, id
"""
CDRS_SQL = f"""
    SELECT c.transaction_id AS session_id, t.station_id, t.connector_id, t.id_tag, k.driver_id,
        c.tariff_id, c.tariff_version, c.currency, c.cost_excl_vat, c.cost_incl_vat, c.flags,
        t.started_at, t.ended_at, c.body
    FROM cdrs c
    LEFT JOIN transactions t ON t.id = c.transaction_id
    LEFT JOIN id_tokens k ON k.id_tag = t.id_tag
    WHERE {_WITHIN.format(at="t.started_at")} ORDER BY c.transaction_id
"""
CONNECTIONS_SQL = """
    SELECT station_id, kind, at FROM events
    WHERE kind IN ('connected', 'disconnected', 'offline') AND station_id IS NOT NULL
        AND (:until IS NULL OR at < :until)
    ORDER BY at, id
"""


def meter_values(source: Ledger | str, since: Moment = None, until: Moment = None) -> pd.DataFrame:
    """Every sampled value whose (charger) timestamp is in [since, until), one row each."""
    with using(source) as ledger:
        return meter_values_frame(ledger.frame(METER_VALUES_SQL, bounds(since, until)))


def meter_values_frame(rows: pd.DataFrame) -> pd.DataFrame:
    frame = parse_times(rows, "timestamp", "received_at")
    frame["site"] = site_of(frame["station_id"])
    return frame[list(METER_VALUE_COLUMNS)].astype(METER_VALUE_COLUMNS)


def status_history(
    source: Ledger | str, since: Moment = None, until: Moment = None
) -> pd.DataFrame:
    """Connector statuses received in [since, until), per connector in order, each with how
    long it held (`duration_s`, to the connector's next status; NaN for the current one).
    Connector 0 is the whole station."""
    with using(source) as ledger:
        return status_frame(ledger.frame(STATUS_SQL, bounds(since, until)))


def status_frame(rows: pd.DataFrame) -> pd.DataFrame:
    frame = parse_times(rows, "timestamp", "received_at", "next_at")
    frame["duration_s"] = (frame["next_at"] - frame["received_at"]).dt.total_seconds()
    frame["site"] = site_of(frame["station_id"])
    return frame[list(STATUS_COLUMNS)].astype(STATUS_COLUMNS)


def cdrs(source: Ledger | str, since: Moment = None, until: Moment = None) -> pd.DataFrame:
    """CDRs of the sessions that started in [since, until), with their OCPI totals; `body` is
    the OCPI CDR as JSON."""
    with using(source) as ledger:
        return cdrs_frame(ledger.frame(CDRS_SQL, bounds(since, until)))


def cdrs_frame(rows: pd.DataFrame) -> pd.DataFrame:
    frame = parse_times(rows, "started_at", "ended_at")
    totals = pd.DataFrame.from_records(
        [orjson.loads(body) for body in frame["body"]],
        columns=["total_energy", "total_time", "total_parking_time"],
    )
    frame["total_energy_kwh"] = totals["total_energy"].to_numpy()
    frame["total_time_h"] = totals["total_time"].to_numpy()
    frame["total_parking_time_h"] = totals["total_parking_time"].to_numpy()
    for column in ("cost_excl_vat", "cost_incl_vat"):
        frame[column] = pd.to_numeric(frame[column])
    frame["site"] = site_of(frame["station_id"])
    return frame[list(CDR_COLUMNS)].astype(CDR_COLUMNS)


FIRST_SEEN_SQL = """
    SELECT station_id, MIN(at) AS first_seen FROM events
    WHERE station_id IS NOT NULL GROUP BY station_id
"""


def first_seen(source: Ledger | str) -> pd.DataFrame:
    """Each station's first event in the ledger (station_id, first_seen): from then on it is
    part of the network the analytics observe."""
    with using(source) as ledger:
        frame = parse_times(ledger.frame(FIRST_SEEN_SQL), "first_seen")
    return frame.astype({"station_id": "str", "first_seen": "datetime64[us, UTC]"})


def connections(source: Ledger | str, until: Moment = None) -> pd.DataFrame:
    """The stations' connection events before `until`: station_id, kind, at, online."""
    with using(source) as ledger:
        frame = ledger.frame(CONNECTIONS_SQL, bounds(None, until))
    frame = parse_times(frame, "at")
    frame["online"] = frame["kind"] == "connected"
    return frame


def chunked(
    ledger: Ledger, sql: str, since: Moment, until: Moment, rows: int
) -> Iterator[pd.DataFrame]:
    """The rows of one of the queries above, `rows` at a time."""
    yield from ledger.chunks(sql, bounds(since, until), rows=rows)


def count_rows(ledger: Ledger, sql: str, since: Moment, until: Moment) -> int:
    return int(ledger.scalar(f"SELECT COUNT(*) FROM ({sql}) q", bounds(since, until)))


TARIFFS_SQL = """
    SELECT t.id AS tariff_id, t.version, t.effective_from, t.currency, t.body,
        (SELECT COUNT(*) FROM cdrs c WHERE c.tariff_id = t.id AND c.tariff_version = t.version)
            AS cdrs
    FROM tariffs t ORDER BY t.id, t.version
"""


def tariffs(source: Ledger | str) -> pd.DataFrame:
    """Every stored tariff version: tariff_id, version, effective_from, currency, body (the
    OCPI tariff as JSON, for `csms.domain.tariffs.parse_tariff`) and how many CDRs used it."""
    with using(source) as ledger:
        return parse_times(ledger.frame(TARIFFS_SQL), "effective_from")
