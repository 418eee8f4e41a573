"""Exports of the ledger for pandas, Parquet readers and spreadsheets: sessions, meter values,
status history and CDRs, written chunk by chunk with a progress bar.

Each kind has a fixed column contract (`csms.analytics.sessions.SESSION_COLUMNS`,
`csms.analytics.tables.*_COLUMNS`), so every chunk has the same types and an empty export
still has its columns. A file is written beside its destination and moved there when whole.
Bounds: sessions and CDRs by the session's start, meter values by their timestamp, status by
the time the CSMS received it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from csms.analytics.ledger import AnalyticsError, Ledger, Moment, open_ledger
from csms.analytics.sessions import SESSION_COLUMNS, count_sessions, session_pages
from csms.analytics.tables import (
    CDR_COLUMNS,
    CDRS_SQL,
    METER_VALUE_COLUMNS,
    METER_VALUES_SQL,
    STATUS_COLUMNS,
    STATUS_SQL,
    cdrs_frame,
    chunked,
    count_rows,
    meter_values_frame,
    status_frame,
)


class ExportKind(StrEnum):
    sessions = "sessions"
    meter_values = "meter-values"
    status = "status"
    cdrs = "cdrs"


class ExportFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"


@dataclass(frozen=True)
class _Source:
    columns: dict[str, str]
    count: Callable[[Ledger, Moment, Moment], int]
    frames: Callable[[Ledger, Moment, Moment, int], Iterator[pd.DataFrame]]


def _query(
    sql: str, columns: dict[str, str], shape: Callable[[pd.DataFrame], pd.DataFrame]
) -> _Source:
    return _Source(
        columns,
        lambda ledger, since, until: count_rows(ledger, sql, since, until),
        lambda ledger, since, until, rows: (
            shape(chunk) for chunk in chunked(ledger, sql, since, until, rows)
        ),
    )


_CSV_MOMENT = "%Y-%m-%dT%H:%M:%S.%fZ"  # every moment is UTC

SOURCES: dict[ExportKind, _Source] = {
    ExportKind.sessions: _Source(
        SESSION_COLUMNS,
        count_sessions,
        lambda ledger, since, until, rows: session_pages(ledger, since, until, rows=rows),
    ),
    ExportKind.meter_values: _query(METER_VALUES_SQL, METER_VALUE_COLUMNS, meter_values_frame),
    ExportKind.status: _query(STATUS_SQL, STATUS_COLUMNS, status_frame),
    ExportKind.cdrs: _query(CDRS_SQL, CDR_COLUMNS, cdrs_frame),
}


def export(
    db_url: str,
    kind: ExportKind | str,
    out: Path,
    *,
    fmt: ExportFormat | str = ExportFormat.parquet,
    since: Moment = None,
    until: Moment = None,
    chunk_rows: int = 50_000,
    console: Console | None = None,
) -> int:
    """Write `kind` of the ledger at `db_url` to `out`; the number of rows written. A rich
    progress bar goes to `console` (stderr when None)."""
    source = SOURCES[ExportKind(kind)]
    fmt = ExportFormat(fmt)
    if not out.parent.is_dir():
        raise AnalyticsError(f"directory {out.parent} does not exist")
    partial = out.with_name(out.name + ".part")
    written = 0
    with open_ledger(db_url) as ledger:
        total = source.count(ledger, since, until)
        progress = Progress(
            TextColumn(f"exporting {ExportKind(kind).value}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
        )
        with progress, _writer(partial, fmt, source.columns) as write:
            task = progress.add_task("rows", total=total)
            for frame in source.frames(ledger, since, until, chunk_rows):
                write(frame.astype(source.columns))
                written += len(frame)
                progress.update(task, advance=len(frame))
    partial.replace(out)
    return written


@contextmanager
def _writer(
    path: Path, fmt: ExportFormat, columns: dict[str, str]
) -> Iterator[Callable[[pd.DataFrame], None]]:
    """A function appending one frame to the file at `path`; the file is removed if the
    export fails."""
    empty = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})
    try:
        if fmt is ExportFormat.parquet:
            schema = pa.Schema.from_pandas(empty, preserve_index=False)
            with pq.ParquetWriter(path, schema) as parquet:
                yield lambda frame: parquet.write_table(
                    pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
                )
        else:
            with path.open("w", newline="") as handle:
                empty.to_csv(handle, index=False)
                yield lambda frame: frame.to_csv(
                    handle, index=False, header=False, date_format=_CSV_MOMENT
                )
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise AnalyticsError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
