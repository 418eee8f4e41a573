"""The analytics commands: `csms export KIND` (sessions, meter values, status history, CDRs to
Parquet or CSV) and `csms report monthly` (the month's HTML report).

Both read the configured database (`CSMS_DATABASE_URL`) beside a running server; the work is
in `csms.analytics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from csms.cli_common import CliError, cli_settings, parse_date

report_app = typer.Typer(help="Reports of the ledger.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
    app.add_typer(report_app, name="report")


def export_command(
    kind: Annotated[
        str, typer.Argument(metavar="KIND", help="sessions, meter-values, status or cdrs.")
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet or csv.")] = "parquet",
    since: Annotated[str | None, typer.Option(help="ISO 8601 date or date-time (UTC).")] = None,
    until: Annotated[
        str | None, typer.Option(help="ISO 8601 date or date-time (UTC), excluded.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="File to write (default KIND.FORMAT).")] = None,
) -> None:
    """Export sessions, meter values, status history or CDRs, for pandas or a spreadsheet.

    Sessions and CDRs are bounded by the session's start, meter values by their timestamp,
    status history by the time the CSMS received it.
    """
    from csms.analytics.export import ExportFormat, ExportKind, export
    from csms.analytics.ledger import AnalyticsError

    try:
        chosen = ExportKind(kind)
    except ValueError:
        raise CliError(
            f"nothing to export called {kind!r}: sessions, meter-values, status or cdrs"
        ) from None
    try:
        form = ExportFormat(fmt)
    except ValueError:
        raise CliError(f"--format must be parquet or csv, not {fmt!r}") from None
    target = out or Path(f"{chosen.value}.{form.value}")
    try:
        rows = export(
            cli_settings().database_url,
            chosen,
            target,
            fmt=form,
            since=parse_date(since, "--since"),
            until=parse_date(until, "--until"),
        )
    except AnalyticsError as exc:
        raise CliError(str(exc)) from None
    typer.echo(f"{rows} rows written to {target}")


@report_app.command("monthly")
def report_monthly(
    month: Annotated[str, typer.Option(help="YYYY-MM")],
    out: Annotated[
        Path | None, typer.Option(help="HTML file (default report-YYYY-MM.html).")
    ] = None,
    tz: Annotated[
        str | None, typer.Option(help="Time zone of the month (default: the billing time zone).")
    ] = None,
) -> None:
    """Write the month's HTML report: energy, revenue, utilization, top stations, uptime,
    faults."""
    from csms.analytics.ledger import AnalyticsError
    from csms.analytics.report import monthly_report_html

    settings = cli_settings()
    target = out or Path(f"report-{month}.html")
    try:
        page = monthly_report_html(settings.database_url, month, tz=tz or settings.billing_timezone)
    except AnalyticsError as exc:
        raise CliError(str(exc)) from None
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror or exc}") from None
    typer.echo(f"report for {month} written to {target}")
