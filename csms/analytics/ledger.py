"""Read access to the ledger database for analytics: the URL, the connection, the queries.

Owns `open_ledger(url)` (the one place a database URL becomes a connection), `Ledger` (reads
returning DataFrames, whole or in chunks) and the time arguments every analytics function
takes (`since`/`until`, `month_bounds`). The ledger is a SQLite file or a PostgreSQL
database; the queries are written once, with `:name` parameters and SQL both accept (on
PostgreSQL through `csms.storage.dialect.to_postgres`, bound on the client so that a
`:since IS NULL` needs no type), and give the same frames on either.

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
from typing import TYPE_CHECKING, Any, TypeAlias

import pandas as pd

from csms.storage.dialect import is_postgres_url, to_postgres
from csms.storage.timestamps import to_text

if TYPE_CHECKING:
    import psycopg

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
    """A read-only connection to the ledger; every read returns a DataFrame.

    `connection` is a `sqlite3.Connection`, or on PostgreSQL a `psycopg.Connection` in one
    read-only repeatable-read transaction (every query sees the same snapshot)."""

    connection: Any
    url: str

    @property
    def on_postgres(self) -> bool:
        return not isinstance(self.connection, sqlite3.Connection)

    def frame(self, sql: str, params: Params | None = None) -> pd.DataFrame:
        if not self.on_postgres:
            return pd.read_sql_query(sql, self.connection, params=dict(params or {}))
        cursor = self.connection.execute(self._postgres_sql(sql, params))
        return _records(cursor.fetchall(), cursor.description)

    def chunks(
        self, sql: str, params: Params | None = None, *, rows: int = 50_000
    ) -> Iterator[pd.DataFrame]:
        if not self.on_postgres:
            yield from pd.read_sql_query(
                sql, self.connection, params=dict(params or {}), chunksize=rows
            )
            return
        # A server-side cursor: a large export streams rather than arriving whole.
        self.connection.execute(
            f"DECLARE ledger_chunks NO SCROLL CURSOR FOR {self._postgres_sql(sql, params)}"
        )
        try:
            while True:
                cursor = self.connection.execute(f"FETCH FORWARD {int(rows)} FROM ledger_chunks")
                batch = cursor.fetchall()
                if not batch:
                    return
                yield _records(batch, cursor.description)
        finally:
            self.connection.execute("CLOSE ledger_chunks")

    def scalar(self, sql: str, params: Params | None = None) -> Any:
        if self.on_postgres:
            row = self.connection.execute(self._postgres_sql(sql, params)).fetchone()
        else:
            row = self.connection.execute(sql, dict(params or {})).fetchone()
        return None if row is None else row[0]

    def _postgres_sql(self, sql: str, params: Params | None) -> str:
        """The query in PostgreSQL's dialect with its parameters bound as literals."""
        from psycopg import ClientCursor

        with ClientCursor(self.connection) as cursor:
            return cursor.mogrify(to_postgres(sql, named=True), dict(params or {}))

    def horizon(self) -> pd.Timestamp | None:
        """The latest moment the ledger knows of (None when it records nothing): periods
        that reach beyond it are measured up to it, not into a future no one has seen."""
        latest = self.scalar(_HORIZON)
        return None if latest is None else utc(latest)

    def within_horizon(self, until: pd.Timestamp) -> pd.Timestamp:
        """`until`, or the ledger's horizon if that is earlier."""
        latest = self.horizon()
        return until if latest is None or latest >= until else latest


def _records(rows: list[tuple[Any, ...]], description: Any) -> pd.DataFrame:
    """Rows as a DataFrame, typed as `pandas.read_sql_query` types SQLite's."""
    return pd.DataFrame.from_records(
        rows, columns=[column.name for column in description], coerce_float=True
    )


@contextmanager
def open_ledger(url: str) -> Iterator[Ledger]:
    """Open the ledger named by `url` for reading (`sqlite:///PATH` or `postgresql://...`)."""
    if is_postgres_url(url):
        with _open_postgres(url) as postgres:
            yield Ledger(postgres, url)
        return
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
def _open_postgres(url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the PostgreSQL ledger in one read-only snapshot of it."""
    try:
        import psycopg

        from csms.storage.postgres import connect
    except ImportError:
        raise AnalyticsError(
            "reading a PostgreSQL ledger needs psycopg (the package's `postgres` extra)"
        ) from None
    from csms.storage.base import StoreError

    try:
        connection = connect(url, application_name="csms-analytics")
    except StoreError as exc:
        raise AnalyticsError(str(exc)) from None
    try:
        # The same snapshot for every query, as on SQLite; a reader never blocks the ledger.
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        found = connection.execute("SELECT to_regclass('transactions') IS NOT NULL").fetchone()
        if not (found and found[0]):
            raise AnalyticsError("the database is not a CSMS ledger (no transactions table)")
        yield connection
    except psycopg.Error as exc:
        raise AnalyticsError(f"cannot read the ledger: {' '.join(str(exc).split())}") from None
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
