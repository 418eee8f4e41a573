"""What every `csms` subcommand shares: the configuration option, the store, output formats
and the one-line operator error."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from csms.config import Settings, load_settings
from csms.storage.sqlite import SqliteStore


class CliError(Exception):
    """An operator mistake, reported as one line."""


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class CliState:
    config: Path | None = None


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML configuration file.", show_default=False),
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]


def cli_settings(**overrides: Any) -> Settings:
    return load_settings(CliState.config, **overrides)


@contextmanager
def open_cli_store() -> Iterator[SqliteStore]:
    settings = cli_settings()
    store = SqliteStore.from_url(settings.database_url)  # SQLite or PostgreSQL
    try:
        yield store
    finally:
        store.close()


def print_rows(
    rows: list[dict[str, Any]] | dict[str, Any], fmt: OutputFormat, columns: list[str]
) -> None:
    if fmt is OutputFormat.json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    items = rows if isinstance(rows, list) else [rows]
    table = Table(*columns)
    for row in items:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console(width=200).print(table)


def parse_date(text: str | None, what: str) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{what} must be an ISO 8601 date or date-time, not {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
