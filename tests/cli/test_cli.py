"""The `csms` command line: stations, tokens, sessions, configuration and its errors.

Most cases call `csms.cli.main(argv)` in-process (it always ends in SystemExit); a few run
`python -m csms` as a real subprocess, where "no traceback" is what an operator sees. The
last tests run the CLI against the database of a running `csms serve`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from support.charger import connect_charger, ts
from support.server_process import csms_env, run_cli, running_server
from support.sessions import SESSION_FIELDS as LISTED_FIELDS

from csms.cli import main
from csms.config import load_settings
from csms.domain.ledger import UnknownStationPolicy
from csms.runtime.server import Csms
from csms.storage.sqlite import SqliteStore

SESSION_FIELDS = {"id", *LISTED_FIELDS}


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)


Cli = Callable[..., Outcome]


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    """`csms ARGS` in-process on `tmp_path/csms.db`, with no stray CSMS_* settings."""
    for name in [n for n in os.environ if n.startswith("CSMS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CSMS_DATABASE_URL", f"sqlite:///{tmp_path / 'csms.db'}")
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Outcome:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        captured = capsys.readouterr()
        code = exit_info.value.code
        return Outcome(
            code if isinstance(code, int) else (0 if code is None else 1),
            captured.out,
            captured.err,
        )

    yield run


def assert_one_line_error(outcome: Outcome | subprocess.CompletedProcess[str], *parts: str) -> str:
    """A refusal: non-zero exit, nothing on stdout, one `csms: error:` line, no traceback."""
    if isinstance(outcome, subprocess.CompletedProcess):
        outcome = Outcome(outcome.returncode, outcome.stdout, outcome.stderr)
    assert outcome.code != 0, outcome
    assert "Traceback" not in outcome.err
    assert outcome.out == ""
    lines = outcome.err.splitlines()
    assert len(lines) == 1, outcome.err
    assert lines[0].startswith("csms: error: "), lines[0]
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


# -- stations ------------------------------------------------------------------------------


def test_stations_add_list_show(cli: Cli) -> None:
    assert cli("stations", "add", "CP-1").out == "station CP-1 registered\n"
    assert cli("stations", "add", "CP-2", "--security-profile", "2").code == 0
    again = cli("stations", "add", "CP-1")
    assert (again.code, again.out) == (0, "station CP-1 was already registered\n")

    listed = cli("stations", "list", "--format", "json").json()
    assert [(s["id"], s["registered"], s["security_profile"]) for s in listed] == [
        ("CP-1", 1, 0),
        ("CP-2", 1, 2),
    ]
    table = cli("stations", "list")
    assert table.code == 0
    assert "registration_status" in table.out
    assert "CP-1" in table.out and "CP-2" in table.out

    shown = cli("stations", "show", "CP-2", "--format", "json").json()
    assert (shown["id"], shown["security_profile"], shown["connectors"]) == ("CP-2", 2, [])
    shown_table = cli("stations", "show", "CP-2")
    assert shown_table.code == 0
    assert "security_profile" in shown_table.out and "connector_id" in shown_table.out

    assert_one_line_error(cli("stations", "show", "CP-9"), "no station 'CP-9'")


@pytest.mark.parametrize("bad_id", ["has space", "x" * 49, "slash/id", "ünïcode"])
def test_invalid_station_id_is_refused(cli: Cli, bad_id: str) -> None:
    assert_one_line_error(cli("stations", "add", bad_id), "charge point id")
    assert cli("stations", "list", "-f", "json").json() == []


def test_stations_import(cli: Cli, tmp_path: Path) -> None:
    assert cli("stations", "add", "CP-OLD").code == 0
    csv_file = tmp_path / "stations.csv"
    csv_file.write_text("id,security_profile\nCP-A,1\nCP-B,\nCP-OLD,0\n")
    imported = cli("stations", "import", str(csv_file))
    assert (imported.code, imported.out) == (0, "2 stations registered, 1 already known\n")
    listed = cli("stations", "list", "-f", "json").json()
    assert {s["id"]: s["security_profile"] for s in listed} == {
        "CP-A": 1,
        "CP-B": 0,
        "CP-OLD": 0,
    }


@pytest.mark.parametrize(
    ("content", "where", "message"),
    [
        ("name,security_profile\nCP-A,1\n", "", "header must have id"),
        ("", "", "header must have id"),
        ("id\nCP-A\nbad id\n", ":3", "charge point id may hold only"),
        ("id,security_profile\nCP-A,7\n", ":2", "security_profile must be 0-3"),
        ("id,security_profile\nCP-A,1\nCP-B,one\n", ":3", "security_profile must be 0-3"),
        ("id\n,\n", ":2", "charge point id is empty"),
    ],
)
def test_stations_import_names_file_and_line(
    cli: Cli, tmp_path: Path, content: str, where: str, message: str
) -> None:
    csv_file = tmp_path / "stations.csv"
    csv_file.write_text(content)
    assert_one_line_error(cli("stations", "import", str(csv_file)), f"{csv_file}{where}: ", message)


def test_stations_import_unreadable_files(cli: Cli, tmp_path: Path) -> None:
    assert_one_line_error(cli("stations", "import", str(tmp_path / "nope.csv")), "no such file")
    # A directory (found by this test: it used to end in an IsADirectoryError traceback).
    assert_one_line_error(cli("stations", "import", str(tmp_path)), str(tmp_path), "cannot read")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"id\n\xff\xfe\x00\n")
    assert_one_line_error(cli("tokens", "import", str(binary)), "not a readable CSV")


# -- tokens --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["Accepted", "Blocked", "Expired", "Invalid"])
def test_tokens_add_each_status(cli: Cli, status: str) -> None:
    added = cli("tokens", "add", "TAG-1", "--status", status)
    assert (added.code, added.out) == (0, f"token TAG-1 saved ({status})\n")
    assert [(t["id_tag"], t["status"]) for t in cli("tokens", "list", "-f", "json").json()] == [
        ("TAG-1", status)
    ]


def test_tokens_add_with_expiry_parent_and_limit(cli: Cli) -> None:
    assert cli("tokens", "add", "FLEET").code == 0
    added = cli(
        "tokens",
        "add",
        "CARD-7",
        "--expiry",
        "2030-06-01",
        "--parent",
        "FLEET",
        "--max-active",
        "2",
    )
    assert added.code == 0, added.err
    tokens = {t["id_tag"]: t for t in cli("tokens", "list", "--format", "json").json()}
    assert tokens["CARD-7"]["status"] == "Accepted"
    assert tokens["CARD-7"]["expiry"] == "2030-06-01T00:00:00.000000+00:00"
    assert tokens["CARD-7"]["parent_id_tag"] == "FLEET"
    assert tokens["CARD-7"]["max_active_transactions"] == 2
    # Adding again updates in place.
    assert cli("tokens", "add", "CARD-7", "--status", "Expired").code == 0
    tokens = {t["id_tag"]: t for t in cli("tokens", "list", "--format", "json").json()}
    assert (tokens["CARD-7"]["status"], tokens["CARD-7"]["expiry"]) == ("Expired", None)
    table = cli("tokens", "list")
    assert "CARD-7" in table.out and "Expired" in table.out and "max_active" in table.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "Revoked"], "--status"),
        (["--status", "accepted"], "--status"),
        (["--expiry", "next tuesday"], "--expiry must be an ISO 8601 date"),
        (["--expiry", "2030-13-01"], "--expiry must be an ISO 8601 date"),
        (["--max-active", "0"], "--max-active"),
        (["--max-active", "many"], "--max-active"),
    ],
)
def test_tokens_add_refuses_bad_options(cli: Cli, args: list[str], message: str) -> None:
    assert_one_line_error(cli("tokens", "add", "TAG-X", *args), message)
    assert cli("tokens", "list", "-f", "json").json() == []


def test_tokens_add_refuses_overlong_tag(cli: Cli) -> None:
    assert_one_line_error(cli("tokens", "add", "T" * 21), "1 to 20 characters")
    assert cli("tokens", "list", "-f", "json").json() == []


def test_tokens_import(cli: Cli, tmp_path: Path) -> None:
    csv_file = tmp_path / "tokens.csv"
    csv_file.write_text(
        "id_tag,status,expiry,parent_id_tag,max_active_transactions\n"
        "GROUP,,,,\n"
        "CARD-1,Accepted,2031-01-01T12:00:00+02:00,GROUP,1\n"
        "CARD-2,Blocked,,,\n"
        "CARD-3,Expired,,,\n"
        "CARD-4,Invalid,,,\n"
    )
    imported = cli("tokens", "import", str(csv_file))
    assert (imported.code, imported.out) == (0, "5 tokens imported\n")
    tokens = {t["id_tag"]: t for t in cli("tokens", "list", "-f", "json").json()}
    assert {tag: t["status"] for tag, t in tokens.items()} == {
        "GROUP": "Accepted",
        "CARD-1": "Accepted",
        "CARD-2": "Blocked",
        "CARD-3": "Expired",
        "CARD-4": "Invalid",
    }
    assert tokens["CARD-1"]["expiry"] == "2031-01-01T10:00:00.000000+00:00"
    assert tokens["CARD-1"]["parent_id_tag"] == "GROUP"
    assert tokens["CARD-1"]["max_active_transactions"] == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("CARD-9,Revoked,,,", "status must be one of Accepted, Blocked, Expired, Invalid"),
        ("CARD-9,Accepted,soon,,", "expiry must be an ISO 8601"),
        ("CARD-9,Accepted,,,lots", "max_active_transactions must be a number"),
        ("CARD-9,Accepted,,,0", "max active transactions must be at least 1"),
        ("CARD-9-IS-FAR-TOO-LONG-FOR-OCPP,,,,", "1 to 20 characters"),
    ],
)
def test_tokens_import_names_file_and_line(
    cli: Cli, tmp_path: Path, row: str, message: str
) -> None:
    csv_file = tmp_path / "tokens.csv"
    csv_file.write_text(
        f"id_tag,status,expiry,parent_id_tag,max_active_transactions\nGOOD,,,,\n{row}\n"
    )
    assert_one_line_error(cli("tokens", "import", str(csv_file)), f"{csv_file}:3: ", message)
    missing = tmp_path / "no_header.csv"
    missing.write_text("tag,status\nX,Accepted\n")
    assert_one_line_error(cli("tokens", "import", str(missing)), "header must have id_tag")


def test_tokens_block(cli: Cli) -> None:
    assert cli("tokens", "add", "CARD-1").code == 0
    blocked = cli("tokens", "block", "CARD-1")
    assert (blocked.code, blocked.out) == (0, "token CARD-1 blocked\n")
    assert cli("tokens", "list", "-f", "json").json()[0]["status"] == "Blocked"
    assert_one_line_error(cli("tokens", "block", "NOBODY"), "no id token 'NOBODY'")


# -- usage errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["launch"], "No such command 'launch'"),
        (["stations", "remove", "CP-1"], "No such command 'remove'"),
        (["stations", "add"], "Missing argument 'ID'"),
        (["tokens", "add"], "Missing argument 'TAG'"),
        (["sessions", "show"], "Missing argument 'ID'"),
        (["sessions", "show", "abc"], "Invalid value for 'ID'"),
        (["stations", "list", "--format", "xml"], "Invalid value for '--format'"),
        (["sessions", "list", "--limit", "0"], "--limit"),
        (["tokens", "list", "--colour"], "No such option"),
    ],
)
def test_usage_errors_are_one_line(cli: Cli, args: list[str], message: str) -> None:
    outcome = cli(*args)
    assert outcome.code == 2
    assert_one_line_error(outcome, message)


# -- sessions ------------------------------------------------------------------------------


async def test_sessions_list_and_show(cli: Cli, csms: Csms) -> None:
    async with connect_charger(csms.ocpp_port, "CP-A") as charger:
        assert (await charger.boot())[2]["status"] == "Accepted"
        first = (
            await charger.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": "TAG-A", "meterStart": 1_000, "timestamp": ts()},
            )
        )[2]["transactionId"]
        await charger.call(
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": first,
                "meterValue": [
                    {
                        "timestamp": ts(300),
                        "sampledValue": [{"value": "2.5", "unit": "kWh"}],
                    }
                ],
            },
        )
        stop = await charger.call(
            "StopTransaction",
            {"transactionId": first, "meterStop": 4_000, "timestamp": ts(600), "reason": "Local"},
        )
        assert stop[0] == 3
        second = (
            await charger.call(
                "StartTransaction",
                {"connectorId": 2, "idTag": "TAG-B", "meterStart": 50, "timestamp": ts(700)},
            )
        )[2]["transactionId"]
    async with connect_charger(csms.ocpp_port, "CP-B") as charger:
        await charger.boot()
        third = (
            await charger.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": "TAG-A", "meterStart": 0, "timestamp": ts(800)},
            )
        )[2]["transactionId"]
        await charger.call(
            "StopTransaction", {"transactionId": third, "meterStop": 900, "timestamp": ts(900)}
        )

    sessions = cli("sessions", "list", "--format", "json").json()
    assert [s["id"] for s in sessions] == [third, second, first]  # newest first
    for session in sessions:
        assert set(session) >= SESSION_FIELDS
    by_id = {s["id"]: s for s in sessions}
    assert {k: by_id[first][k] for k in SESSION_FIELDS} == {
        "id": first,
        "station_id": "CP-A",
        "connector_id": 1,
        "id_tag": "TAG-A",
        "started_at": "2026-01-05T08:00:00.000000+00:00",
        "ended_at": "2026-01-05T08:10:00.000000+00:00",
        "meter_start_wh": 1_000,
        "meter_stop_wh": 4_000,
        "energy_wh": 3_000,
        "status": "Completed",
    }
    # An open session: no end yet, energy so far from its last register reading.
    assert (by_id[second]["status"], by_id[second]["ended_at"]) == ("Active", None)
    assert (by_id[second]["meter_stop_wh"], by_id[second]["energy_wh"]) == (None, 0)

    only_b = cli("sessions", "list", "--station", "CP-B", "-f", "json").json()
    assert [s["id"] for s in only_b] == [third]
    active = cli("sessions", "list", "--status", "Active", "-f", "json").json()
    assert [s["id"] for s in active] == [second]
    newest = cli("sessions", "list", "--limit", "1", "-f", "json").json()
    assert [s["id"] for s in newest] == [third]
    table = cli("sessions", "list")
    assert table.code == 0
    assert "energy_wh" in table.out and "CP-A" in table.out and "Completed" in table.out

    shown = cli("sessions", "show", str(first), "--format", "json").json()
    assert {k: shown[k] for k in SESSION_FIELDS} == {k: by_id[first][k] for k in SESSION_FIELDS}
    assert shown["stop_reason"] == "Local"
    assert [(m["value"], m["unit"], m["wh"]) for m in shown["meter_samples"]] == [
        ("2.5", "kWh", 2_500.0)
    ]
    shown_table = cli("sessions", "show", str(first))
    assert shown_table.code == 0
    assert "meter_start_wh" in shown_table.out and "2.5" in shown_table.out

    assert_one_line_error(cli("sessions", "show", "999"), "no session 999")


def test_sessions_on_an_empty_database(cli: Cli) -> None:
    assert cli("sessions", "list", "--format", "json").json() == []
    assert_one_line_error(cli("sessions", "show", "999"), "no session 999")


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[ocpp\nport = 9000\n", "is not valid TOML"),
        ("[ocpp]\nport = \n", "is not valid TOML"),
        ("[ocpp]\nprot = 9000\n", "unknown key ocpp.prot"),
        ("[databse]\nurl = 'sqlite:///x.db'\n", "unknown key databse.url"),
        ("port = 9000\n", "top-level key 'port' must be a [section]"),
        ("[ocpp]\nport = 'nine thousand'\n", "ocpp_port"),
        ("[ocpp]\nport = 70000\n", "ocpp_port"),
        ("[ocpp]\nheartbeat_interval = 0\n", "heartbeat_interval"),
        ("[stations]\nunknown = 'maybe'\n", "unknown_stations"),
        ("[log]\nlevel = 'loud'\n", "log_level"),
        ("[database]\nurl = 'mysql://db/csms'\n", "database_url"),
    ],
)
def test_bad_config_file_is_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, toml: str, message: str
) -> None:
    monkeypatch.delenv("CSMS_DATABASE_URL")  # it would win over the file's [database] url
    config = tmp_path / "csms.toml"
    config.write_text(toml)
    assert_one_line_error(cli("--config", str(config), "stations", "list"), message)


def test_unreadable_config_files_are_one_line(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert_one_line_error(cli("--config", str(missing), "tokens", "list"), "does not exist")
    # Found by this test: these two used to end in tracebacks.
    assert_one_line_error(cli("--config", str(tmp_path), "tokens", "list"), "cannot be read")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b"[log]\nlevel = '\xe9'\n")
    assert_one_line_error(cli("--config", str(latin1), "tokens", "list"), "not UTF-8")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CSMS_OCPP_PORT", "abc", "ocpp_port"),
        ("CSMS_API_PORT", "-1", "api_port"),
        ("CSMS_DATABASE_URL", "mysql://x", "database_url"),
        ("CSMS_UNKNOWN_STATIONS", "sometimes", "unknown_stations"),
        ("CSMS_LOG_LEVEL", "verbose", "log_level"),
        ("CSMS_VALIDATE_RESPONSES", "perhaps", "validate_responses"),
    ],
)
def test_bad_environment_is_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    assert_one_line_error(cli("stations", "list"), "invalid configuration", message)


def test_database_that_cannot_be_opened_is_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CSMS_DATABASE_URL", f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    assert_one_line_error(cli("stations", "list"), "does not exist")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, not at all; " * 100)
    monkeypatch.setenv("CSMS_DATABASE_URL", f"sqlite:///{garbage}")
    assert_one_line_error(cli("tokens", "add", "T1"), "not a database")
    monkeypatch.setenv("CSMS_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/csms")
    assert_one_line_error(cli("sessions", "list"), "cannot connect to PostgreSQL")


def test_config_precedence_env_over_toml_over_defaults(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CSMS_DATABASE_URL")
    defaults = load_settings()
    assert (defaults.ocpp_port, defaults.api_port, defaults.heartbeat_interval) == (9000, 8080, 300)
    assert defaults.unknown_stations is UnknownStationPolicy.REJECT
    assert (defaults.log_level, defaults.database_url) == ("info", "sqlite:///csms.db")

    config = tmp_path / "csms.toml"
    config.write_text(
        f"[database]\nurl = 'sqlite:///{tmp_path / 'toml.db'}'\n"
        "[ocpp]\nport = 9100\nheartbeat_interval = 60\n"
        "[stations]\nunknown = 'pending'\n"
        "[log]\nlevel = 'warning'\n"
    )
    from_toml = load_settings(config)
    assert (from_toml.ocpp_port, from_toml.api_port, from_toml.heartbeat_interval) == (
        9100,
        8080,
        60,
    )
    assert (from_toml.unknown_stations, from_toml.log_level) == ("pending", "warning")

    monkeypatch.setenv("CSMS_OCPP_PORT", "9200")
    monkeypatch.setenv("CSMS_LOG_LEVEL", "ERROR")
    from_env = load_settings(config)
    assert (from_env.ocpp_port, from_env.heartbeat_interval, from_env.log_level) == (
        9200,
        60,
        "error",
    )
    assert from_env.unknown_stations is UnknownStationPolicy.PENDING
    # An explicit command-line option (as `serve --ocpp-port`) beats them all.
    assert load_settings(config, ocpp_port=9300).ocpp_port == 9300

    # And the CLI really writes where the winning setting points.
    assert cli("--config", str(config), "stations", "add", "FROM-TOML").code == 0
    monkeypatch.setenv("CSMS_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert cli("--config", str(config), "stations", "add", "FROM-ENV").code == 0
    assert [s["id"] for s in station_rows(tmp_path / "toml.db")] == ["FROM-TOML"]
    assert [s["id"] for s in station_rows(tmp_path / "env.db")] == ["FROM-ENV"]
    assert not (tmp_path / "csms.db").exists()


def station_rows(db_path: Path) -> list[dict[str, Any]]:
    store = SqliteStore(str(db_path))
    try:
        return store.list_stations()
    finally:
        store.close()


# -- as a real process ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "toml", "args", "message"),
    [
        ({}, "[ocpp\n", ["stations", "list"], "is not valid TOML"),
        ({"CSMS_OCPP_PORT": "abc"}, None, ["stations", "list"], "ocpp_port"),
        ({"CSMS_DATABASE_URL": "mysql://x"}, None, ["tokens", "list"], "database_url"),
        ({}, None, ["sessions", "show", "999"], "no session 999"),
        ({}, None, ["frobnicate"], "No such command"),
        # serve refuses before it opens anything
        ({"CSMS_DATABASE_URL": "postgresql://db/csms"}, None, ["serve"], "PostgreSQL"),
    ],
)
def test_subprocess_errors_are_one_line(
    tmp_path: Path, env: dict[str, str], toml: str | None, args: list[str], message: str
) -> None:
    full_env = csms_env(tmp_path / "csms.db", extra=env)
    config_args: list[str] = []
    if toml is not None:
        config = tmp_path / "csms.toml"
        config.write_text(toml)
        config_args = ["--config", str(config)]
    result = run_cli([*config_args, *args], full_env, cwd=tmp_path)
    assert_one_line_error(result, message)


def test_serve_on_a_taken_port_is_one_line(tmp_path: Path) -> None:
    # Found by this test: it used to end in an ExceptionGroup traceback.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = csms_env(tmp_path / "csms.db", ocpp_port=port)
        result = run_cli(["serve"], env, cwd=tmp_path)
    line = assert_one_line_error(result, f"cannot serve on 127.0.0.1:{port}", "in use")
    assert result.returncode == 1, line


def test_subprocess_listing_and_import(tmp_path: Path) -> None:
    env = csms_env(tmp_path / "csms.db")
    csv_file = tmp_path / "stations.csv"
    csv_file.write_text("id\nCP-1\nCP-2\n")
    imported = run_cli(["stations", "import", str(csv_file)], env, cwd=tmp_path)
    assert (imported.returncode, imported.stdout, imported.stderr) == (
        0,
        "2 stations registered, 0 already known\n",
        "",
    )
    listed = run_cli(["stations", "list", "--format", "json"], env, cwd=tmp_path)
    assert [s["id"] for s in json.loads(listed.stdout)] == ["CP-1", "CP-2"]
    directory = run_cli(["stations", "import", str(tmp_path)], env, cwd=tmp_path)
    assert_one_line_error(directory, "cannot read")


# -- beside a running server ---------------------------------------------------------------


async def test_cli_works_beside_a_running_server(tmp_path: Path) -> None:
    async def cli_run(*args: str) -> subprocess.CompletedProcess[str]:
        return await trio.to_thread.run_sync(lambda: run_cli(list(args), server.env, cwd=tmp_path))

    with running_server(tmp_path, unknown_stations="reject") as server:
        added = await cli_run("tokens", "add", "LIVE-1")
        assert added.returncode == 0, added.stderr
        registered = await cli_run("stations", "add", "LIVE-CP")
        assert registered.returncode == 0, registered.stderr

        with trio.fail_after(15):
            async with connect_charger(server.ocpp_port, "LIVE-CP") as charger:
                # Registered through the CLI while the server ran: accepted despite "reject".
                assert (await charger.boot())[2]["status"] == "Accepted"
                authorized = await charger.call("Authorize", {"idTag": "LIVE-1"})
                assert authorized[2]["idTagInfo"]["status"] == "Accepted"

                stations = json.loads((await cli_run("stations", "list", "-f", "json")).stdout)
                assert [(s["id"], s["online"], s["vendor"]) for s in stations] == [
                    ("LIVE-CP", 1, "TestVendor")
                ]

                blocked = await cli_run("tokens", "block", "LIVE-1")
                assert (blocked.returncode, blocked.stdout) == (0, "token LIVE-1 blocked\n")
                again = await charger.call("Authorize", {"idTag": "LIVE-1"})
                assert again[2]["idTagInfo"]["status"] == "Blocked"
                start = await charger.call(
                    "StartTransaction",
                    {"connectorId": 1, "idTag": "LIVE-1", "meterStart": 0, "timestamp": ts()},
                )
                assert start[2]["idTagInfo"]["status"] == "Blocked"

                # A token added while the server runs is honoured at once, too.
                assert (await cli_run("tokens", "add", "LIVE-2")).returncode == 0
                fresh = await charger.call("Authorize", {"idTag": "LIVE-2"})
                assert fresh[2]["idTagInfo"]["status"] == "Accepted"

                sessions = json.loads((await cli_run("sessions", "list", "-f", "json")).stdout)
                assert [(s["station_id"], s["id_tag"], s["status"]) for s in sessions] == [
                    ("LIVE-CP", "LIVE-1", "Active")
                ]

        # An unregistered station is still refused under the "reject" policy.
        async with connect_charger(server.ocpp_port, "STRANGER") as stranger:
            assert (await stranger.boot())[2]["status"] == "Rejected"

        code = await trio.to_thread.run_sync(server.stop)
    assert code == 0
    assert "Traceback" not in server.stderr_text()


def test_stations_add_profile_1_prints_a_generated_password_stored_hashed(
    cli: Cli, tmp_path: Path
) -> None:
    from csms.domain.credentials import verify_password

    added = cli("stations", "add", "CP-S1", "--security-profile", "1")
    assert added.code == 0, added.err
    password = added.out.strip().splitlines()[-1].split()[-1]
    assert 16 <= len(password) <= 40
    store = SqliteStore(str(tmp_path / "csms.db"))
    try:
        station = store.get_station("CP-S1")
    finally:
        store.close()
    assert station is not None and station["security_profile"] == 1
    assert password not in station["password_hash"]
    assert verify_password(password.encode(), station["password_hash"])
    # Registering it again changes nothing and prints no new password.
    assert_one_line_error(
        cli("stations", "add", "CP-S1", "--security-profile", "1"), "already registered"
    )


def test_stations_add_refuses_a_short_password(cli: Cli) -> None:
    short = cli("stations", "add", "CP-S2", "--security-profile", "1", "--password", "x" * 10)
    assert_one_line_error(short, "16 to 40 characters")
    assert "x" * 10 not in short.err
    assert cli("stations", "list", "--format", "json").json() == []


def test_stations_set_password_for_an_imported_station(cli: Cli, tmp_path: Path) -> None:
    from csms.domain.credentials import verify_password

    csv_file = tmp_path / "secure.csv"
    csv_file.write_text("id,security_profile\nCP-IMP,2\nCP-OPEN,0\n")
    assert cli("stations", "import", str(csv_file)).code == 0
    chosen = "imported-station-secret-1"
    done = cli("stations", "set-password", "CP-IMP", "--password", chosen)
    assert done.code == 0, done.err
    assert chosen not in done.out
    generated = cli("stations", "set-password", "CP-IMP")
    new_password = generated.out.strip().splitlines()[-1].split()[-1]
    store = SqliteStore(str(tmp_path / "csms.db"))
    try:
        station = store.get_station("CP-IMP")
    finally:
        store.close()
    assert station is not None
    assert verify_password(new_password.encode(), station["password_hash"])
    assert not verify_password(chosen.encode(), station["password_hash"])
    assert_one_line_error(cli("stations", "set-password", "CP-OPEN"), "security profile 0")
    assert_one_line_error(cli("stations", "set-password", "CP-NONE"), "no station")
    assert_one_line_error(
        cli("stations", "set-password", "CP-IMP", "--password", "short"), "16 to 40 characters"
    )


def stored_stations(tmp_path: Path) -> dict[str, dict[str, Any]]:
    store = SqliteStore(str(tmp_path / "csms.db"))
    try:
        stations = {s["id"]: s for s in store.list_stations()}
        return {
            station_id: station
            for station_id in stations
            if (station := store.get_station(station_id)) is not None
        }
    finally:
        store.close()


def test_stations_import_with_passwords(cli: Cli, tmp_path: Path) -> None:
    from csms.domain.credentials import verify_password

    shared, own = "shared-fleet-password-1", "its-very-own-password-2"
    csv_file = tmp_path / "stations.csv"
    csv_file.write_text(
        f"id,security_profile,password\nCP-P1,1,\nCP-P2,2,\nCP-OWN,1,{own}\nCP-P0,0,\nCP-P3,3,\n"
    )
    imported = cli("stations", "import", str(csv_file), "--password", shared)
    assert (imported.code, imported.out) == (0, "5 stations registered, 0 already known\n")
    assert shared not in imported.out + imported.err and own not in imported.out + imported.err
    stations = stored_stations(tmp_path)
    assert {i: s["security_profile"] for i, s in stations.items()} == {
        "CP-P1": 1,
        "CP-P2": 2,
        "CP-OWN": 1,
        "CP-P0": 0,
        "CP-P3": 3,
    }
    # The shared password was hashed once (one salt), the row's own one on its own.
    assert stations["CP-P1"]["password_hash"] == stations["CP-P2"]["password_hash"]
    assert verify_password(shared.encode(), stations["CP-P1"]["password_hash"])
    assert verify_password(own.encode(), stations["CP-OWN"]["password_hash"])
    assert not verify_password(shared.encode(), stations["CP-OWN"]["password_hash"])
    assert stations["CP-P0"]["password_hash"] is None
    assert stations["CP-P3"]["password_hash"] is None
    assert shared not in repr(stations) and own not in repr(stations)


def test_stations_import_of_simulator_registrations_with_one_password(
    cli: Cli, tmp_path: Path
) -> None:
    from csms.domain.credentials import verify_password
    from simulator.cli import main as simulator_main

    with pytest.raises(SystemExit) as exited:
        simulator_main(
            [
                "registrations",
                "city",
                "--chargers",
                "300",
                "--security-profile",
                "2",
                "--out",
                str(tmp_path / "fleet"),
            ]
        )
    assert exited.value.code in (0, None)
    shared = "shared-fleet-password-1"
    imported = cli(
        "stations", "import", str(tmp_path / "fleet" / "stations.csv"), "--password", shared
    )
    assert (imported.code, imported.out) == (0, "300 stations registered, 0 already known\n")
    stations = stored_stations(tmp_path)
    assert {s["security_profile"] for s in stations.values()} == {2}
    [hashed] = {s["password_hash"] for s in stations.values()}
    assert verify_password(shared.encode(), hashed)


def test_stations_import_without_a_password_says_how_to_give_one(cli: Cli, tmp_path: Path) -> None:
    csv_file = tmp_path / "stations.csv"
    csv_file.write_text("id,security_profile\nCP-N1,1\nCP-N2,2\nCP-N0,0\n")
    imported = cli("stations", "import", str(csv_file))
    assert (imported.code, imported.out) == (0, "3 stations registered, 0 already known\n")
    assert "2 profile 1/2 stations have no password" in imported.err
    assert "set-password" in imported.err


@pytest.mark.parametrize(
    ("content", "option", "where", "message"),
    [
        (
            "id,security_profile,password\nCP-A,1,\nCP-B,0,no-password-for-me-0\n",
            [],
            ":3",
            "a password is for security profiles 1 and 2",
        ),
        (
            "id,security_profile,password\nCP-A,3,certificates-only-please\n",
            [],
            ":2",
            "a password is for security profiles 1 and 2",
        ),
        (
            "id,security_profile,password\nCP-A,1,good-password-here-1\nCP-B,2,too-short\n",
            [],
            ":3",
            "16 to 40 characters (this one has 9)",
        ),
        (
            "id,security_profile,password\nCP-A,1,with a space inside 1\n",
            [],
            ":2",
            "printable ASCII without spaces",
        ),
        (
            "id,security_profile\nCP-A,1\n",
            ["--password", "tiny"],
            "",
            "--password: a station password must be 16 to 40",
        ),
    ],
)
def test_stations_import_refuses_bad_passwords_naming_the_row(
    cli: Cli, tmp_path: Path, content: str, option: list[str], where: str, message: str
) -> None:
    csv_file = tmp_path / "stations.csv"
    csv_file.write_text(content)
    refused = cli("stations", "import", str(csv_file), *option)
    line = assert_one_line_error(refused, message)
    if where:
        assert f"{csv_file}{where}: " in line
    for secret in ("too-short", "with a space inside 1", "tiny", "certificates-only-please"):
        assert secret not in line
    assert cli("stations", "list", "-f", "json").json() == []
