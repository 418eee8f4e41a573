"""Wire-mode fleets with credentials against `csms serve`: security profile 1 (HTTP Basic over
ws://) and profile 2 (Basic over wss://, trusting a `trustme` CA), through `simulator run`,
with sessions reconciled against the ledger; and what the options refuse.

The CSMS registers each fleet's stations with its profile and one shared password hash, as
`SqliteStore.add_stations` does for thousands of stations at once.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trustme
from support.server_process import ServerProcess, free_port, running_server

from csms.domain.credentials import hash_password
from csms.storage.sqlite import SqliteStore
from simulator.cli import main
from simulator.fleet import plan_fleet
from simulator.run import register_fleet
from simulator.scenario import load_scenario

PASSWORD = "fleet-secret-password-42"


def scenario_file(directory: Path, prefix: str) -> Path:
    """Four 2-connector chargers for 10 simulated minutes of the morning peak, arrivals
    scaled up so that sessions happen."""
    path = directory / f"{prefix.lower()}.toml"
    path.write_text(
        "\n".join(
            [
                f'name = "{prefix.lower()}"',
                "seed = 5",
                "start = 2026-03-02T08:30:00+01:00",
                'duration = "10m"',
                "[[stations]]",
                f'prefix = "{prefix}"',
                "count = 4",
                "connectors = 2",
                "max_power_w = 22000",
                "[drivers]",
                "scale = 300",
                "[charger]",
                "meter_interval_s = 60",
            ]
        )
    )
    return path


def register(db_path: Path, scenario_path: Path, profile: int) -> None:
    store = SqliteStore(str(db_path))
    try:
        plan = plan_fleet(load_scenario(scenario_path))
        store.add_stations(
            [(s.station_id, profile) for s in plan.stations], hash_password(PASSWORD)
        )
        register_fleet(store, plan)  # tokens; the stations are already known
    finally:
        store.close()


def simulate(
    capsys: pytest.CaptureFixture[str],
    scenario_path: Path,
    url: str,
    server: ServerProcess,
    *extra: str,
) -> dict[str, object]:
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "run",
                str(scenario_path),
                "--url",
                url,
                "--ledger",
                f"sqlite:///{server.db_path}",
                "--rate",
                "120",
                "--json",
                *extra,
            ]
        )
    out = capsys.readouterr().out
    assert exited.value.code == 0, out
    summary: dict[str, object] = orjson.loads(out.strip().splitlines()[-1])
    return summary


def test_profile_1_and_2_fleets_connect_charge_and_reconcile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    basic, tls = scenario_file(tmp_path, "BASIC"), scenario_file(tmp_path, "TLS")
    db_path = tmp_path / "csms.db"
    register(db_path, basic, 1)
    register(db_path, tls, 2)
    tls_port = free_port()
    env = {
        "CSMS_OCPP_TLS_PORT": str(tls_port),
        "CSMS_TLS_CERT_FILE": str(cert),
        "CSMS_TLS_KEY_FILE": str(key),
    }
    with running_server(
        tmp_path, db_path=db_path, unknown_stations="reject", extra_env=env
    ) as server:
        plain = simulate(
            capsys,
            basic,
            f"ws://127.0.0.1:{server.ocpp_port}/ocpp",
            server,
            "--password",
            PASSWORD,
        )
        secure = simulate(
            capsys,
            tls,
            f"wss://127.0.0.1:{tls_port}/ocpp",
            server,
            "--password",
            PASSWORD,
            "--ca-file",
            str(ca_file),
        )
    for summary in (plain, secure):
        assert isinstance(summary["sessions"], int) and summary["sessions"] > 0
        reconciliation = summary["reconciliation"]
        assert isinstance(reconciliation, dict)
        assert reconciliation["exact"] is True
        assert reconciliation["lost_sessions"] == 0
        assert reconciliation["energy_diff_wh"] == 0


def test_security_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passwords = tmp_path / "passwords.csv"
    passwords.write_text("station,secret\nCP-1,x\n")
    url = "ws://127.0.0.1:1/ocpp"
    for argv, message in [
        (["--password", "pw"], "wire mode"),
        (["--url", url, "--ca-file", str(tmp_path / "missing.pem")], "no such file"),
        (["--url", url, "--client-cert", str(passwords)], "go together"),
        (["--url", url, "--password-file", str(passwords)], "id,password"),
        (["--url", url, "--cert-dir", str(tmp_path / "nowhere")], "no such directory"),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(["run", "city", *argv])
        assert exited.value.code != 0
        assert message in capsys.readouterr().err, argv
