"""Security profiles over real loopback handshakes: Basic auth (1, 2), TLS (2, 3), client
certificates (3), wrong profiles, and the rate limit on failed authentications.

The CA, the server's certificate and the stations' client certificates are made per test by
`trustme`.
"""

from __future__ import annotations

import base64
import sqlite3
import ssl
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme
from runtime_harness import BOOT, RawCharger, running_csms
from support.settings import make_settings
from trio_websocket import (
    ConnectionRejected,
    open_websocket_url,
    wrap_client_stream,
)

from csms.domain.credentials import hash_password, verify_password
from csms.runtime.server import Csms
from csms.storage.sqlite import SqliteStore, sqlite_path

OPERATOR = "ACME Charging"
PASSWORD = "correct-horse-battery"
Headers = list[tuple[bytes, bytes]]


def basic(user: str, password: str) -> Headers:
    token = base64.b64encode(f"{user}:{password}".encode())
    return [(b"authorization", b"Basic " + token)]


@dataclass
class Secured:
    csms: Csms
    ca: trustme.CA
    store: SqliteStore

    def register(self, station_id: str, profile: int, password: str | None = None) -> None:
        hashed = hash_password(password) if password is not None else None
        assert self.store.add_station(station_id, profile, hashed)

    def client_context(self, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if cert is not None:
            cert.configure_cert(context)
        return context

    def url(self, station_id: str, *, tls: bool) -> str:
        if tls:
            return f"wss://127.0.0.1:{self.csms.ocpp_tls_port}/ocpp/{station_id}"
        return f"ws://127.0.0.1:{self.csms.ocpp_port}/ocpp/{station_id}"

    async def boot(
        self,
        station_id: str,
        *,
        tls: bool = False,
        headers: Headers | None = None,
        cert: trustme.LeafCert | None = None,
    ) -> str:
        """Connect and boot; the boot's status."""
        context = self.client_context(cert) if tls else None
        with trio.fail_after(10):
            async with open_websocket_url(
                self.url(station_id, tls=tls),
                ssl_context=context,
                subprotocols=["ocpp1.6"],
                extra_headers=headers or [],
            ) as ws:
                reply = await RawCharger(ws).call("BootNotification", BOOT)
                status: str = reply[2]["status"]
                return status

    async def refused(
        self,
        station_id: str,
        *,
        tls: bool = False,
        headers: Headers | None = None,
        cert: trustme.LeafCert | None = None,
    ) -> ConnectionRejected:
        with pytest.raises(ConnectionRejected) as refusal:
            await self.boot(station_id, tls=tls, headers=headers, cert=cert)
        if refusal.value.status_code == 401:
            assert (b"www-authenticate", b'Basic realm="OCPP"') in (refusal.value.headers or [])
        assert station_id not in self.csms.registry
        return refusal.value


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = (tmp_path / n for n in ("server.pem", "server.key", "ca.pem"))
    server_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    server_cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    settings = make_settings(
        tmp_path,
        ocpp_tls_port=0,
        tls_cert_file=cert_file,
        tls_key_file=key_file,
        tls_client_ca_file=ca_file,
        operator_name=OPERATOR,
        auth_max_failures_per_station=4,
        auth_max_failures_per_address=10,
    )
    store = SqliteStore(sqlite_path(settings.database_url))
    try:
        async with running_csms(settings) as csms:
            yield Secured(csms, ca, store)
    finally:
        store.close()


# -- profile 1: Basic over ws:// ----------------------------------------------------------


async def test_profile_1_right_password_boots(secured: Secured) -> None:
    secured.register("CP-1", 1, PASSWORD)
    assert await secured.boot("CP-1", headers=basic("CP-1", PASSWORD)) == "Accepted"


@pytest.mark.parametrize(
    "headers",
    [
        basic("CP-1", PASSWORD + "x"),
        basic("CP-2", PASSWORD),
        basic("CP-1x", PASSWORD),
        [],
        [(b"authorization", b"Bearer abc")],
        [(b"authorization", b"Basic !!notbase64")],
    ],
    ids=["wrong-password", "other-user", "user-prefix", "missing", "not-basic", "bad-base64"],
)
async def test_profile_1_bad_credentials_get_401_and_nothing_else(
    secured: Secured, headers: Headers
) -> None:
    secured.register("CP-1", 1, PASSWORD)
    refusal = await secured.refused("CP-1", headers=headers)
    assert refusal.status_code == 401
    assert PASSWORD not in (refusal.body or b"").decode()
    row = secured.store.get_station("CP-1")
    assert row is not None and row["last_boot_at"] is None and not row["online"]


async def test_unknown_station_with_credentials_is_refused_and_leaves_no_row(
    secured: Secured,
) -> None:
    refusal = await secured.refused("CP-NEW", headers=basic("CP-NEW", PASSWORD))
    assert refusal.status_code == 401
    assert secured.store.get_station("CP-NEW") is None
    # Without credentials the unknown-station policy decides at boot, as before.
    assert await secured.boot("CP-NEW") == "Accepted"


async def test_password_is_stored_only_as_a_salted_hash(secured: Secured) -> None:
    secured.register("CP-1", 1, PASSWORD)
    secured.register("CP-2", 1, PASSWORD)
    with closing(sqlite3.connect(sqlite_path(secured.csms.settings.database_url))) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM stations WHERE id IN ('CP-1', 'CP-2')").fetchall()
    hashes = [row["password_hash"] for row in rows]
    assert len(hashes) == 2 and all(h.startswith("scrypt$") for h in hashes)
    assert hashes[0] != hashes[1]  # salted
    assert not any(PASSWORD in str(value) for row in rows for value in tuple(row))
    assert all(verify_password(PASSWORD.encode(), h) for h in hashes)


# -- profile 2: Basic over TLS -------------------------------------------------------------


async def test_profile_2_over_tls_with_password_boots(secured: Secured) -> None:
    secured.register("CP-2", 2, PASSWORD)
    assert await secured.boot("CP-2", tls=True, headers=basic("CP-2", PASSWORD)) == "Accepted"
    refusal = await secured.refused("CP-2", tls=True, headers=basic("CP-2", "x" * 20))
    assert refusal.status_code == 401


async def test_wrong_profile_is_refused_even_with_the_right_password(secured: Secured) -> None:
    secured.register("CP-2", 2, PASSWORD)
    secured.register("CP-1", 1, PASSWORD)
    secured.register("CP-0", 0)
    assert (await secured.refused("CP-2", headers=basic("CP-2", PASSWORD))).status_code == 401
    refusal = await secured.refused("CP-1", tls=True, headers=basic("CP-1", PASSWORD))
    assert refusal.status_code == 401
    assert (await secured.refused("CP-0", tls=True)).status_code == 401
    assert (await secured.refused("CP-0", headers=basic("CP-0", PASSWORD))).status_code == 401
    assert await secured.boot("CP-0") == "Accepted"


# -- profile 3: client certificates --------------------------------------------------------


async def test_profile_3_client_certificate(secured: Secured) -> None:
    secured.register("CP-3", 3)
    good = secured.ca.issue_cert("cp3.test", common_name="CP-3", organization_name=OPERATOR)
    assert await secured.boot("CP-3", tls=True, cert=good) == "Accepted"

    longer = secured.ca.issue_cert("cp3.test", common_name="CP-3X", organization_name=OPERATOR)
    wrong_o = secured.ca.issue_cert("cp3.test", common_name="CP-3", organization_name="Evil")
    for cert in (longer, wrong_o, None):
        assert (await secured.refused("CP-3", tls=True, cert=cert)).status_code == 401
    # A profile-3 station over plain ws is refused too.
    assert (await secured.refused("CP-3")).status_code == 401


async def test_profile_3_certificate_from_another_ca_fails_tls(secured: Secured) -> None:
    secured.register("CP-3", 3)
    stranger = trustme.CA().issue_cert("cp3.test", common_name="CP-3", organization_name=OPERATOR)
    context = secured.client_context(stranger)
    with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
        stream = await trio.open_ssl_over_tcp_stream(
            "127.0.0.1", secured.csms.ocpp_tls_port, ssl_context=context
        )
        # TLS 1.3 reports the refused certificate on the first read after the handshake.
        await stream.send_all(b"GET /ocpp/CP-3 HTTP/1.1\r\nHost: x\r\n\r\n")
        await stream.receive_some()
    assert "CP-3" not in secured.csms.registry


# -- rate limiting -------------------------------------------------------------------------


async def test_failures_are_limited_per_station_id(secured: Secured) -> None:
    secured.register("CP-A", 1, PASSWORD)
    secured.register("CP-B", 1, PASSWORD)
    for _ in range(4):
        assert (await secured.refused("CP-A", headers=basic("CP-A", "w" * 16))).status_code == 401
    refusal = await secured.refused("CP-A", headers=basic("CP-A", PASSWORD))
    assert refusal.status_code == 429
    assert await secured.boot("CP-B", headers=basic("CP-B", PASSWORD)) == "Accepted"


async def test_failures_are_limited_per_source_address(secured: Secured) -> None:
    secured.register("CP-B", 1, PASSWORD)
    for n in range(10):
        headers = basic(f"GUESS-{n}", PASSWORD)
        assert (await secured.refused(f"GUESS-{n}", headers=headers)).status_code == 401
    assert (await secured.refused("CP-B", headers=basic("CP-B", PASSWORD))).status_code == 429

    # The same station from another address is unaffected.
    client, server = trio.testing.memory_stream_pair()
    csms = secured.csms
    async with trio.open_nursery() as nursery:
        nursery.start_soon(csms.handle_stream, server, "192.0.2.7:40000")
        ws = await wrap_client_stream(
            nursery,
            client,  # type: ignore[arg-type]
            "localhost",
            "/ocpp/CP-B",
            subprotocols=["ocpp1.6"],
            extra_headers=basic("CP-B", PASSWORD),
        )
        reply = await RawCharger(ws).call("BootNotification", BOOT)
        assert reply[2]["status"] == "Accepted"
        await ws.aclose()
