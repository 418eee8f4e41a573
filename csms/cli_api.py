"""The operator API's keys on the command line: `csms api-keys create|list|revoke`.

`create` prints the new key once, as the last word of its last line; only its hash is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer

from csms.api.keys import Scope, key_hash, key_label, new_key
from csms.cli_common import FormatOption, OutputFormat, cli_settings, print_rows
from csms.storage.sqlite import sqlite_path
from csms.storage.sqlite_api import ApiStore

keys_app = typer.Typer(
    help="API keys of the HTTP API (read < operate < admin).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="api-keys")


@contextmanager
def _store() -> Iterator[ApiStore]:
    store = ApiStore(sqlite_path(cli_settings().database_url))
    try:
        yield store
    finally:
        store.close()


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    scope: Annotated[Scope, typer.Option(help="read: GETs; operate: commands; admin: CRUD.")],
) -> None:
    """Make a key; it is shown only now."""
    if not name.strip() or len(name) > 100:
        raise typer.BadParameter("NAME must be 1 to 100 characters")
    key = new_key()
    with _store() as store:
        store.create_api_key(name, scope.value, key_hash(key), key_label(key), datetime.now(UTC))
    typer.echo(f"API key {name!r} ({scope.value}); keep it now, it is not shown again:")
    typer.echo(key)


@keys_app.command("list")
def list_keys(fmt: FormatOption = OutputFormat.table) -> None:
    """List keys (their first characters, never the key)."""
    with _store() as store:
        print_rows(
            store.list_api_keys(), fmt, ["name", "scope", "prefix", "created_at", "revoked_at"]
        )


@keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Revoke a key: requests with it are refused from now on."""
    with _store() as store:
        store.revoke_api_key(name, datetime.now(UTC))
    typer.echo(f"API key {name!r} revoked")
