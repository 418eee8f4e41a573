"""Bad input over loopback: the right 1.6 CALLERROR, no row written, nobody else harmed.

Each case runs against a live server with a second, healthy charger connected at the same
time, which must keep working afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from runtime_harness import connect_raw, open_store, running_csms, wait_until
from support.charger import TestCharger, connect_charger, ts
from support.settings import make_settings
from trio_websocket import ConnectionClosed

from csms.domain.ledger import UnknownStationPolicy
from csms.runtime.server import Csms

START = {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": ts()}
METER = {
    "connectorId": 1,
    "meterValue": [{"timestamp": ts(60), "sampledValue": [{"value": "1500", "unit": "Wh"}]}],
}


def _rows(csms: Csms) -> tuple[int, int]:
    from csms.storage.sqlite import SqliteStore, sqlite_path

    store = SqliteStore(sqlite_path(csms.settings.database_url))
    try:
        return store.count("transactions"), store.count("meter_samples")
    finally:
        store.close()


@asynccontextmanager
async def healthy_neighbour(csms: Csms) -> AsyncIterator[TestCharger]:
    """A booted charger that shares the server with the misbehaving one."""
    async with connect_charger(csms.ocpp_port, "CP-OK") as charger:
        assert (await charger.boot())[2]["status"] == "Accepted"
        yield charger


async def assert_still_healthy(csms: Csms, charger: TestCharger) -> None:
    """The neighbour still gets answers, records a transaction, and takes commands."""
    with trio.fail_after(5):
        assert (await charger.call("Heartbeat", {}))[0] == 3
        start = await charger.call("StartTransaction", START)
        assert start[0] == 3
        transaction_id = start[2]["transactionId"]
        stop = await charger.call(
            "StopTransaction",
            {"transactionId": transaction_id, "meterStop": 2000, "timestamp": ts(600)},
        )
        assert stop[0] == 3
        assert await csms.registry.send_command("CP-OK", "ClearCache", {}) == {"status": "Accepted"}
    async with open_store(csms.settings) as store:
        session = store.get_session(transaction_id)
        assert session is not None and session["energy_wh"] == 1000


def _frame(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


LONG_ID = "m" * 37

BAD_FRAMES: list[tuple[str, Any, str, str]] = [
    # (case id, what is sent, expected CALLERROR code, expected message id in the answer)
    ("not-json", '[2, "m1", "StartTransaction", {', "FormationViolation", "-1"),
    ("not-an-array", {"messageTypeId": 2, "action": "Heartbeat"}, "FormationViolation", "-1"),
    ("short-array", [2, "m2"], "FormationViolation", "-1"),
    ("id-not-a-string", [2, 17, "Heartbeat", {}], "FormationViolation", "-1"),
    ("wrong-message-type", [7, "m3", "StartTransaction", START], "ProtocolError", "m3"),
    ("call-without-payload", [2, "m4", "StartTransaction"], "FormationViolation", "m4"),
    ("payload-not-object", [2, "m5", "StartTransaction", [START]], "FormationViolation", "m5"),
    (
        "missing-fields",
        [2, "m6", "StartTransaction", {"connectorId": 1, "timestamp": ts()}],
        "OccurenceConstraintViolation",
        "m6",
    ),
    (
        "wrong-type",
        [2, "m7", "StartTransaction", {**START, "meterStart": "1000"}],
        "TypeConstraintViolation",
        "m7",
    ),
    (
        "wrong-type-meter-value",
        [
            2,
            "m8",
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": [{"timestamp": ts(60), "sampledValue": [{"value": 1500}]}],
            },
        ],
        "TypeConstraintViolation",
        "m8",
    ),
    (
        "bad-enum",
        [
            2,
            "m9",
            "MeterValues",
            {
                **METER,
                "meterValue": [
                    {"timestamp": ts(60), "sampledValue": [{"value": "1", "unit": "Furlongs"}]}
                ],
            },
        ],
        "PropertyConstraintViolation",
        "m9",
    ),
    (
        "additional-property",
        [2, "m10", "StartTransaction", {**START, "bonus": True}],
        "FormationViolation",
        "m10",
    ),
    ("unknown-action", [2, "m11", "StartTeleport", START], "NotImplemented", "m11"),
    ("csms-only-action", [2, "m12", "Reset", {"type": "Hard"}], "NotSupported", "m12"),
    ("message-id-too-long", [2, LONG_ID, "StartTransaction", START], "ProtocolError", LONG_ID),
]


@pytest.mark.parametrize(
    ("sent", "code", "message_id"),
    [case[1:] for case in BAD_FRAMES],
    ids=[case[0] for case in BAD_FRAMES],
)
async def test_bad_frame_gets_callerror_and_writes_nothing(
    csms: Csms, sent: Any, code: str, message_id: str
) -> None:
    async with (
        healthy_neighbour(csms) as neighbour,
        connect_charger(csms.ocpp_port, "CP-BAD") as bad,
    ):
        assert (await bad.boot())[2]["status"] == "Accepted"
        before = _rows(csms)
        with trio.fail_after(5):
            reply = await bad.send_raw(_frame(sent))
        assert reply[0] == 4
        assert reply[1] == message_id
        assert reply[2] == code
        assert isinstance(reply[3], str) and reply[3]
        assert isinstance(reply[4], dict)
        assert _rows(csms) == before
        # The misbehaving charger is still connected and served.
        assert "CP-BAD" in csms.registry
        assert (await bad.call("Heartbeat", {}))[0] == 3
        await assert_still_healthy(csms, neighbour)


async def test_broken_reply_frames_are_dropped_not_answered(csms: Csms) -> None:
    """A malformed CALLRESULT/CALLERROR is dropped as the spec says; the socket lives on."""
    async with healthy_neighbour(csms) as neighbour, connect_raw(csms.ocpp_port, "CP-BAD") as bad:
        await bad.boot()
        before = _rows(csms)
        # (A reply frame shorter than 3 elements is answered with a FormationViolation "-1"
        # by the parser, which checks the length before the type; not covered here.)
        for frame in ([3, "x2", "not an object"], [4, "x3", "Oops"], [3, "x4", {}]):
            await bad.send(frame)
        # Nothing answers those; the next CALL's answer is the next frame we see.
        heartbeat = await bad.call("Heartbeat", {})
        assert heartbeat[0] == 3
        assert _rows(csms) == before
        await assert_still_healthy(csms, neighbour)


async def test_calls_before_accepted_boot_are_security_errors(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, unknown_stations=UnknownStationPolicy.REJECT)
    async with running_csms(settings) as csms:
        async with open_store(settings) as store:
            assert store.add_station("CP-OK")
        async with (
            healthy_neighbour(csms) as neighbour,
            connect_charger(csms.ocpp_port, "CP-STRANGER") as stranger,
        ):
            before = _rows(csms)
            # Before any boot: refused.
            start = await stranger.call("StartTransaction", START)
            assert start[0] == 4 and start[2] == "SecurityError"
            # An unknown station's boot is Rejected under the reject policy ...
            boot = await stranger.boot()
            assert boot[0] == 3 and boot[2]["status"] == "Rejected"
            # ... and it stays refused after that.
            for action, payload in (
                ("Heartbeat", {}),
                ("StartTransaction", START),
                ("MeterValues", METER),
                ("Authorize", {"idTag": "TAG1"}),
            ):
                reply = await stranger.call(action, payload)
                assert reply[0] == 4, (action, reply)
                assert reply[2] == "SecurityError", (action, reply)
            assert _rows(csms) == before
            async with open_store(settings) as store:
                station = store.get_station("CP-STRANGER")
                assert station is not None
                assert station["registered"] == 0
                assert station["registration_status"] == "Rejected"
            await assert_still_healthy(csms, neighbour)


async def test_pending_station_may_only_boot(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, unknown_stations=UnknownStationPolicy.PENDING)
    async with running_csms(settings) as csms:
        async with open_store(settings) as store:
            assert store.add_station("CP-OK")
        async with (
            healthy_neighbour(csms) as neighbour,
            connect_charger(csms.ocpp_port, "CP-NEW") as newcomer,
        ):
            before = _rows(csms)
            boot = await newcomer.boot()
            assert boot[0] == 3 and boot[2]["status"] == "Pending"
            for action, payload in (("StartTransaction", START), ("MeterValues", METER)):
                reply = await newcomer.call(action, payload)
                assert reply[0] == 4 and reply[2] == "SecurityError", (action, reply)
            # A second boot is still allowed (and still Pending).
            again = await newcomer.boot()
            assert again[0] == 3 and again[2]["status"] == "Pending"
            assert _rows(csms) == before
            await assert_still_healthy(csms, neighbour)


async def test_oversized_frame_closes_with_1009(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_message_size=1024)
    async with running_csms(settings) as csms, healthy_neighbour(csms) as neighbour:
        async with connect_raw(csms.ocpp_port, "CP-BIG") as big:
            await big.boot()
            before = _rows(csms)
            huge = {
                **METER,
                "meterValue": [{"timestamp": ts(60), "sampledValue": [{"value": "1500"}] * 200}],
            }
            frame = orjson.dumps([2, "big", "MeterValues", huge]).decode()
            assert len(frame) > settings.max_message_size
            with trio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
                await big.ws.send_message(frame)
                await big.ws.get_message()
            assert closed.value.reason is not None
            assert closed.value.reason.code == 1009
        await wait_until(lambda: "CP-BIG" not in csms.registry)
        assert _rows(csms) == before
        await assert_still_healthy(csms, neighbour)


async def test_frame_whose_ledger_rule_fails_gets_internal_error(csms: Csms) -> None:
    """Schema-valid, yet the ledger cannot store it (a transaction id beyond SQLite's
    64-bit integers): that event fails alone with InternalError; the server lives on.

    Regression: the ledger actor's log line for a failed rule passed `event=` to structlog
    and raised TypeError, which killed the ledger actor and with it the whole CSMS.
    """
    async with (
        healthy_neighbour(csms) as neighbour,
        connect_charger(csms.ocpp_port, "CP-BAD") as bad,
    ):
        await bad.boot()
        before = _rows(csms)
        with trio.fail_after(5):
            reply = await bad.call(
                "StopTransaction", {"transactionId": 2**63, "meterStop": 1, "timestamp": ts()}
            )
        assert reply[0] == 4
        assert reply[2] == "InternalError"
        assert _rows(csms) == before
        assert (await bad.call("Heartbeat", {}))[0] == 3
        await assert_still_healthy(csms, neighbour)
