"""A first end-to-end check: a charger boots, charges and stops against the real server."""

from __future__ import annotations

from support.charger import connect_charger, ts

from csms.runtime.server import Csms
from csms.storage.sqlite import SqliteStore, sqlite_path


async def test_a_session_is_recorded(csms: Csms) -> None:
    async with connect_charger(csms.ocpp_port, "CP-1") as charger:
        boot = await charger.boot()
        assert boot[2]["status"] == "Accepted"
        start = await charger.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": ts()},
        )
        transaction_id = start[2]["transactionId"]
        assert start[2]["idTagInfo"]["status"] == "Invalid"
        stop = await charger.call(
            "StopTransaction",
            {"transactionId": transaction_id, "meterStop": 5000, "timestamp": ts(600)},
        )
        assert stop[0] == 3
    store = SqliteStore(sqlite_path(csms.settings.database_url))
    session = store.get_session(transaction_id)
    assert session is not None
    assert session["energy_wh"] == 4000
    assert session["status"] == "Completed"
