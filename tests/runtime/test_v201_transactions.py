"""OCPP 2.0.1 stations on the real CSMS (in-memory connections, virtual time): boot and
registration, authorization of every IdToken type, TransactionEvent with its sequence
numbers (gaps, reordering, duplicates), offline replay, tokens that change mid-session,
and a 2.0.1 and a 1.6 station writing one ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from runtime_harness import MemoryCsms, RawCharger, memory_csms
from support.settings import make_settings
from v201_harness import (
    BASE,
    reading,
    session_events,
    station_2x,
    token,
    ts,
    tx_event,
)

from csms.config import Settings
from csms.domain.events import ANSWERED_AFTER_COMMIT, TransactionEventReported
from csms.domain.ledger import UnknownStationPolicy
from csms.domain.tariffs import Tariff, parse_tariff
from csms.storage.sqlite import SqliteStore


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[MemoryCsms]:
    async with memory_csms(settings) as running:
        running.store.upsert_token("TAG-1")
        running.store.upsert_token("TAG-2")
        yield running


def _tariff() -> Tariff:
    return parse_tariff(
        {
            "country_code": "DE",
            "party_id": "CSM",
            "id": "T-201",
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 0.5, "step_size": 1}]}],
            "last_updated": "2026-01-01T00:00:00Z",
        }
    )


def _rows(store: SqliteStore, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return list(store._db.execute(sql, params).fetchall())


def _session(store: SqliteStore, station: str, tx_id: str) -> dict[str, Any]:
    ((ledger_id,),) = _rows(
        store,
        "SELECT transaction_id FROM station_transactions WHERE station_id = ? AND"
        " station_tx_id = ?",
        station,
        tx_id,
    )
    session = store.get_session(ledger_id)
    assert session is not None
    return session


async def _run(station: Any, payloads: list[dict[str, Any]]) -> list[list[Any]]:
    return [await station.call("TransactionEvent", payload) for payload in payloads]


def test_transaction_events_are_answered_after_the_commit() -> None:
    assert issubclass(TransactionEventReported, ANSWERED_AFTER_COMMIT)


# -- boot and registration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "answered"),
    [(UnknownStationPolicy.PENDING, "Pending"), (UnknownStationPolicy.REJECT, "Rejected")],
)
async def test_a_station_not_accepted_may_only_boot(
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    policy: UnknownStationPolicy,
    answered: str,
) -> None:
    settings = make_settings(tmp_path, unknown_stations=policy)
    async with memory_csms(settings) as server, station_2x(server, "CP-NEW") as station:
        boot = await station.boot()
        assert boot[0] == 3
        assert boot[2]["status"] == answered
        assert boot[2]["interval"] > 0
        for action, payload in [
            ("Heartbeat", {}),
            ("TransactionEvent", session_events("T-1", "TAG-1", 0, 10)[0]),
            ("NotifyReport", {"requestId": 1, "generatedAt": ts(), "seqNo": 0}),
        ]:
            refused = await station.call(action, payload)
            assert refused[0] == 4
            assert refused[2] == "SecurityError"
        assert server.store.count("transactions") == 0
        # Registered by an operator, the station is accepted at its next boot.
        server.store.add_station("CP-NEW")
        assert (await station.boot())[2]["status"] == "Accepted"
        assert (await station.call("Heartbeat", {}))[0] == 3
        assert server.store.events("CP-NEW", "boot")[0]["data"] == (
            f'{{"status":"{answered}","reason":"PowerUp"}}'
        )


async def test_boot_heartbeat_and_status(server: MemoryCsms) -> None:
    async with station_2x(server, "CP-201") as station:
        boot = await station.boot()
        assert boot[2]["status"] == "Accepted"
        assert (await station.call("Heartbeat", {}))[2]["currentTime"].endswith("Z")
        status = await station.call(
            "StatusNotification",
            {"timestamp": ts(), "connectorStatus": "Occupied", "evseId": 2, "connectorId": 1},
        )
        assert status == [3, status[1], {}]
    row = server.store.get_station("CP-201")
    assert row is not None
    assert (row["vendor"], row["model"], row["serial_number"]) == ("TestVendor", "T-201", "S-1")
    (history,) = server.store.status_history("CP-201")
    assert (history["connector_id"], history["status"]) == (2, "Occupied")


# -- authorization --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "status"),
    [
        ("ISO14443", "TAG-1", "Accepted"),
        ("ISO15693", "TAG-2", "Accepted"),
        ("eMAID", "NL-TNM-C00122045-K", "Accepted"),
        ("KeyCode", "1234", "Accepted"),
        ("Central", "APP-77", "Accepted"),
        ("Local", "LOCAL-9", "Accepted"),
        ("MacAddress", "00:1A:2B:3C:4D:5E", "Accepted"),
        ("ISO14443", "UNKNOWN-TAG", "Invalid"),
        ("eMAID", "BLOCKED-1", "Blocked"),
        ("NoAuthorization", "", "Accepted"),
    ],
)
async def test_authorize_every_id_token_type(
    server: MemoryCsms, kind: str, value: str, status: str
) -> None:
    for known in ("NL-TNM-C00122045-K", "1234", "APP-77", "LOCAL-9", "00:1A:2B:3C:4D:5E"):
        server.store.upsert_token(known)
    server.store.upsert_token("BLOCKED-1", status="Blocked")
    async with station_2x(server, "CP-AUTH") as station:
        await station.boot()
        answer = await station.call("Authorize", {"idToken": token(value, kind)})
    assert answer[0] == 3
    assert answer[2] == {"idTokenInfo": {"status": status}}


async def test_authorize_answers_group_and_cache_expiry(server: MemoryCsms) -> None:
    expiry = BASE.replace(year=2099)  # the ledger judges expiry by the wall clock
    server.store.upsert_token("FLEET", expiry=expiry + timedelta(days=1))
    server.store.upsert_token("CARD-7", expiry=expiry, parent_id_tag="FLEET")
    server.store.upsert_token("CARD-8", parent_id_tag="GONE")
    server.store.upsert_token("GONE", expiry=BASE - timedelta(days=1))
    async with station_2x(server, "CP-GROUP") as station:
        await station.boot()
        member = await station.call("Authorize", {"idToken": token("CARD-7")})
        expired_group = await station.call("Authorize", {"idToken": token("CARD-8")})
    assert member[2]["idTokenInfo"] == {
        "status": "Accepted",
        "cacheExpiryDateTime": "2099-03-02T09:00:00.000Z",
        "groupIdToken": {"idToken": "FLEET", "type": "Central"},
    }
    assert expired_group[2]["idTokenInfo"]["status"] == "Expired"


# -- transactions ---------------------------------------------------------------------------


async def test_a_full_transaction(server: MemoryCsms) -> None:
    async with station_2x(server, "CP-TX") as station:
        await station.boot()
        started, updated, ended = await _run(
            station, session_events("TX-A", "TAG-1", 10_000, 17_500)
        )
    assert started[2] == {"idTokenInfo": {"status": "Accepted"}}
    assert updated[2] == {}
    assert ended[2] == {}
    session = _session(server.store, "CP-TX", "TX-A")
    assert {k: session[k] for k in ("station_id", "connector_id", "id_tag", "status")} == {
        "station_id": "CP-TX",
        "connector_id": 1,
        "id_tag": "TAG-1",
        "status": "Completed",
    }
    assert (session["meter_start_wh"], session["meter_stop_wh"], session["energy_wh"]) == (
        10_000,
        17_500,
        7_500,
    )
    assert session["started_at"] == "2026-03-02T09:00:00.000000+00:00"
    assert session["ended_at"] == "2026-03-02T09:30:00.000000+00:00"
    assert session["stop_reason"] == "EVDisconnected"
    assert session["anomalies"] is None
    contexts = [(s["context"], s["wh"]) for s in session["meter_samples"]]
    assert contexts == [
        ("Transaction.Begin", 10_000.0),
        ("Sample.Periodic", 13_750.0),
        ("Transaction.End", 17_500.0),
    ]
    assert _rows(
        server.store,
        "SELECT seq_no, event_type, trigger_reason, offline FROM station_transaction_events"
        " ORDER BY seq_no",
    ) == [
        (0, "Started", "Authorized", 0),
        (1, "Updated", "MeterValuePeriodic", 0),
        (
            2,
            "Ended",
            "EVDeparted",
            0,
        ),
    ]
    assert _rows(
        server.store,
        "SELECT evse_id, connector_id, token_type, charging_state FROM station_transactions",
    ) == [(1, 1, "ISO14443", "Charging")]


async def test_retried_events_are_not_counted_twice(server: MemoryCsms) -> None:
    """The same event again, with a new message id (a lost answer): nothing changes, and
    it is answered as before."""
    started, updated, ended = session_events("TX-DUP", "TAG-1", 1_000, 5_000)
    async with station_2x(server, "CP-DUP") as station:
        await station.boot()
        first = await _run(station, [started, started, updated, updated, ended, ended])
    assert [answer[0] for answer in first] == [3] * 6
    assert first[0][2] == first[1][2] == {"idTokenInfo": {"status": "Accepted"}}
    assert server.store.count("transactions") == 1
    session = _session(server.store, "CP-DUP", "TX-DUP")
    assert session["energy_wh"] == 4_000
    assert len(session["meter_samples"]) == 3
    assert _rows(server.store, "SELECT COUNT(*) FROM station_transaction_events") == [(3,)]


async def test_a_gap_in_sequence_numbers_is_flagged_until_it_fills(server: MemoryCsms) -> None:
    started, updated, ended = session_events("TX-GAP", "TAG-1", 2_000, 6_000)
    async with station_2x(server, "CP-GAP") as station:
        await station.boot()
        await _run(station, [started, ended])
        gapped = _session(server.store, "CP-GAP", "TX-GAP")
        assert gapped["status"] == "Completed"
        assert gapped["energy_wh"] == 4_000
        assert gapped["anomalies"] == "seq_gap"
        assert gapped["needs_reconciliation"] == 1
        (gap,) = server.store.events("CP-GAP", "transaction_seq_gap")
        assert '"seq_nos":[1]' in gap["data"]
        # The missing event arrives late: the gap closes, nothing is counted twice.
        await _run(station, [updated])
    filled = _session(server.store, "CP-GAP", "TX-GAP")
    assert filled["anomalies"] is None
    assert filled["energy_wh"] == 4_000
    assert len(filled["meter_samples"]) == 3
    assert len(server.store.events("CP-GAP", "transaction_seq_gap_closed")) == 1


async def test_events_that_overtake_their_started(server: MemoryCsms) -> None:
    """Updated and Ended arrive before Started: the transaction opens flagged, and the
    Started fills in its start and its energy."""
    server.store.add_tariff(_tariff(), BASE, BASE, default=True)
    started, updated, ended = session_events("TX-LATE", "TAG-1", 3_000, 9_000)
    async with station_2x(server, "CP-ORDER") as station:
        await station.boot()
        answers = await _run(station, [updated, ended])
        early = _session(server.store, "CP-ORDER", "TX-LATE")
        assert early["status"] == "Completed"
        assert early["started_at"] is None
        assert "start_missing" in early["anomalies"]
        assert server.store.get_cdr(early["id"]) is None  # no start: nothing to rate yet
        assert answers[1][2] == {}  # so no total cost either
        answers += await _run(station, [started])
    assert [answer[0] for answer in answers] == [3, 3, 3]
    late = _session(server.store, "CP-ORDER", "TX-LATE")
    assert late["started_at"] == "2026-03-02T09:00:00.000000+00:00"
    assert (late["meter_start_wh"], late["meter_stop_wh"], late["energy_wh"]) == (
        3_000,
        9_000,
        6_000,
    )
    assert late["id_tag"] == "TAG-1"
    assert late["anomalies"] is None
    assert server.store.count("transactions") == 1
    cdr = server.store.get_cdr(late["id"])
    assert cdr is not None
    assert (cdr["total_energy"], cdr["total_cost"]["excl_vat"]) == (6, 3)  # 6 kWh at 0.50


async def test_offline_transactions_delivered_late(
    server: MemoryCsms, autojump_clock: trio.testing.MockClock
) -> None:
    """Two sessions held while the station was offline, sent after it reconnected."""
    held = [
        *session_events("TX-OFF-1", "TAG-1", 100, 2_100, offline=True),
        *session_events("TX-OFF-2", "TAG-2", 2_100, 4_600, minutes=40, offline=True),
    ]
    async with station_2x(server, "CP-OFF") as station:
        await station.boot()
    await trio.sleep(3600)  # offline for an hour, then back with what it held
    async with station_2x(server, "CP-OFF") as station:
        await station.boot()
        answers = await _run(station, held)
    assert all(answer[0] == 3 for answer in answers)
    first = _session(server.store, "CP-OFF", "TX-OFF-1")
    second = _session(server.store, "CP-OFF", "TX-OFF-2")
    assert (first["energy_wh"], second["energy_wh"]) == (2_000, 2_500)
    assert first["started_at"] == "2026-03-02T09:00:00.000000+00:00"
    assert second["started_at"] == "2026-03-02T09:40:00.000000+00:00"
    assert first["status"] == second["status"] == "Completed"
    assert _rows(server.store, "SELECT SUM(offline) FROM station_transaction_events") == [(6,)]


async def test_the_id_token_arrives_and_changes_mid_session(server: MemoryCsms) -> None:
    async with station_2x(server, "CP-TOK") as station:
        await station.boot()
        plugged = tx_event(
            "Started",
            0,
            "TX-TOK",
            "CablePluggedIn",
            0,
            meter=[reading(0, 500, "Transaction.Begin")],
            charging_state="EVConnected",
        )
        authorized = tx_event("Updated", 1, "TX-TOK", "Authorized", 1, id_token=token("TAG-1"))
        changed = tx_event(
            "Updated", 2, "TX-TOK", "Authorized", 2, id_token=token("TAG-2", "ISO15693")
        )
        stop = tx_event(
            "Updated", 3, "TX-TOK", "StopAuthorized", 20, id_token=token("TAG-2", "ISO15693")
        )
        ended = tx_event(
            "Ended",
            4,
            "TX-TOK",
            "StopAuthorized",
            20,
            meter=[reading(20, 2_500, "Transaction.End")],
            stopped_reason="Local",
        )
        answers = await _run(station, [plugged, authorized, changed, stop, ended])
    assert answers[0][2] == {}
    assert [a[2]["idTokenInfo"]["status"] for a in answers[1:4]] == ["Accepted"] * 3
    session = _session(server.store, "CP-TOK", "TX-TOK")
    assert session["id_tag"] == "TAG-2"
    assert _rows(server.store, "SELECT stop_id_tag FROM transactions") == [("TAG-2",)]
    assert session["energy_wh"] == 2_000
    (change,) = server.store.events("CP-TOK", "id_token_changed")
    assert '"from":"TAG-1","to":"TAG-2"' in change["data"]


async def test_a_refused_token_is_recorded_and_answered(server: MemoryCsms) -> None:
    server.store.upsert_token("TAG-BAD", status="Blocked")
    started, _, ended = session_events("TX-REF", "TAG-BAD", 0, 50)
    async with station_2x(server, "CP-REF") as station:
        await station.boot()
        answers = await _run(station, [started, ended])
    assert answers[0][2] == {"idTokenInfo": {"status": "Blocked"}}
    session = _session(server.store, "CP-REF", "TX-REF")
    assert session["auth_status"] == "Blocked"
    assert session["energy_wh"] == 50


async def test_meter_values_outside_a_transaction(server: MemoryCsms) -> None:
    async with station_2x(server, "CP-MV") as station:
        await station.boot()
        answer = await station.call(
            "MeterValues",
            {"evseId": 2, "meterValue": [reading(5, 1.5, "Sample.Clock", power_w=7_400)]},
        )
        kwh = await station.call(
            "MeterValues",
            {
                "evseId": 2,
                "meterValue": [
                    {
                        "timestamp": ts(6),
                        "sampledValue": [
                            {"value": 1.6, "unitOfMeasure": {"unit": "kWh"}, "context": "Trigger"}
                        ],
                    }
                ],
            },
        )
    assert answer[2] == kwh[2] == {}
    rows = _rows(
        server.store,
        "SELECT connector_id, transaction_id, measurand, context, value, unit, wh"
        " FROM meter_samples ORDER BY timestamp, measurand",
    )
    assert rows == [
        (2, None, "Energy.Active.Import.Register", "Sample.Clock", "1.5", "Wh", 1.5),
        (2, None, "Power.Active.Import", "Sample.Clock", "7400", "W", None),
        (2, None, "Energy.Active.Import.Register", "Trigger", "1.6", "kWh", 1600.0),
    ]


async def test_a_201_and_a_16_station_on_one_ledger(server: MemoryCsms) -> None:
    ws16 = await server.connect("CP-16", ["ocpp1.6"])
    charger = RawCharger(ws16)
    async with station_2x(server, "CP-201") as station:
        assert (await station.boot())[2]["status"] == "Accepted"
        assert (await charger.boot())[2]["status"] == "Accepted"
        start = await charger.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG-1", "meterStart": 0, "timestamp": ts()},
        )
        answers = await _run(station, session_events("TX-MIX", "TAG-2", 0, 3_000))
        stop = await charger.call(
            "StopTransaction",
            {"transactionId": start[2]["transactionId"], "meterStop": 4_000, "timestamp": ts(30)},
        )
    await ws16.aclose()
    assert [a[0] for a in answers] == [3, 3, 3]
    assert stop[0] == 3
    sessions = {s["station_id"]: s for s in server.store.list_sessions()}
    assert {k: (s["energy_wh"], s["status"]) for k, s in sessions.items()} == {
        "CP-16": (4_000, "Completed"),
        "CP-201": (3_000, "Completed"),
    }
    connected = server.store.events(kind="connected")
    assert sorted(e["data"].split('"subprotocol":')[1] for e in connected) == [
        '"ocpp1.6"}',
        '"ocpp2.0.1"}',
    ]


async def test_a_station_that_charges_without_authorization(server: MemoryCsms) -> None:
    free = token("", "NoAuthorization")
    started = tx_event(
        "Started",
        0,
        "TX-FREE",
        "CablePluggedIn",
        0,
        id_token=free,
        meter=[reading(0, 0, "Transaction.Begin")],
    )
    ended = tx_event(
        "Ended",
        1,
        "TX-FREE",
        "EVDeparted",
        10,
        meter=[reading(10, 1_000, "Transaction.End")],
        stopped_reason="EVDisconnected",
    )
    async with station_2x(server, "CP-FREE") as station:
        await station.boot()
        answers = await _run(station, [started, ended])
    assert answers[0][2] == {"idTokenInfo": {"status": "Accepted"}}
    session = _session(server.store, "CP-FREE", "TX-FREE")
    assert (session["id_tag"], session["energy_wh"], session["status"]) == (
        None,
        1_000,
        "Completed",
    )
    assert _rows(server.store, "SELECT token_type FROM station_transactions") == [
        ("NoAuthorization",)
    ]
