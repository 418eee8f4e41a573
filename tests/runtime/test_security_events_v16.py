"""The 1.6 security whitepaper's messages from a charge point: SecurityEventNotification is
stored as it came and answered; LogStatusNotification and SignedFirmwareStatusNotification
report like their 1.6 counterparts; SignCertificate is refused as not supported."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import orjson
import trio
from support.charger import connect_charger, ts

from csms.runtime.server import Csms
from csms.storage.sqlite import sqlite_path


async def test_security_events_are_stored_and_answered(csms: Csms) -> None:
    event = {"type": "InvalidCentralSystemCertificate", "timestamp": ts(), "techInfo": "cn"}
    async with connect_charger(csms.ocpp_port, "CP-SEC") as charger:
        assert (await charger.boot())[2]["status"] == "Accepted"
        assert await charger.call("SecurityEventNotification", event) == [3, "2", {}]
        answer = await charger.call("SecurityEventNotification", {"type": "x"})
        assert answer[0] == 4 and answer[2] in (
            "OccurenceConstraintViolation",
            "FormationViolation",
        )
        log = await charger.call("LogStatusNotification", {"status": "Uploading", "requestId": 7})
        assert log == [3, "4", {}]
        firmware = await charger.call("SignedFirmwareStatusNotification", {"status": "Downloading"})
        assert firmware == [3, "5", {}]
        refused = await charger.call("SignCertificate", {"csr": "-----BEGIN CSR-----"})
        assert refused[0] == 4 and refused[2] == "NotSupported"
        # A kept notification is answered after its commit; a status is answered at once.
        rows = read(csms, "SELECT data FROM events WHERE kind = 'security_event'")
        assert [orjson.loads(r[0]) for r in rows] == [event]
        with trio.fail_after(10):
            while read(csms, "SELECT firmware_status FROM stations") != [("Downloading",)]:
                await trio.sleep(0.01)
    assert read(csms, "SELECT diagnostics_status FROM stations") == [("Uploading",)]


def read(csms: Csms, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(sqlite_path(csms.settings.database_url))) as db:
        return db.execute(sql).fetchall()
