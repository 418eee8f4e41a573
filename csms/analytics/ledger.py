"""Read access to the ledger database for analytics: the URL, the connection, the queries.

Owns `open_ledger(url)` (the one place a database URL becomes a connection), `Ledger` (reads
returning DataFrames, whole or in chunks) and the time arguments every analytics function
takes (`since`/`until`, `month_bounds`). Only SQLite is implemented; the queries are written
with `:name` parameters and standard SQL so that a PostgreSQL dialect needs only its
connection and its parameter style here.

Stored moments are UTC ISO 8601 text with microseconds (`csms.storage.timestamps`), so a
bound given as the same text compares correctly as a string in SQL.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd

from csms.storage.timestamps import to_text

Moment: TypeAlias = "str | datetime | pd.Timestamp | None"
Params = Mapping[str, Any]
_HORIZON = """
    SELECT MAX(m) FROM (
        SELECT MAX(at) AS m FROM events
        UNION ALL SELECT MAX(received_at) FROM status_history
        UNION ALL SELECT MAX(received_at) FROM meter_samples
        UNION ALL SELECT MAX(stop_received_at) FROM transactions
        UNION ALL SELECT MAX(last_seen_at) FROM stations
    ) latest
"""
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class AnalyticsError(Exception):
    """A database or an argument analytics cannot use; the message says why."""


@dataclass
class Ledger:
    """A read-only connection to the ledger; every read returns a DataFrame."""

    connection: sqlite3.Connection
    url: str

    def frame(self, sql: str, params: Params | None = None) -> pd.DataFrame:
        return pd.read_sql_query(sql, self.connection, params=dict(params or {}))

    def chunks(
        self, sql: str, params: Params | None = None, *, rows: int = 50_000
    ) -> Iterator[pd.DataFrame]:
        yield from pd.read_sql_query(
            sql, self.connection, params=dict(params or {}), chunksize=rows
        )

    def scalar(self, sql: str, params: Params | None = None) -> Any:
        row = self.connection.execute(sql, dict(params or {})).fetchone()
        return None if row is None else row[0]

    def horizon(self) -> pd.Timestamp | None:
        """The latest moment the ledger knows of (None when it records nothing): periods
        that reach beyond it are measured up to it, not into a future no one has seen."""
        latest = self.scalar(_HORIZON)
        return None if latest is None else utc(latest)

    def within_horizon(self, until: pd.Timestamp) -> pd.Timestamp:
        """`until`, or the ledger's horizon if that is earlier."""
        latest = self.horizon()
        return until if latest is None or latest >= until else latest


@contextmanager
def open_ledger(url: str) -> Iterator[Ledger]:
    """Open the ledger named by `url` for reading (`sqlite:///PATH`)."""
    if url.startswith(("postgresql://", "postgres://")):
        raise AnalyticsError("analytics reads SQLite ledgers only so far (sqlite:///PATH)")
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise AnalyticsError(f"not a database URL analytics can read: {url!r}")
    path = url[len(prefix) :]
    if path != ":memory:" and not Path(path).is_file():
        raise AnalyticsError(f"no ledger database at {path}")
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # Reads only, and politely: a running server keeps writing beside us (WAL).
        connection.execute("PRAGMA query_only = ON")
        connection.execute("PRAGMA busy_timeout = 10000")
        (tables,) = connection.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'transactions'"
        ).fetchone()
        # One read transaction: every query of this ledger sees the same snapshot, so a
        # session and its readings, or an export's chunks, agree while the server commits.
        # Only in WAL mode (the CSMS's), where a reader does not hold up the writer.
        (journal,) = connection.execute("PRAGMA journal_mode").fetchone()
        if str(journal).lower() == "wal":
            connection.execute("BEGIN")
    except sqlite3.DatabaseError as exc:
        raise AnalyticsError(f"cannot read {path}: {exc}") from None
    if not tables:
        connection.close()
        raise AnalyticsError(f"{path} is not a CSMS ledger (no transactions table)")
    try:
        yield Ledger(connection, url)
    finally:
        connection.close()


@contextmanager
def using(source: Ledger | str) -> Iterator[Ledger]:
    """The ledger itself, or one opened (and closed afterwards) from a URL."""
    if isinstance(source, Ledger):
        yield source
        return
    with open_ledger(source) as ledger:
        yield ledger


# -- time ------------------------------------------------------------------------------------


def utc(moment: Moment) -> pd.Timestamp | None:
    """A moment as a UTC timestamp; naive ones (and dates) are taken as UTC."""
    if moment is None:
        return None
    try:
        stamp = pd.Timestamp(moment)
    except ValueError:
        raise AnalyticsError(f"not a date or date-time: {moment!r}") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def bounds(since: Moment, until: Moment) -> dict[str, str | None]:
    """`since`/`until` as the ledger's text form, for `:since`/`:until` parameters."""
    start, end = utc(since), utc(until)
    if start is not None and end is not None and end <= start:
        raise AnalyticsError("until must be after since")
    return {
        "since": None if start is None else to_text(start.to_pydatetime()),
        "until": None if end is None else to_text(end.to_pydatetime()),
    }


def month_bounds(month: str, tz: str = "UTC") -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and the next month's first midnight of `YYYY-MM` in `tz`, as UTC."""
    if not _MONTH.match(month):
        raise AnalyticsError(f"month must be YYYY-MM, not {month!r}")
    try:
        start = pd.Timestamp(f"{month}-01").tz_localize(tz)
    except (KeyError, ValueError) as exc:
        raise AnalyticsError(f"unknown time zone {tz!r}: {exc}") from None
    end = (start.tz_localize(None) + pd.offsets.MonthBegin(1)).tz_localize(tz)
    return start.tz_convert("UTC"), end.tz_convert("UTC")


def parse_times(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Turn the ledger's ISO 8601 text columns into UTC timestamps, in place."""
    for column in columns:
        # One unit everywhere (the ledger keeps microseconds), so frames merge on time.
        moments = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        frame[column] = moments.astype("datetime64[us, UTC]")
    return frame


def site_of(station_ids: pd.Series) -> pd.Series:
    """A station's site: its id up to its last '-' (`CITY-AC-0001` is at `CITY-AC`); an id
    without '-' is a site of its own."""
    return station_ids.astype("string").str.rsplit("-", n=1).str[0]
