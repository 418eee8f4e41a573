"""Locust chargers with credentials: a headless run over wss:// with HTTP Basic (security
profile 2) against `csms serve` with a `trustme` CA, as a subprocess on loopback."""

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
USERS = 2


def test_wss_with_basic_credentials_boots_and_charges(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    db_path = tmp_path / "csms.db"
    store = SqliteStore(str(db_path))
    try:
        ids = [charge_point_id("SEC-", 0, n) for n in range(1, USERS + 1)]
        store.add_stations([(i, 2) for i in ids], hash_password(PASSWORD))
        store.upsert_tokens([TokenRow(tag) for tag in token_pool("TAG", 10)])
    finally:
        store.close()
    tls_port = free_port()
    env = {
        "CSMS_OCPP_TLS_PORT": str(tls_port),
        "CSMS_TLS_CERT_FILE": str(cert),
        "CSMS_TLS_KEY_FILE": str(key),
    }
    prefix = tmp_path / "run"
    options = {
        "profile": "realistic",
        "heartbeat_interval": 1,
        "meter_interval": 0.5,
        "sessions_per_day": 86400,
        "session_minutes": 0.02,
        "id_prefix": "SEC-",
        "tokens": 10,
        "password": PASSWORD,
        "ca_file": str(ca_file),
    }
    with running_server(
        tmp_path, db_path=db_path, unknown_stations="reject", extra_env=env
    ) as server:
        host = f"wss://127.0.0.1:{tls_port}/ocpp"
        argv = locust_argv(host, USERS, USERS, prefix, run_time_s=4, options=options)
        done = subprocess.run(
            argv, cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=60
        )
        server_log = server.stderr_text()
    stats = read_stats(prefix)
    assert done.returncode == 0, done.stderr[-3000:] + server_log[-2000:]
    assert stats[AGGREGATED].failures == 0 and read_failures(prefix) == []
    assert stats[("WS", "connect")].requests == USERS
    assert stats[("OCPP1.6", "BootNotification")].requests == USERS
    assert stats[("OCPP1.6", "StartTransaction")].requests > 0
