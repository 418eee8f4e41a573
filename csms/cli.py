"""The `csms` command line: serve, and the operator's stations, tokens and sessions.

Every listing takes `--format table|json`. Bad arguments and refused requests end in one
line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import csv
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import trio
import typer
from rich.console import Console
from rich.progress import Progress

from csms.cli_analytics import register as register_analytics
from csms.cli_api import register as register_api
from csms.cli_billing import register as register_billing
from csms.cli_common import (
    CliError,
    CliState,
    ConfigOption,
    FormatOption,
    OutputFormat,
    cli_settings,
    open_cli_store,
    parse_date,
    print_rows,
)
from csms.cli_runner import new_app, only_os_error, run_app
from csms.config import ConfigError
from csms.domain.credentials import (
    BadPassword,
    generate_password,
    hash_password,
    validate_password,
)
from csms.domain.identity import BadStationId, validate_station_id
from csms.logs import configure_logging
from csms.storage.base import StoreError
from csms.storage.sqlite import TokenRow
from csms.storage.sqlite_billing_admin import live_cost

app = new_app("An OCPP charging station management system.")
stations_app = typer.Typer(help="Charging stations.", no_args_is_help=True)
tokens_app = typer.Typer(help="Id tokens (RFID cards, app tokens).", no_args_is_help=True)
sessions_app = typer.Typer(help="Charging sessions (transactions).", no_args_is_help=True)
app.add_typer(stations_app, name="stations")
app.add_typer(tokens_app, name="tokens")
app.add_typer(sessions_app, name="sessions")
db_app = typer.Typer(help="The ledger database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
register_billing(app)
register_api(app)
register_analytics(app)


@app.callback()
def _root(config: ConfigOption = None) -> None:
    CliState.config = config


# -- serve ---------------------------------------------------------------------------------


@app.command()
def serve(
    ocpp_port: Annotated[int | None, typer.Option(help="OCPP WebSocket port.")] = None,
    api_port: Annotated[int | None, typer.Option(help="HTTP API port.")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="sqlite:///PATH or postgresql://USER@HOST/DB")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Processes sharing the ports, one per core (more than 1: PostgreSQL)."
        ),
    ] = None,
) -> None:
    """Run the CSMS: the OCPP endpoint and the ledger, until interrupted."""
    from csms.runtime.server import run_csms

    settings = cli_settings(
        ocpp_port=ocpp_port, api_port=api_port, database_url=database_url, workers=workers
    )
    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1:
        _serve_workers(settings.workers, ocpp_port, api_port, database_url)
        return
    # The ledger's commit thread waits for the GIL after each fsync; at the default 5 ms
    # switch interval that wait is a visible share of a transaction message's latency.
    sys.setswitchinterval(0.0005)
    try:
        trio.run(run_csms, settings)
    except (OSError, BaseExceptionGroup) as exc:
        error = only_os_error(exc)
        if error is None:
            raise
        # Typically the port is taken or the host is not an address of this machine.
        raise CliError(
            f"cannot serve on {settings.ocpp_host}:{settings.ocpp_port}: {error.strerror or error}"
        ) from None


def _serve_workers(
    count: int, ocpp_port: int | None, api_port: int | None, database_url: str | None
) -> None:
    """Run `count` worker processes of `csms serve` (with this command's options)."""
    from csms.cluster.workers import run_workers

    env = dict(os.environ)
    for name, value in (
        ("CSMS_OCPP_PORT", ocpp_port),
        ("CSMS_API_PORT", api_port),
        ("CSMS_DATABASE_URL", database_url),
    ):
        if value is not None:
            env[name] = str(value)
    config = ["--config", str(CliState.config)] if CliState.config is not None else []
    code = run_workers(count, [*config, "serve"], env)
    if code:
        raise typer.Exit(code)


@app.command()
def demo(
    scenario: Annotated[str, typer.Option(help="A shipped scenario or a TOML file.")] = "city",
    chargers: Annotated[int | None, typer.Option(min=1, max=100_000)] = None,
    duration: Annotated[str | None, typer.Option(help="e.g. 6h, 1d, 1w")] = None,
    database: Annotated[Path, typer.Option(help="SQLite file of the demo's ledger.")] = Path(
        "csms-demo.db"
    ),
    as_json: Annotated[
        bool, typer.Option("--json", help="End with a one-line JSON summary.")
    ] = False,
) -> None:
    """Run this CSMS (SQLite ledger) with a simulated fleet in virtual time, and reconcile.

    The demo's ledger is DATABASE, made afresh; inspect it afterwards with
    `CSMS_DATABASE_URL=sqlite:///DATABASE csms sessions list`.
    """
    from simulator.cli import CliError as SimulatorError
    from simulator.cli import print_summary, resolve_scenario
    from simulator.run import run_virtual_sync
    from simulator.scenario import ScenarioError, parse_duration

    try:
        duration_s = parse_duration(duration) if duration is not None else None
        chosen = resolve_scenario(scenario).with_overrides(chargers=chargers, duration_s=duration_s)
    except (ValueError, ScenarioError, SimulatorError) as exc:
        raise CliError(str(exc)) from None
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    configure_logging("error")
    outcome = run_virtual_sync(chosen, database)
    if as_json:
        keys = (
            "sessions",
            "energy_wh",
            "messages",
            "faults",
            "revenue",
            "reconciliation",
            "chargers",
            "simulated_s",
            "wall_s",
            "speedup",
        )
        sys.stdout.write(orjson.dumps({k: outcome.summary.get(k) for k in keys}).decode() + "\n")
    else:
        print_summary(outcome.summary, None)
        typer.echo(
            f"ledger: {database} (CSMS_DATABASE_URL=sqlite:///{database} csms sessions list)"
        )


# -- db --------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations to the configured database (CSMS_DATABASE_URL, SQLite or
    PostgreSQL) and print the version reached; `csms serve` does the same at start."""
    from csms.storage.database import upgrade_database

    version = upgrade_database(cli_settings().database_url)
    typer.echo(f"database schema at version {version}")


# -- stations ------------------------------------------------------------------------------

_STATION_COLUMNS = [
    "id",
    "registered",
    "registration_status",
    "vendor",
    "model",
    "firmware_version",
    "online",
    "last_heartbeat_at",
]


@stations_app.command("add")
def stations_add(
    station_id: Annotated[str, typer.Argument(metavar="ID")],
    security_profile: Annotated[
        int, typer.Option(min=0, max=3, help="0 none, 1 Basic, 2 TLS + Basic, 3 client cert.")
    ] = 0,
    password: Annotated[
        str | None,
        typer.Option(help="Profiles 1 and 2: 16-40 characters (default: a generated one)."),
    ] = None,
) -> None:
    """Register a station: it is accepted at its next boot.

    For profiles 1 and 2 a generated password is printed once, as the last word of the last
    line; only its hash is stored.
    """
    try:
        validate_station_id(station_id)
        if password is not None and security_profile not in (1, 2):
            raise CliError("--password is for security profiles 1 and 2")
        generated = password is None and security_profile in (1, 2)
        if generated:
            password = generate_password()
        password_hash = hash_password(password) if password is not None else None
    except (BadStationId, BadPassword) as exc:
        raise CliError(str(exc)) from None
    with open_cli_store() as store:
        added = store.add_station(station_id, security_profile, password_hash)
    if not added:
        if password_hash is not None:
            raise CliError(f"station {station_id} was already registered; nothing was changed")
        typer.echo(f"station {station_id} was already registered")
        return
    profile = f" (security profile {security_profile})" if security_profile else ""
    typer.echo(f"station {station_id} registered{profile}")
    if generated:
        typer.echo(f"password (shown only now): {password}")


@stations_app.command("set-password")
def stations_set_password(
    station_id: Annotated[str, typer.Argument(metavar="ID")],
    password: Annotated[
        str | None, typer.Option(help="16-40 characters (default: a generated one).")
    ] = None,
) -> None:
    """Set (or reset) the password of a profile 1 or 2 station; it takes effect at the
    station's next connection. A generated password is printed once."""
    generated = password is None
    chosen = password if password is not None else generate_password()
    try:
        password_hash = hash_password(chosen)
    except BadPassword as exc:
        raise CliError(str(exc)) from None
    with open_cli_store() as store:
        profile = store.set_station_password(station_id, password_hash)
    if profile not in (1, 2):
        raise CliError(
            f"station {station_id} has security profile {profile}: passwords are for 1 and 2"
        )
    typer.echo(f"password of station {station_id} set")
    if generated:
        typer.echo(f"password (shown only now): {chosen}")


@stations_app.command("import")
def stations_import(
    file: Annotated[Path, typer.Argument(metavar="FILE.csv")],
    password: Annotated[
        str | None,
        typer.Option(
            envvar="CSMS_IMPORT_PASSWORD",
            help="The password of every profile 1/2 row without one of its own (16-40 chars).",
        ),
    ] = None,
) -> None:
    """Register stations from a CSV file with a header `id[,security_profile][,password]`.

    Profile 1 and 2 stations log in with a password: their row's, or `--password` for all
    those without one (hashed once: thousands of stations register in a moment); one with
    neither can log in once `stations set-password` gave it one. Only hashes are stored, and
    passwords are never printed. Stations already registered are left as they are.
    """
    rows = _read_csv(file, required={"id"})
    if password is not None:
        try:
            validate_password(password)
        except BadPassword as exc:
            raise CliError(f"--password: {exc}") from None
    stations: list[tuple[str, int, str | None]] = []
    for line, row in rows:
        try:
            profile = int(row.get("security_profile") or 0)
            if not 0 <= profile <= 3:
                raise ValueError
            station_id = validate_station_id(row["id"])
        except BadStationId as exc:
            raise CliError(f"{file}:{line}: {exc}") from None
        except ValueError:
            raise CliError(f"{file}:{line}: security_profile must be 0-3") from None
        own = row.get("password") or None
        if own is not None and profile not in (1, 2):
            raise CliError(f"{file}:{line}: a password is for security profiles 1 and 2")
        chosen = (own or password) if profile in (1, 2) else None
        if chosen is not None:
            try:
                validate_password(chosen)
            except BadPassword as exc:
                raise CliError(f"{file}:{line}: {exc}") from None
        stations.append((station_id, profile, chosen))
    hashes = _hash_all({chosen for _, _, chosen in stations if chosen is not None})
    groups: dict[str | None, list[tuple[str, int]]] = {}
    for station_id, profile, chosen in stations:
        key = hashes[chosen] if chosen is not None else None
        groups.setdefault(key, []).append((station_id, profile))
    with open_cli_store() as store:
        added = sum(store.add_stations(group, hashed) for hashed, group in groups.items())
    typer.echo(f"{added} stations registered, {len(rows) - added} already known")
    without = sum(1 for _, profile, chosen in stations if profile in (1, 2) and chosen is None)
    if without:
        typer.echo(
            f"note: {without} profile 1/2 stations have no password and cannot log in until "
            "`csms stations set-password ID` gives them one",
            err=True,
        )


def _hash_all(passwords: set[str]) -> dict[str, str]:
    """Each distinct password's hash, on every core (scrypt lets go of the GIL); a progress
    bar when there are many (each costs tens of milliseconds)."""
    with (
        ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool,
        Progress(
            console=Console(stderr=True), transient=True, disable=len(passwords) < 100
        ) as progress,
    ):
        ordered = sorted(passwords)
        task = progress.add_task("hashing passwords", total=len(ordered))
        hashes: dict[str, str] = {}
        for plain, hashed in zip(ordered, pool.map(hash_password, ordered), strict=True):
            hashes[plain] = hashed
            progress.advance(task)
    return hashes


@stations_app.command("list")
def stations_list(fmt: FormatOption = OutputFormat.table) -> None:
    """List stations."""
    with open_cli_store() as store:
        print_rows(store.list_stations(), fmt, _STATION_COLUMNS)


@stations_app.command("show")
def stations_show(
    station_id: Annotated[str, typer.Argument(metavar="ID")], fmt: FormatOption = OutputFormat.table
) -> None:
    """Show a station with its connectors."""
    with open_cli_store() as store:
        station = store.get_station(station_id)
    if station is None:
        raise CliError(f"no station {station_id!r}")
    if fmt is OutputFormat.json:
        print_rows(station, fmt, [])
        return
    connectors = station.pop("connectors")
    print_rows([{"field": k, "value": v} for k, v in station.items()], fmt, ["field", "value"])
    print_rows(connectors, fmt, ["connector_id", "status", "error_code", "info", "updated_at"])


# -- tokens --------------------------------------------------------------------------------

_TOKEN_COLUMNS = ["id_tag", "status", "expiry", "parent_id_tag", "max_active_transactions"]


class TokenStatus(StrEnum):
    Accepted = "Accepted"
    Blocked = "Blocked"
    Expired = "Expired"
    Invalid = "Invalid"


@tokens_app.command("add")
def tokens_add(
    id_tag: Annotated[str, typer.Argument(metavar="TAG")],
    status: Annotated[TokenStatus, typer.Option()] = TokenStatus.Accepted,
    expiry: Annotated[str | None, typer.Option(help="ISO 8601 date or date-time.")] = None,
    parent: Annotated[str | None, typer.Option(help="Parent (group) id tag.")] = None,
    max_active: Annotated[
        int | None, typer.Option(min=1, help="Maximum concurrent transactions.")
    ] = None,
) -> None:
    """Add or update an id token."""
    with open_cli_store() as store:
        store.upsert_token(id_tag, status.value, parse_date(expiry, "--expiry"), parent, max_active)
    typer.echo(f"token {id_tag} saved ({status.value})")


@tokens_app.command("import")
def tokens_import(file: Annotated[Path, typer.Argument(metavar="FILE.csv")]) -> None:
    """Add tokens from a CSV file.

    Header: `id_tag[,status,expiry,parent_id_tag,max_active_transactions]`.
    """
    rows = _read_csv(file, required={"id_tag"})
    tokens: list[TokenRow] = []
    for line, row in rows:
        max_active_text = row.get("max_active_transactions") or ""
        try:
            token = TokenRow(
                row["id_tag"],
                row.get("status") or "Accepted",
                parse_date(row.get("expiry"), "expiry"),
                row.get("parent_id_tag") or None,
                int(max_active_text) if max_active_text else None,
            )
            token.check()
        except ValueError:
            raise CliError(f"{file}:{line}: max_active_transactions must be a number") from None
        except (StoreError, CliError) as exc:
            raise CliError(f"{file}:{line}: {exc}") from None
        tokens.append(token)
    with open_cli_store() as store:
        store.upsert_tokens(tokens)
    typer.echo(f"{len(tokens)} tokens imported")


@tokens_app.command("list")
def tokens_list(fmt: FormatOption = OutputFormat.table) -> None:
    """List id tokens."""
    with open_cli_store() as store:
        print_rows(store.list_tokens(), fmt, _TOKEN_COLUMNS)


@tokens_app.command("block")
def tokens_block(id_tag: Annotated[str, typer.Argument(metavar="TAG")]) -> None:
    """Block an id token: it is refused from now on."""
    with open_cli_store() as store:
        store.set_token_status(id_tag, "Blocked")
    typer.echo(f"token {id_tag} blocked")


# -- sessions ------------------------------------------------------------------------------

_SESSION_COLUMNS = [
    "id",
    "station_id",
    "connector_id",
    "id_tag",
    "started_at",
    "ended_at",
    "energy_wh",
    "status",
]


@sessions_app.command("list")
def sessions_list(
    fmt: FormatOption = OutputFormat.table,
    station: Annotated[str | None, typer.Option(help="Only this station.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Active, Completed, Interrupted, Unmatched.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """List sessions, newest first."""
    with open_cli_store() as store:
        print_rows(
            store.list_sessions(station_id=station, status=status, limit=limit),
            fmt,
            _SESSION_COLUMNS,
        )


@sessions_app.command("show")
def sessions_show(
    session_id: Annotated[int, typer.Argument(metavar="ID")], fmt: FormatOption = OutputFormat.table
) -> None:
    """Show a session with its meter samples."""
    with open_cli_store() as store:
        session = store.get_session(session_id)
        if session is not None and session["status"] == "Active":
            session["live_cost"] = live_cost(
                store, session_id, datetime.now(UTC), cli_settings().billing_rules()
            )
    if session is None:
        raise CliError(f"no session {session_id}")
    if fmt is OutputFormat.json:
        print_rows(session, fmt, [])
        return
    samples = session.pop("meter_samples")
    print_rows([{"field": k, "value": v} for k, v in session.items()], fmt, ["field", "value"])
    print_rows(
        samples, fmt, ["timestamp", "measurand", "phase", "value", "unit", "context", "anomaly"]
    )


# -- helpers -------------------------------------------------------------------------------


def _read_csv(file: Path, required: set[str]) -> list[tuple[int, dict[str, str]]]:
    """The rows of a CSV file with their line numbers; nothing is written until all parse."""
    try:
        with file.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = set(reader.fieldnames or [])
            if not required <= header:
                raise CliError(f"{file}: header must have {', '.join(sorted(required))}")
            return [
                (reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
                for row in reader
            ]
    except FileNotFoundError:
        raise CliError(f"{file}: no such file") from None
    except OSError as exc:  # a directory, no permission, ...
        raise CliError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CliError(f"{file}: not a readable CSV file: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning every refusal into one line and an exit code."""
    run_app(app, argv, "csms", (CliError, ConfigError, StoreError))
