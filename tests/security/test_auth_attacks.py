"""Authentication attacks on the security profiles, over real loopback handshakes.

Registered: CP-1 and CP-10 (profile 1, Basic over ws://), CP-2 (profile 2, Basic over TLS),
CP-3 and CP-30 (profile 3, client certificates), CP-0 (profile 0). Every attack must be
refused before any OCPP frame (HTTP 401, or a failed TLS handshake), leave the stations'
rows as they were, and leave a bystander served. The CA and certificates are made by
`trustme` per test; the failure rate limit is set high so each attack meets the real check.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trustme
from security_harness import BOOT, add_figure, row_counts
from support.charger import connect_charger
from support.settings import make_settings
from trio_websocket import ConnectionRejected, HandshakeError, open_websocket_url

from csms.domain.credentials import hash_password
from csms.runtime.server import Csms, run_csms
from csms.storage.sqlite import SqliteStore, sqlite_path

OPERATOR = "ACME Charging"
PASSWORD = "correct-horse-battery"
PASSWORD_10 = "another-long-secret"
Headers = list[tuple[bytes, bytes]]


def basic(user: str, password: str) -> Headers:
    return [(b"authorization", b"Basic " + base64.b64encode(f"{user}:{password}".encode()))]


def raw_basic(decoded: bytes) -> Headers:
    return [(b"authorization", b"Basic " + base64.b64encode(decoded))]


@dataclass(frozen=True)
class Attack:
    station_id: str
    tls: bool = False
    headers: Headers | None = None
    #: (CN, O, from our CA) of the client certificate, if one is presented.
    cert: tuple[str, str, bool] | None = None


ATTACKS: dict[str, Attack] = {
    "wrong-password": Attack("CP-1", headers=basic("CP-1", PASSWORD + "x")),
    "empty-password": Attack("CP-1", headers=basic("CP-1", "")),
    "password-prefix": Attack("CP-1", headers=basic("CP-1", PASSWORD[:-1])),
    "another-stations-credentials": Attack("CP-1", headers=basic("CP-10", PASSWORD_10)),
    "username-longer-than-id": Attack("CP-1", headers=basic("CP-1x", PASSWORD)),
    "id-extends-username": Attack("CP-10", headers=basic("CP-1", PASSWORD)),
    "username-with-colon": Attack("CP-1", headers=raw_basic(b"CP-1:CP-1:" + PASSWORD.encode())),
    "no-colon": Attack("CP-1", headers=raw_basic(b"CP-1" + PASSWORD.encode())),
    "fullwidth-username": Attack("CP-1", headers=basic("\uff23\uff30-1", PASSWORD)),
    "no-header": Attack("CP-1"),
    "bearer-scheme": Attack("CP-1", headers=[(b"authorization", b"Bearer " + PASSWORD.encode())]),
    "malformed-base64": Attack("CP-1", headers=[(b"authorization", b"Basic Q1AtMTp%%%")]),
    "huge-header": Attack("CP-1", headers=raw_basic(b"CP-1:" + b"x" * 6000)),
    "profile-2-over-ws": Attack("CP-2", headers=basic("CP-2", PASSWORD)),
    "profile-1-over-tls": Attack("CP-1", tls=True, headers=basic("CP-1", PASSWORD)),
    "profile-0-with-credentials": Attack("CP-0", headers=basic("CP-0", PASSWORD)),
    "profile-0-over-tls": Attack("CP-0", tls=True),
    "profile-3-without-certificate": Attack("CP-3", tls=True),
    "profile-3-over-ws": Attack("CP-3"),
    "profile-3-password-instead": Attack("CP-3", tls=True, headers=basic("CP-3", PASSWORD)),
    "cn-contains-id": Attack("CP-3", tls=True, cert=("CP-3-evil", OPERATOR, True)),
    "cn-ends-with-id": Attack("CP-3", tls=True, cert=("xCP-3", OPERATOR, True)),
    "cn-is-id-prefix": Attack("CP-30", tls=True, cert=("CP-3", OPERATOR, True)),
    "cn-other-station": Attack("CP-3", tls=True, cert=("CP-30", OPERATOR, True)),
    "wrong-o": Attack("CP-3", tls=True, cert=("CP-3", "Evil Charging", True)),
    "o-contains-operator": Attack("CP-3", tls=True, cert=("CP-3", OPERATOR + " Ltd", True)),
    "self-signed-ca": Attack("CP-3", tls=True, cert=("CP-3", OPERATOR, False)),
}
#: Attacks tried and accepted, kept as figures.
TRIED: list[str] = []
ACCEPTED: list[str] = []


@dataclass
class Secured:
    csms: Csms
    ca: trustme.CA
    database: Path

    def context(self, cert: tuple[str, str, bool] | None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if cert is not None:
            common_name, organization, ours = cert
            issuer = self.ca if ours else trustme.CA()
            issuer.issue_cert(
                "station.test", common_name=common_name, organization_name=organization
            ).configure_cert(context)
        return context


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    ca = trustme.CA()
    files = [tmp_path / n for n in ("server.pem", "server.key", "ca.pem")]
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    server_cert.cert_chain_pems[0].write_to_path(str(files[0]))
    server_cert.private_key_pem.write_to_path(str(files[1]))
    ca.cert_pem.write_to_path(str(files[2]))
    settings = make_settings(
        tmp_path,
        ocpp_tls_port=0,
        tls_cert_file=files[0],
        tls_key_file=files[1],
        tls_client_ca_file=files[2],
        operator_name=OPERATOR,
        auth_max_failures_per_station=1000,
        auth_max_failures_per_address=1000,
    )
    database = Path(sqlite_path(settings.database_url))
    store = SqliteStore(str(database))
    try:
        for station_id, profile, password in (
            ("CP-1", 1, PASSWORD),
            ("CP-10", 1, PASSWORD_10),
            ("CP-2", 2, PASSWORD),
            ("CP-3", 3, None),
            ("CP-30", 3, None),
            ("CP-0", 0, None),
        ):
            hashed = hash_password(password) if password else None
            assert store.add_station(station_id, profile, hashed)
    finally:
        store.close()
    async with trio.open_nursery() as nursery:
        csms: Csms = await nursery.start(run_csms, settings)
        yield Secured(csms, ca, database)
        nursery.cancel_scope.cancel()


async def _try(secured: Secured, attack: Attack) -> str:
    """ "accepted" if the attack got a booted connection, else how it was refused."""
    csms = secured.csms
    scheme, port = ("wss", csms.ocpp_tls_port) if attack.tls else ("ws", csms.ocpp_port)
    url = f"{scheme}://127.0.0.1:{port}/ocpp/{attack.station_id}"
    context = secured.context(attack.cert) if attack.tls else None
    if context is not None and attack.cert is not None and not attack.cert[2]:
        return await _tls_refused(port, context, attack.station_id)
    try:
        with trio.fail_after(10):
            async with open_websocket_url(
                url, ssl_context=context, subprotocols=["ocpp1.6"], extra_headers=attack.headers
            ) as ws:
                await ws.send_message(f'[2,"a1","BootNotification",{_json(BOOT)}]')
                await ws.get_message()
                return "accepted"
    except ConnectionRejected as refused:
        return f"HTTP {refused.status_code}"
    except (HandshakeError, trio.BrokenResourceError, ssl.SSLError, OSError) as failed:
        return f"connection failed ({type(failed).__name__})"


async def _tls_refused(port: int, context: ssl.SSLContext, station_id: str) -> str:
    """A certificate the server's CA did not sign: TLS 1.3 reports the refusal on the first
    read after the handshake, where a WebSocket client would wait for its upgrade answer."""
    try:
        with trio.fail_after(10):
            stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=context)
            await stream.send_all(f"GET /ocpp/{station_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            answer = await stream.receive_some()
    except trio.BrokenResourceError as failed:
        return f"connection failed ({failed.__cause__!r})"
    return "accepted" if answer else "connection failed (closed)"


def _json(payload: dict[str, str]) -> str:
    return "{" + ",".join(f'"{k}":"{v}"' for k, v in payload.items()) + "}"


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_attack_is_refused_before_any_frame(secured: Secured, name: str) -> None:
    attack = ATTACKS[name]
    before = row_counts(secured.database)
    outcome = await _try(secured, attack)
    TRIED.append(name)
    add_figure("auth attacks tried")
    if outcome == "accepted":
        ACCEPTED.append(name)
    add_figure("auth attacks accepted", outcome == "accepted")
    assert outcome != "accepted", name
    if not attack.cert or attack.cert[2]:  # a handshake that reached HTTP: a 401, not more
        assert outcome in ("HTTP 401", "HTTP 400"), outcome
    assert attack.station_id not in secured.csms.registry
    assert row_counts(secured.database) == before
    async with connect_charger(secured.csms.ocpp_port, "CP-BYSTANDER") as bystander:
        assert (await bystander.boot())[2]["status"] == "Accepted"


async def test_the_right_credentials_still_get_in(secured: Secured) -> None:
    """The attacks fail on what they got wrong: the same paths with it right succeed."""
    rightful = [
        Attack("CP-1", headers=basic("CP-1", PASSWORD)),
        Attack("CP-10", headers=basic("CP-10", PASSWORD_10)),
        Attack("CP-2", tls=True, headers=basic("CP-2", PASSWORD)),
        Attack("CP-3", tls=True, cert=("CP-3", OPERATOR, True)),
        Attack("CP-30", tls=True, cert=("CP-30", OPERATOR, True)),
        Attack("CP-0"),
    ]
    for attack in rightful:
        assert await _try(secured, attack) == "accepted", attack
