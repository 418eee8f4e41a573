"""The `simulator` command line: run a scenario (virtual time or wire mode), report results.

    simulator run [SCENARIO] [--url ws://...|wss://...] [--virtual-time] [--chargers N]
                  [--duration 1d] [--seed S] [--out DIR] [--json] [--ledger sqlite:///PATH]
                  [--password PW | --password-file FILE.csv] [--ca-file CA.pem]
                  [--client-cert C.pem --client-key K.pem | --cert-dir DIR]
    simulator registrations [SCENARIO] [--out DIR] [--security-profile N]
    simulator report DIR

Wire mode speaks OCPP security profiles 1-3: HTTP Basic with one password for every charger
(`--password`, or the environment variable SIMULATOR_PASSWORD) or one per charger
(`--password-file`, a CSV with the header `id,password`), wss:// URLs trusting `--ca-file`,
and client certificates (`--client-cert`/`--client-key` for one charger, `--cert-dir` with
`ID.pem` and `ID.key` per charger for a fleet).

SCENARIO is a TOML file or the name of a shipped one (city, depot, highway, faulty).
Refusals end in one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import orjson
import trio
import trio.testing
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from csms.cli_runner import new_app, run_app
from csms.logs import configure_logging
from simulator.fleet import plan_fleet
from simulator.results import ResultsError, load_results
from simulator.run import RunOutcome, run_virtual, run_wire, save_outcome
from simulator.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    parse_duration,
    shipped_scenario,
)
from simulator.transport import ClientSecurity

app = new_app("Fleet simulator: virtual chargers and drivers over real OCPP.")


class CliError(Exception):
    """A mistake of the caller, reported as one line."""


def resolve_scenario(name_or_path: str) -> Scenario:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load_scenario(path)
    return load_scenario(shipped_scenario(name_or_path))


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="TOML file or shipped name.")] = "city",
    url: Annotated[
        str | None, typer.Option(help="Wire mode: the CSMS's ws://HOST:PORT/ocpp.")
    ] = None,
    virtual_time: Annotated[
        bool, typer.Option("--virtual-time", help="Run this CSMS in process on virtual time.")
    ] = False,
    chargers: Annotated[int | None, typer.Option(min=1, max=1_000_000)] = None,
    duration: Annotated[str | None, typer.Option(help="e.g. 90m, 6h, 1d, 1w")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write Parquet results and summary here.")
    ] = None,
    ledger: Annotated[
        str | None, typer.Option(help="Wire mode: sqlite:///PATH of the CSMS, to reconcile.")
    ] = None,
    rate: Annotated[
        float,
        typer.Option(
            min=0.001,
            max=10_000,
            help="Wire mode: simulated seconds per real second (10 runs an hour in 6 min).",
        ),
    ] = 1.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with a one-line JSON summary.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="SIMULATOR_PASSWORD", help="Wire mode: every charger's Basic password."
        ),
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option(help="Wire mode: per-charger passwords, CSV `id,password`.")
    ] = None,
    ca_file: Annotated[Path | None, typer.Option(help="wss://: the CA to trust (PEM).")] = None,
    client_cert: Annotated[
        Path | None, typer.Option(help="wss://: a client certificate (PEM), profile 3.")
    ] = None,
    client_key: Annotated[Path | None, typer.Option(help="The client certificate's key.")] = None,
    cert_dir: Annotated[
        Path | None, typer.Option(help="wss://: per-charger certificates ID.pem and ID.key.")
    ] = None,
) -> None:
    """Run a scenario and reconcile what the chargers did with the CSMS ledger."""
    if url is not None and virtual_time:
        raise CliError("--url (wire mode) and --virtual-time exclude each other")
    security = client_security(password, password_file, ca_file, client_cert, client_key, cert_dir)
    if security is not None and url is None:
        raise CliError("credentials and TLS options apply to wire mode (--url)")
    if rate != 1.0 and url is None:
        raise CliError("--rate applies to wire mode (--url); virtual time runs as fast as it can")
    try:
        duration_s = parse_duration(duration) if duration is not None else None
    except ValueError as exc:
        raise CliError(f"--duration: {exc}") from None
    chosen = resolve_scenario(scenario).with_overrides(
        chargers=chargers, duration_s=duration_s, seed=seed
    )
    configure_logging("error")
    outcome = _run(chosen, url, ledger, rate, quiet or as_json, security)
    if out is not None:
        save_outcome(outcome, out)
    if as_json:
        sys.stdout.write(orjson.dumps(_json_summary(outcome.summary)).decode() + "\n")
    else:
        print_summary(outcome.summary, out)
    reconciliation = outcome.summary.get("reconciliation")
    if reconciliation is not None and not reconciliation["exact"]:
        raise typer.Exit(3)


def client_security(
    password: str | None,
    password_file: Path | None,
    ca_file: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
    cert_dir: Path | None,
) -> ClientSecurity | None:
    """The wire-mode chargers' credentials from the options (None: no security options)."""
    if not any((password, password_file, ca_file, client_cert, client_key, cert_dir)):
        return None
    for option, path in (
        ("--password-file", password_file),
        ("--ca-file", ca_file),
        ("--client-cert", client_cert),
        ("--client-key", client_key),
    ):
        if path is not None and not path.is_file():
            raise CliError(f"{option}: no such file {path}")
    if cert_dir is not None and not cert_dir.is_dir():
        raise CliError(f"--cert-dir: no such directory {cert_dir}")
    if (client_cert is None) != (client_key is None):
        raise CliError("--client-cert and --client-key go together")
    if client_cert is not None and cert_dir is not None:
        raise CliError("--client-cert and --cert-dir exclude each other")
    return ClientSecurity(
        password=password,
        passwords=read_passwords(password_file) if password_file is not None else {},
        ca_file=ca_file,
        client_cert=client_cert,
        client_key=client_key,
        cert_dir=cert_dir,
    )


def read_passwords(path: Path) -> dict[str, str]:
    """Per-charger passwords from a CSV file with the header `id,password`."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"id", "password"} <= set(reader.fieldnames):
                raise CliError(f"{path}: the header must be id,password")
            passwords = {row["id"]: row["password"] for row in reader}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CliError(f"{path}: cannot read: {exc}") from None
    if any(not station or not secret for station, secret in passwords.items()):
        raise CliError(f"{path}: every row needs an id and a password")
    return passwords


def _run(
    scenario: Scenario,
    url: str | None,
    ledger: str | None,
    rate: float,
    quiet: bool,
    security: ClientSecurity | None = None,
) -> RunOutcome:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}% of simulated time"),
        TimeElapsedColumn(),
        disable=quiet,
        transient=True,
    )
    with progress:
        task = progress.add_task(scenario.name, total=scenario.duration_s)

        def advance(simulated_s: float) -> None:
            progress.update(task, completed=simulated_s)

        if url is None:
            with tempfile.TemporaryDirectory(prefix="simulator-") as workdir:
                outcome: RunOutcome = trio.run(
                    lambda: run_virtual(scenario, Path(workdir) / "ledger.db", progress=advance),
                    clock=trio.testing.MockClock(autojump_threshold=0),
                )
            return outcome
        try:
            # At a rate multiple every timer of the fleet (heartbeats, meter values, dwell
            # times, call timeouts) runs on a clock that passes `rate` times faster.
            clock = trio.testing.MockClock(rate=rate) if rate != 1.0 else None
            wired: RunOutcome = trio.run(
                lambda: run_wire(
                    scenario, url, ledger_url=ledger, progress=advance, security=security
                ),
                clock=clock,
            )
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise CliError(f"wire mode against {url} failed: {_first_line(exc)}") from None
        return wired


def _first_line(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _json_summary(summary: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "sessions",
        "energy_wh",
        "messages",
        "reconciliation",
        "chargers",
        "simulated_s",
        "wall_s",
        "speedup",
        "faults",
        "refusals",
        "turned_away",
        "revenue",
    )
    return {key: summary.get(key) for key in keys}


def print_summary(summary: dict[str, Any], out: Path | None) -> None:
    table = Table("", "value", title=f"scenario {summary.get('scenario', '')}")
    for key in (
        "chargers",
        "simulated_s",
        "wall_s",
        "speedup",
        "arrivals",
        "plugged",
        "turned_away",
        "refusals",
        "sessions",
        "energy_wh",
        "messages",
    ):
        table.add_row(key, str(summary.get(key)))
    table.add_row(
        "faults", ", ".join(f"{k} {v}" for k, v in sorted(summary["faults"].items())) or "-"
    )
    revenue = summary.get("revenue")
    if revenue is not None:
        table.add_row(
            "revenue (incl. VAT)",
            ", ".join(f"{total} {currency}" for currency, total in revenue.items()) or "-",
        )
    reconciliation = summary.get("reconciliation")
    if reconciliation is None:
        table.add_row("reconciliation", "not run (wire mode without --ledger)")
    else:
        for key in (
            "lost_sessions",
            "duplicate_sessions",
            "energy_diff_wh",
            "amount_diff",
            "unexpected_sessions",
        ):
            if key in reconciliation:
                table.add_row(key, str(reconciliation[key]))
        table.add_row("reconciled exactly", "yes" if reconciliation["exact"] else "NO")
    if out is not None:
        table.add_row("results", str(out))
    Console(width=120).print(table)


@app.command()
def registrations(
    scenario: Annotated[str, typer.Argument(help="TOML file or shipped name.")] = "city",
    out: Annotated[Path, typer.Option(help="Directory for stations.csv and tokens.csv.")] = Path(
        "."
    ),
    chargers: Annotated[int | None, typer.Option(min=1, max=1_000_000)] = None,
    security_profile: Annotated[
        int, typer.Option(min=0, max=3, help="The stations' OCPP security profile.")
    ] = 0,
) -> None:
    """Write the scenario's stations and tokens as CSV, for `csms stations|tokens import`
    before a wire-mode run (valid tokens Accepted, blocked ones Blocked; invalid ones are
    left out on purpose)."""
    plan = plan_fleet(resolve_scenario(scenario).with_overrides(chargers=chargers))
    out.mkdir(parents=True, exist_ok=True)
    with (out / "stations.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "security_profile"])
        writer.writerows([s.station_id, security_profile] for s in plan.stations)
    with (out / "tokens.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id_tag", "status"])
        writer.writerows([tag, "Accepted"] for tag in plan.tokens.valid)
        writer.writerows([tag, "Blocked"] for tag in plan.tokens.blocked)
    typer.echo(
        f"wrote {out / 'stations.csv'} ({len(plan.stations)} stations) and "
        f"{out / 'tokens.csv'} ({len(plan.tokens.valid) + len(plan.tokens.blocked)} tokens)"
    )


@app.command()
def report(directory: Annotated[Path, typer.Argument(metavar="DIR")]) -> None:
    """Summarise a results directory written by `simulator run --out DIR`."""
    frames, summary = load_results(directory)
    print_summary(summary, directory)
    sessions = frames.get("sessions")
    if sessions is not None and not sessions.empty:
        per_station = (
            sessions.groupby("station_id")
            .agg(sessions=("connector_id", "size"), energy_wh=("energy_wh", "sum"))
            .sort_values("energy_wh", ascending=False)
            .head(10)
        )
        table = Table("station", "sessions", "energy_wh", title="top stations by energy")
        for station, row in per_station.iterrows():
            table.add_row(str(station), str(int(row["sessions"])), str(int(row["energy_wh"])))
        Console(width=120).print(table)
    differences = frames.get("differences")
    if differences is not None and not differences.empty:
        table = Table(*differences.columns, title="reconciliation differences")
        for _, row in differences.head(50).iterrows():
            table.add_row(*(str(v) for v in row))
        Console(width=160).print(table)


def main(argv: list[str] | None = None) -> None:
    run_app(app, argv, "simulator", (CliError, ScenarioError, ResultsError))
