"""Wire-mode fleets with credentials against `csms serve`: security profile 1 (HTTP Basic over
ws://) and profile 2 (Basic over wss://, trusting a `trustme` CA), through `simulator run`,
with sessions reconciled against the ledger; and what the options refuse.

The CSMS registers each fleet's stations with its profile and one shared password hash, as
`SqliteStore.add_stations` does for thousands of stations at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from support.server_process import free_port, running_server
from wire_harness import scenario_file, simulate

from csms.domain.credentials import hash_password
from csms.storage.sqlite import SqliteStore
from simulator.cli import main
from simulator.fleet import plan_fleet
from simulator.run import register_fleet
from simulator.scenario import load_scenario

PASSWORD = "fleet-secret-password-42"


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
