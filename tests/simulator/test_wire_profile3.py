"""Security profile 3 end to end: a wire-mode fleet over wss:// with one client certificate
per charger (`simulator run --cert-dir`, `trustme`: O = the operator, CN = the charger id)
against `csms serve` trusting the CA and knowing the operator, sessions reconciled with the
ledger; and a charger whose certificate names another charger is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trustme
from support.server_process import free_port, running_server
from wire_harness import scenario_file, simulate

from csms.storage.sqlite import SqliteStore
from simulator.fleet import plan_fleet
from simulator.run import register_fleet
from simulator.scenario import load_scenario
from simulator.transport import ClientSecurity, TransportClosed, connect_url

OPERATOR = "ACME Charging"


def write_cert(cert: trustme.LeafCert, directory: Path, name: str) -> None:
    cert.cert_chain_pems[0].write_to_path(str(directory / f"{name}.pem"))
    cert.private_key_pem.write_to_path(str(directory / f"{name}.key"))


def test_a_profile_3_fleet_with_a_certificate_each_charges_and_reconciles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    write_cert(ca.issue_cert("127.0.0.1"), tmp_path, "server")
    scenario_path = scenario_file(tmp_path, "MTLS")
    plan = plan_fleet(load_scenario(scenario_path))
    certs = tmp_path / "certs"
    certs.mkdir()
    for station in plan.stations:
        cert = ca.issue_cert(
            "charger.test", common_name=station.station_id, organization_name=OPERATOR
        )
        write_cert(cert, certs, station.station_id)
    # A registered charger with the certificate of another one.
    impostor = tmp_path / "impostor"
    impostor.mkdir()
    stolen = ca.issue_cert(
        "charger.test", common_name=plan.stations[0].station_id, organization_name=OPERATOR
    )
    write_cert(stolen, impostor, "MTLS-X")

    db_path = tmp_path / "csms.db"
    store = SqliteStore(str(db_path))
    try:
        store.add_stations([(s.station_id, 3) for s in plan.stations] + [("MTLS-X", 3)])
        register_fleet(store, plan)  # tokens; the stations are already known
    finally:
        store.close()
    tls_port = free_port()
    env = {
        "CSMS_OCPP_TLS_PORT": str(tls_port),
        "CSMS_TLS_CERT_FILE": str(tmp_path / "server.pem"),
        "CSMS_TLS_KEY_FILE": str(tmp_path / "server.key"),
        "CSMS_TLS_CLIENT_CA_FILE": str(ca_file),
        "CSMS_OPERATOR_NAME": OPERATOR,
    }
    url = f"wss://127.0.0.1:{tls_port}/ocpp"
    with running_server(
        tmp_path, db_path=db_path, unknown_stations="reject", extra_env=env
    ) as server:
        summary = simulate(
            capsys, scenario_path, url, server, "--ca-file", str(ca_file), "--cert-dir", str(certs)
        )

        async def impostor_connects() -> str:
            security = ClientSecurity(ca_file=ca_file, cert_dir=impostor)
            try:
                transport = await connect_url(url, "MTLS-X", security=security, timeout=10)
            except TransportClosed as refusal:
                return str(refusal)
            await transport.aclose()
            return "let in"

        refusal = trio.run(impostor_connects)
    # Refused at the upgrade (the TLS handshake succeeded: the certificate is the CA's).
    assert "handshake refused (401)" in refusal, refusal
    assert isinstance(summary["sessions"], int) and summary["sessions"] > 0
    reconciliation = summary["reconciliation"]
    assert isinstance(reconciliation, dict)
    assert reconciliation["exact"] is True
    assert reconciliation["lost_sessions"] == 0
    assert reconciliation["energy_diff_wh"] == 0
