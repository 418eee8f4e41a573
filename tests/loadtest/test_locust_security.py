"""Locust chargers with credentials: headless runs over wss:// with HTTP Basic (security
profile 2) and with client certificates (profile 3: one for the process, or one per charger)
against `csms serve` with a `trustme` CA, as a subprocess on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import trustme
from support.server_process import free_port, running_server

from csms.domain.credentials import hash_password
from csms.storage.sqlite import SqliteStore, TokenRow
from loadtest.bench import REPO_ROOT, child_env
from loadtest.locust_fleet import charge_point_id, token_pool
from loadtest.locust_run import AGGREGATED, locust_argv, read_failures, read_stats

pytestmark = pytest.mark.slow

PASSWORD = "locust-secret-password"
OPERATOR = "ACME Charging"
USERS = 2


def write_cert(cert: trustme.LeafCert, cert_file: Path, key_file: Path) -> None:
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))


def tls_setup(tmp_path: Path) -> tuple[trustme.CA, Path, dict[str, str]]:
    """A CA (and its file), and the server settings of a wss listener with its certificate."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    write_cert(ca.issue_cert("127.0.0.1"), tmp_path / "server.pem", tmp_path / "server.key")
    env = {
        "CSMS_OCPP_TLS_PORT": str(free_port()),
        "CSMS_TLS_CERT_FILE": str(tmp_path / "server.pem"),
        "CSMS_TLS_KEY_FILE": str(tmp_path / "server.key"),
    }
    return ca, ca_file, env


def register(db_path: Path, stations: list[tuple[str, int]], password: str | None) -> None:
    store = SqliteStore(str(db_path))
    try:
        store.add_stations(stations, hash_password(password) if password else None)
        store.upsert_tokens([TokenRow(tag) for tag in token_pool("TAG", 10)])
    finally:
        store.close()


def run_secured_locust(
    tmp_path: Path, env: dict[str, str], users: int, options: dict[str, object]
) -> None:
    """A short headless run of `users` realistic chargers; no failure, every user booted."""
    db_path, prefix = tmp_path / "csms.db", tmp_path / "run"
    options = {
        "profile": "realistic",
        "heartbeat_interval": 1,
        "meter_interval": 0.5,
        "sessions_per_day": 86400,
        "session_minutes": 0.02,
        "tokens": 10,
        **options,
    }
    with running_server(
        tmp_path, db_path=db_path, unknown_stations="reject", extra_env=env
    ) as server:
        host = f"wss://127.0.0.1:{env['CSMS_OCPP_TLS_PORT']}/ocpp"
        argv = locust_argv(host, users, users, prefix, run_time_s=4, options=options)
        done = subprocess.run(
            argv, cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=60
        )
        server_log = server.stderr_text()
    stats = read_stats(prefix)
    assert done.returncode == 0, done.stderr[-3000:] + server_log[-2000:]
    assert stats[AGGREGATED].failures == 0 and read_failures(prefix) == []
    assert stats[("WS", "connect")].requests == users
    assert stats[("OCPP1.6", "BootNotification")].requests == users
    assert stats[("OCPP1.6", "StartTransaction")].requests > 0


def test_wss_with_basic_credentials_boots_and_charges(tmp_path: Path) -> None:
    _, ca_file, env = tls_setup(tmp_path)
    ids = [charge_point_id("SEC-", 0, n) for n in range(1, USERS + 1)]
    register(tmp_path / "csms.db", [(i, 2) for i in ids], PASSWORD)
    options = {"id_prefix": "SEC-", "password": PASSWORD, "ca_file": str(ca_file)}
    run_secured_locust(tmp_path, env, USERS, options)


@pytest.mark.parametrize("per_charger", [False, True], ids=["one-cert", "cert-dir"])
def test_wss_with_client_certificates_boots_and_charges(tmp_path: Path, per_charger: bool) -> None:
    """Profile 3: one certificate for the process (one user, since its CN is one charger's
    id) or one per user from a directory."""
    users = USERS if per_charger else 1
    ca, ca_file, env = tls_setup(tmp_path)
    env |= {"CSMS_TLS_CLIENT_CA_FILE": str(ca_file), "CSMS_OPERATOR_NAME": OPERATOR}
    ids = [charge_point_id("MTLS-", 0, n) for n in range(1, users + 1)]
    certs = tmp_path / "certs"
    certs.mkdir()
    for station_id in ids:
        cert = ca.issue_cert("charger.test", common_name=station_id, organization_name=OPERATOR)
        write_cert(cert, certs / f"{station_id}.pem", certs / f"{station_id}.key")
    register(tmp_path / "csms.db", [(i, 3) for i in ids], None)
    certificates: dict[str, object] = (
        {"cert_dir": str(certs)}
        if per_charger
        else {
            "client_cert": str(certs / f"{ids[0]}.pem"),
            "client_key": str(certs / f"{ids[0]}.key"),
        }
    )
    options = {"id_prefix": "MTLS-", "ca_file": str(ca_file), **certificates}
    run_secured_locust(tmp_path, env, users, options)
