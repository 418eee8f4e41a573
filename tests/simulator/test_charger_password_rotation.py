"""Password rotation as a virtual charger lives it, end to end over loopback: a wire-mode
profile 1 charger (1.6 and 2.0.1) logged in to a real CSMS gets a new password through the
operator API, answers Accepted, reconnects with it at once; the CSMS promotes the new hash
and refuses the old password from then on. The password is write-only on the charger.

And the charger's own rules, on a memory CSMS: what a valid AuthorizationKey is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from api.api_harness import Api, running_api
from support.settings import make_settings

from csms.domain.credentials import hash_password, verify_password
from csms.storage.sqlite import SqliteStore, sqlite_path
from simulator.chargepoint import Timing, VirtualChargePoint
from simulator.config_store import ConfigStore, ConfigurationStatus, password_of_key
from simulator.transport import ClientSecurity, TransportClosed, connect_url, url_connector

OLD = "the-old-password-1234"


@dataclass
class Rotating:
    api: Api
    charger: VirtualChargePoint
    security: ClientSecurity
    version: str

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.api.ocpp_port}/ocpp"

    def station_row(self) -> sqlite3.Row:
        with closing(sqlite3.connect(sqlite_path(self.api.csms.settings.database_url))) as db:
            db.row_factory = sqlite3.Row
            row: sqlite3.Row = db.execute(
                "SELECT * FROM stations WHERE id = ?", (self.charger.station_id,)
            ).fetchone()
            return row

    async def logs_in(self, password: str) -> bool:
        """Whether a connection with `password` is let in (closed at once if it is)."""
        security = ClientSecurity(password=password)
        try:
            transport = await connect_url(
                self.url,
                self.charger.station_id,
                subprotocols=(self.version,),
                security=security,
                timeout=10,
            )
        except TransportClosed as refusal:
            assert "401" in str(refusal)
            return False
        await transport.aclose()
        return True


@asynccontextmanager
async def rotating(tmp_path: Path, station_id: str, version: str) -> AsyncIterator[Rotating]:
    """A CSMS with its API, and a wire-mode profile 1 charger logged in with `OLD`."""
    settings = make_settings(tmp_path, call_timeout=10.0)
    store = SqliteStore(sqlite_path(settings.database_url))
    try:
        assert store.add_station(station_id, 1, hash_password(OLD))
    finally:
        store.close()
    async with running_api(settings) as api, trio.open_nursery() as nursery:
        security = ClientSecurity(passwords={station_id: OLD})
        charger = VirtualChargePoint(
            station_id,
            url_connector(
                f"ws://127.0.0.1:{api.ocpp_port}/ocpp", station_id, version, security=security
            ),
            timing=Timing(reconnect_delay_s=60.0),
            ocpp_version=version,
        )
        await nursery.start(charger.run)
        with trio.fail_after(10):
            await charger.wait_booted()
        yield Rotating(api, charger, security, version)
        nursery.cancel_scope.cancel()


async def rotate_and_reconnect(rot: Rotating) -> str:
    """Rotate through the API; the new password once the charger is back online with it."""
    charger = rot.charger
    assert charger.connections == 1
    response = await rot.api.admin.post(f"/api/stations/{charger.station_id}/password")
    assert response.status_code == 200, response.text
    new: str = response.json()["password"]
    # The reconnect delay is a minute: being back within seconds means it reconnected at once.
    with trio.fail_after(10):
        await charger.wait_for(lambda: charger.connections == 2 and charger.online)
    assert charger.passwords_taken == 1
    assert rot.security.password_of(charger.station_id) == new
    row = rot.station_row()
    assert row["pending_password_hash"] is None
    assert verify_password(new.encode(), row["password_hash"])
    assert not verify_password(OLD.encode(), row["password_hash"])
    # (A login with the new one would replace the charger's connection: it proved it above.)
    assert not await rot.logs_in(OLD)
    assert charger.online
    return new


async def command(rot: Rotating, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = await rot.api.operate.post(
        f"/api/stations/{rot.charger.station_id}/commands/{action}", json=payload
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()["response"]
    return answer


async def test_a_16_charger_takes_a_rotated_password_and_reconnects_with_it(
    tmp_path: Path,
) -> None:
    async with rotating(tmp_path, "CP-ROT16", "ocpp1.6") as rot:
        new = await rotate_and_reconnect(rot)
        # Write-only: the key is listed, its value never.
        listed = await command(rot, "GetConfiguration", {"key": ["AuthorizationKey"]})
        assert listed == {"configurationKey": [{"key": "AuthorizationKey", "readonly": False}]}
        everything = await command(rot, "GetConfiguration", {})
        assert new.encode().hex().upper() not in str(everything)
        assert new not in str(everything)
        # A value that is no valid password is refused and changes nothing.
        refused = await command(
            rot, "ChangeConfiguration", {"key": "AuthorizationKey", "value": "0102"}
        )
        assert refused == {"status": "Rejected"}
        assert rot.charger.connections == 2 and rot.charger.passwords_taken == 1
        assert rot.security.password_of("CP-ROT16") == new


async def test_a_201_charger_takes_a_rotated_password_and_reconnects_with_it(
    tmp_path: Path,
) -> None:
    async with rotating(tmp_path, "CP-ROT201", "ocpp2.0.1") as rot:
        await rotate_and_reconnect(rot)
        variable = {
            "component": {"name": "SecurityCtrlr"},
            "variable": {"name": "BasicAuthPassword"},
        }
        read = await command(rot, "GetVariables", {"getVariableData": [variable]})
        assert read["getVariableResult"] == [{**variable, "attributeStatus": "Rejected"}]
        too_short = await command(
            rot, "SetVariables", {"setVariableData": [{**variable, "attributeValue": "short"}]}
        )
        assert too_short["setVariableResult"][0]["attributeStatus"] == "Rejected"
        assert rot.charger.connections == 2


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        (b"the-new-password-16".hex(), True),  # lower-case hex is hex too
        (b"twenty-bytes-pass-20".hex().upper(), True),
        (b"twenty-one-bytes-pw-21".hex(), False),  # over 40 hex digits
        (b"fifteen-bytes-p".hex(), False),  # under 16 characters
        (b"a password 123456".hex(), False),  # a space
        ("zz" * 16, False),  # not hex
        (b"the-new-password-16".hex()[:-1], False),  # an odd number of digits
        (" ".join(["41"] * 16), False),  # bytes.fromhex would skip the spaces
        ("c3a9" * 8, False),  # not ASCII
    ],
)
def test_an_authorization_key_must_carry_a_valid_password(value: str, accepted: bool) -> None:
    store = ConfigStore(1)
    status = store.change("AuthorizationKey", value)
    assert (status is ConfigurationStatus.ACCEPTED) is accepted
    assert (password_of_key(value) is not None) is accepted
    entry = store.get_configuration(["AuthorizationKey"])["configurationKey"][0]
    assert "value" not in entry
