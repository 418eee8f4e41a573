"""Password rotation of profile 1 stations through the API, over real loopback handshakes.

The CSMS sends the new password (1.6: ChangeConfiguration AuthorizationKey, hex-encoded;
2.0.1: SetVariables SecurityCtrlr.BasicAuthPassword); the old password stays valid until the
station has logged in with the new one, and then only the new one is. A station that
refuses the password keeps the old one. Neither password reaches the database or the audit
log in clear.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio
from api_harness import Api, running_api, scripted_charger
from support.settings import make_settings
from trio_websocket import ConnectionRejected

from csms.domain.credentials import hash_password, verify_password
from csms.storage.sqlite import SqliteStore, sqlite_path

OLD = "the-old-password-1234"
Headers = list[tuple[bytes, bytes]]


def basic(user: str, password: str) -> Headers:
    return [(b"authorization", b"Basic " + base64.b64encode(f"{user}:{password}".encode()))]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(make_settings(tmp_path, call_timeout=2.0)) as running:
        yield running


def register(api: Api, station_id: str, profile: int = 1, password: str | None = OLD) -> None:
    store = SqliteStore(sqlite_path(api.csms.settings.database_url))
    try:
        hashed = hash_password(password) if password is not None else None
        assert store.add_station(station_id, profile, hashed)
    finally:
        store.close()


def station_row(api: Api, station_id: str) -> sqlite3.Row:
    with closing(sqlite3.connect(sqlite_path(api.csms.settings.database_url))) as db:
        db.row_factory = sqlite3.Row
        row: sqlite3.Row = db.execute(
            "SELECT * FROM stations WHERE id = ?", (station_id,)
        ).fetchone()
        return row


def every_stored_text(api: Api) -> str:
    """Every row of the tables a password could leak into, as one text."""
    with closing(sqlite3.connect(sqlite_path(api.csms.settings.database_url))) as db:
        rows = [
            *db.execute("SELECT * FROM audit_log").fetchall(),
            *db.execute("SELECT * FROM events").fetchall(),
            *db.execute("SELECT * FROM stations").fetchall(),
        ]
    return repr(rows)


async def logs_in(api: Api, station_id: str, password: str, subprotocol: str = "ocpp1.6") -> bool:
    """Whether a connection with these credentials is let in (it is closed right after)."""
    try:
        with trio.fail_after(10):
            async with scripted_charger(
                api.ocpp_port,
                station_id,
                boot=False,
                subprotocol=subprotocol,
                headers=basic(station_id, password),
            ):
                return True
    except ConnectionRejected as refusal:
        assert refusal.status_code == 401
        return False


async def rotate(api: Api, station_id: str, body: dict[str, Any] | None = None) -> Any:
    return await api.admin.post(f"/api/stations/{station_id}/password", json=body)


async def test_a_16_station_gets_a_new_password_and_the_old_one_lasts_until_it_logs_in(
    api: Api,
) -> None:
    register(api, "CP-R")
    answers = {"ChangeConfiguration": {"status": "Accepted"}}
    async with scripted_charger(
        api.ocpp_port, "CP-R", answers, headers=basic("CP-R", OLD)
    ) as charger:
        response = await rotate(api, "CP-R")
        assert response.status_code == 200, response.text
        new = response.json()["password"]
        assert response.json()["state"] == "pending"
        assert len(new) == 20 and new != OLD
        [(_, payload)] = [c for c in charger.received if c[0] == "ChangeConfiguration"]
        assert payload == {"key": "AuthorizationKey", "value": new.encode().hex().upper()}
    row = station_row(api, "CP-R")
    assert verify_password(OLD.encode(), row["password_hash"])
    assert verify_password(new.encode(), row["pending_password_hash"])

    # Until the station has logged in with the new password, the old one still works.
    assert await logs_in(api, "CP-R", OLD)
    assert await logs_in(api, "CP-R", new)
    row = station_row(api, "CP-R")
    assert row["pending_password_hash"] is None
    assert verify_password(new.encode(), row["password_hash"])
    # From then on only the new one does.
    assert not await logs_in(api, "CP-R", OLD)
    assert await logs_in(api, "CP-R", new)

    stored = every_stored_text(api)
    assert new not in stored and new.encode().hex().upper() not in stored and OLD not in stored
    with closing(sqlite3.connect(sqlite_path(api.csms.settings.database_url))) as db:
        steps = db.execute(
            "SELECT data FROM events WHERE kind = 'password_rotation' ORDER BY id"
        ).fetchall()
    assert [s[0] for s in steps] == [
        '{"stage":"offered","applied":true}',
        '{"stage":"confirmed","applied":true}',
    ]


async def test_a_station_that_refuses_the_password_keeps_the_old_one(api: Api) -> None:
    register(api, "CP-R")
    wanted = "a-chosen-password-42"
    answers = {"ChangeConfiguration": {"status": "Rejected"}}
    async with scripted_charger(api.ocpp_port, "CP-R", answers, headers=basic("CP-R", OLD)):
        response = await rotate(api, "CP-R", {"password": wanted})
        assert response.status_code == 409
        assert "refused" in response.json()["detail"] and wanted not in response.text
    assert station_row(api, "CP-R")["pending_password_hash"] is None
    assert not await logs_in(api, "CP-R", wanted)
    assert await logs_in(api, "CP-R", OLD)


async def test_a_201_station_gets_its_password_through_set_variables(api: Api) -> None:
    register(api, "CP-2X")
    wanted = "a-201-password-that-is-32-chars!"
    answers = {
        "SetVariables": {
            "setVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "component": {"name": "SecurityCtrlr"},
                    "variable": {"name": "BasicAuthPassword"},
                }
            ]
        }
    }
    async with scripted_charger(
        api.ocpp_port,
        "CP-2X",
        answers,
        boot=False,
        subprotocol="ocpp2.0.1",
        headers=basic("CP-2X", OLD),
    ) as charger:
        response = await rotate(api, "CP-2X", {"password": wanted})
        assert response.status_code == 200, response.text
        [(_, payload)] = [c for c in charger.received if c[0] == "SetVariables"]
        [data] = payload["setVariableData"]
        assert data["attributeValue"] == wanted
        assert data["variable"] == {"name": "BasicAuthPassword"}
    assert await logs_in(api, "CP-2X", wanted, "ocpp2.0.1")
    assert not await logs_in(api, "CP-2X", OLD, "ocpp2.0.1")
    assert wanted not in every_stored_text(api)


async def test_rotation_refusals_say_why_and_change_nothing(api: Api) -> None:
    register(api, "CP-0", profile=0, password=None)
    register(api, "CP-R")
    assert (await rotate(api, "CP-NONE")).status_code == 404
    assert "profile 0" in (await rotate(api, "CP-0")).json()["detail"]
    assert "offline" in (await rotate(api, "CP-R")).json()["detail"]
    async with scripted_charger(api.ocpp_port, "CP-R", headers=basic("CP-R", OLD)):
        too_long_for_16 = await rotate(api, "CP-R", {"password": "x" * 21})
        assert too_long_for_16.status_code == 422
        assert "AuthorizationKey holds at most 20" in too_long_for_16.text
        assert (await rotate(api, "CP-R", {"password": "short"})).status_code == 422
        assert (await rotate(api, "CP-R", {"password": "with a space 123456"})).status_code == 422
        assert (await api.operate.post("/api/stations/CP-R/password")).status_code == 403
    assert station_row(api, "CP-R")["pending_password_hash"] is None
    assert await logs_in(api, "CP-R", OLD)


async def test_passwords_in_generic_commands_are_redacted_in_the_audit_log(api: Api) -> None:
    register(api, "CP-R")
    secret = "0123456789ABCDEF0123"
    async with scripted_charger(api.ocpp_port, "CP-R", headers=basic("CP-R", OLD)):
        response = await api.operate.post(
            "/api/stations/CP-R/commands/ChangeConfiguration",
            json={"key": "AuthorizationKey", "value": secret},
        )
        assert response.status_code == 200, response.text
    stored = every_stored_text(api)
    assert secret not in stored and "<redacted>" in stored
