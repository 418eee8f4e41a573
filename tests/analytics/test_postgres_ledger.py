"""Analytics on a PostgreSQL ledger: the same sessions as the SQLite one give the same frames,
the same exports and the same monthly report."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from postgres_ledger import copy_to_postgres
from rich.console import Console
from support.postgres import fresh_database

import csms.analytics as ca
from csms.analytics import AnalyticsError, export, monthly_report_html, open_ledger

QUIET = Console(quiet=True)
DAY, NEXT, AFTER = "2026-03-02", "2026-03-03", "2026-03-04"


@pytest.fixture(scope="module")
def postgres_ledger_url(ledger_url: str) -> Iterator[str]:
    with fresh_database() as url:
        copy_to_postgres(ledger_url, url)
        yield url


READS: dict[str, Callable[[str], pd.DataFrame]] = {
    "sessions": lambda url: ca.sessions(url),
    "sessions within": lambda url: ca.sessions(url, since=NEXT, until=AFTER),
    "meter values": lambda url: ca.meter_values(url),
    "status history": lambda url: ca.status_history(url, until=f"{DAY}T12:00"),
    "cdrs": lambda url: ca.cdrs(url),
    "connections": lambda url: ca.connections(url),
    "stations": lambda url: ca.stations(url),
    "utilization": lambda url: ca.utilization(url, DAY, AFTER),
    "uptime": lambda url: ca.uptime(url, DAY, AFTER),
    "fault episodes": lambda url: ca.fault_episodes(url, DAY, AFTER),
    "rating inputs": lambda url: pd.concat(ca.rating_inputs(url), axis=1),
}


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
def test_a_postgres_ledger_gives_the_same_frames(
    ledger_url: str, postgres_ledger_url: str, read: Callable[[str], pd.DataFrame]
) -> None:
    expected = read(ledger_url)
    assert not expected.empty
    assert_frame_equal(read(postgres_ledger_url), expected)


@pytest.mark.parametrize("kind", ["sessions", "meter-values", "status", "cdrs"])
def test_exports_from_postgres_match_those_from_sqlite(
    ledger_url: str, postgres_ledger_url: str, tmp_path: Path, kind: str
) -> None:
    written = []
    for name, url in (("sqlite", ledger_url), ("postgres", postgres_ledger_url)):
        out = tmp_path / f"{name}.parquet"
        # Chunks of two rows: PostgreSQL streams them from a server-side cursor.
        written.append(export(url, kind, out, chunk_rows=2, console=QUIET))
    assert written[0] == written[1] > 0
    assert_frame_equal(
        pd.read_parquet(tmp_path / "postgres.parquet"), pd.read_parquet(tmp_path / "sqlite.parquet")
    )


def test_the_monthly_report_from_postgres_is_the_same(
    ledger_url: str, postgres_ledger_url: str
) -> None:
    def without_generation_time(page: str) -> str:
        return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "", page)

    expected = monthly_report_html(ledger_url, "2026-03", tz="Europe/Berlin")
    assert without_generation_time(
        monthly_report_html(postgres_ledger_url, "2026-03", tz="Europe/Berlin")
    ) == without_generation_time(expected)


def test_a_postgres_ledger_is_read_in_one_snapshot(postgres_ledger_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    with open_ledger(postgres_ledger_url) as ledger:
        before = len(ca.sessions(ledger))
        with psycopg.connect(postgres_ledger_url, autocommit=True) as writer:
            writer.execute(
                "INSERT INTO transactions (id, station_id, connector_id, status, started_at)"
                " VALUES (99, 'A-1', 1, 'Active', '2026-03-05T00:00:00.000000+00:00')"
            )
            try:
                assert len(ca.sessions(ledger)) == before
            finally:
                writer.execute("DELETE FROM transactions WHERE id = 99")


def test_a_postgres_database_without_a_ledger_is_refused() -> None:
    with (
        fresh_database() as url,
        pytest.raises(AnalyticsError, match="not a CSMS ledger"),
        open_ledger(url),
    ):
        pass
