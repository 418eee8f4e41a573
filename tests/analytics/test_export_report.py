"""Exports (Parquet, CSV), the `csms export` and `csms report monthly` commands, the monthly
HTML report and a plot rendered to PNG."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from csms.analytics import AnalyticsError, export, monthly_report_html
from csms.analytics.plots import bars_figure, to_png
from csms.analytics.report import SECTIONS
from csms.analytics.sessions import SESSION_COLUMNS
from csms.analytics.tables import CDR_COLUMNS, METER_VALUE_COLUMNS, STATUS_COLUMNS
from csms.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
QUIET = Console(quiet=True)


@pytest.mark.parametrize(
    ("kind", "columns", "rows"),
    [
        ("sessions", SESSION_COLUMNS, 5),
        ("meter-values", METER_VALUE_COLUMNS, 7),
        ("status", STATUS_COLUMNS, 12),
        ("cdrs", CDR_COLUMNS, 3),
    ],
)
def test_every_kind_exports_to_parquet_in_chunks(
    ledger_url: str, tmp_path: Path, kind: str, columns: dict[str, str], rows: int
) -> None:
    out = tmp_path / f"{kind}.parquet"
    assert export(ledger_url, kind, out, chunk_rows=2, console=QUIET) == rows
    frame = pd.read_parquet(out)
    assert list(frame.columns) == list(columns)
    assert len(frame) == rows
    assert not (tmp_path / f"{kind}.parquet.part").exists()


def test_sessions_export_pages_match_the_frame(ledger_url: str, tmp_path: Path) -> None:
    out = tmp_path / "sessions.parquet"
    export(ledger_url, "sessions", out, chunk_rows=2, console=QUIET)
    frame = pd.read_parquet(out)
    assert frame["idle_s"].tolist() == [3600.0, 7200.0, 0.0, 0.0, 1800.0]
    assert frame["cost_incl_vat"].iloc[:3].tolist() == [5.24, 1.43, 0.95]


def test_csv_export_with_bounds(ledger_url: str, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    n = export(
        ledger_url,
        "sessions",
        out,
        fmt="csv",
        since="2026-03-03",
        until="2026-03-04",
        console=QUIET,
    )
    frame = pd.read_csv(out)
    assert n == 2 and frame["session_id"].tolist() == [4, 5]
    assert frame["started_at"].tolist() == [
        "2026-03-03T10:00:00.000000Z",
        "2026-03-03T20:00:00.000000Z",
    ]
    empty = tmp_path / "none.csv"
    assert export(ledger_url, "cdrs", empty, fmt="csv", since="2027-01-01", console=QUIET) == 0
    assert pd.read_csv(empty).columns.tolist() == list(CDR_COLUMNS)


def test_export_into_a_missing_directory_is_refused(ledger_url: str, tmp_path: Path) -> None:
    with pytest.raises(AnalyticsError, match="does not exist"):
        export(ledger_url, "cdrs", tmp_path / "no" / "x.csv", console=QUIET)


def test_the_monthly_report_has_its_sections_and_plots(ledger_url: str) -> None:
    page = monthly_report_html(ledger_url, "2026-03")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4  # energy, revenue (one per currency), the heatmap, uptime
    assert all(base64.b64decode(image).startswith(PNG) for image in images)
    assert "GroundFailure" in page and "OverCurrentFailure" in page
    summary = page[page.index('id="summary"') : page.index('id="energy"')]
    assert "<td>7.62</td>" in summary and "<td>22.0</td>" in summary


def test_a_plot_renders_to_png() -> None:
    values = pd.Series([1.0, 2.5, 0.0], index=pd.date_range("2026-03-01", periods=3))
    png = to_png(bars_figure(values, title="Energy", ylabel="energy (kWh)"))
    assert png.startswith(PNG) and len(png) > 2000


def _run(argv: list[str], url: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("CSMS_DATABASE_URL", url)
    with pytest.raises(SystemExit) as ended:
        main(argv)
    return int(ended.value.code or 0)


def test_cli_export_and_report(
    ledger_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "status.csv"
    code = _run(
        ["export", "status", "--format", "csv", "--until", "2026-03-02T07:00", "--out", str(out)],
        ledger_url,
        monkeypatch,
    )
    assert code == 0
    assert "5 rows written" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == 5
    monkeypatch.chdir(tmp_path)
    assert _run(["export", "cdrs"], ledger_url, monkeypatch) == 0
    assert len(pd.read_parquet(tmp_path / "cdrs.parquet")) == 3
    report = tmp_path / "march.html"
    assert (
        _run(
            ["report", "monthly", "--month", "2026-03", "--out", str(report)],
            ledger_url,
            monkeypatch,
        )
        == 0
    )
    assert '<section id="uptime">' in report.read_text()
    assert _run(["report", "monthly", "--month", "2026-03"], ledger_url, monkeypatch) == 0
    assert (tmp_path / "report-2026-03.html").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "trips"], "nothing to export called 'trips'"),
        (["export", "cdrs", "--format", "xlsx"], "--format must be parquet or csv"),
        (["export", "cdrs", "--since", "yesterday"], "--since must be an ISO 8601"),
        (["report", "monthly", "--month", "March"], "month must be YYYY-MM"),
        (["report", "monthly", "--month", "2026-03", "--tz", "Mars/Base"], "unknown time zone"),
    ],
)
def test_cli_refusals_are_one_line(
    ledger_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert _run(argv, ledger_url, monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.startswith("csms: error: ") and message in err and err.count("\n") == 1
