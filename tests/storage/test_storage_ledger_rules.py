"""`LedgerRules.apply` run through `SqliteStore.run_batch` on a real SQLite file."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from ledger_harness import (
    ACCEPT_ALL,
    ARRIVAL_T0,
    apply,
    arrived,
    at,
    authorize_request,
    boot,
    count,
    heartbeat,
    meter,
    register,
    rows,
    start,
    status,
    stop,
    transaction_row,
)

from csms.domain.ledger import LedgerRules, UnknownStationPolicy
from csms.domain.replies import (
    Ack,
    AuthorizationStatus,
    AuthorizeDecision,
    BootDecision,
    DataTransferDecision,
    HeartbeatAck,
    RegistrationStatus,
    StartDecision,
    StopDecision,
)
from csms.storage.sqlite import SqliteStore
from csms.storage.timestamps import to_text

RULES = ACCEPT_ALL


def started(store: SqliteStore, *args: object, **kwargs: object) -> StartDecision:
    reply = apply(store, RULES, start(*args, **kwargs))  # type: ignore[arg-type]
    assert isinstance(reply, StartDecision)
    return reply


def events_of(path: str, kind: str) -> list[dict[str, object]]:
    found = rows(path, "SELECT * FROM events WHERE kind = ? ORDER BY id", (kind,))
    for event in found:
        event["data"] = orjson.loads(str(event["data"]))
    return found


# -- stations: boot under each policy ----------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected", "registered"),
    [
        (UnknownStationPolicy.REJECT, RegistrationStatus.REJECTED, 0),
        (UnknownStationPolicy.PENDING, RegistrationStatus.PENDING, 0),
        (UnknownStationPolicy.ACCEPT, RegistrationStatus.ACCEPTED, 1),
    ],
)
def test_unknown_station_boot_follows_the_policy(
    store: SqliteStore,
    path: str,
    policy: UnknownStationPolicy,
    expected: RegistrationStatus,
    registered: int,
) -> None:
    rules = LedgerRules(unknown_stations=policy, heartbeat_interval=300, retry_interval=60)
    reply = apply(store, rules, boot("NEW"))
    assert reply == BootDecision(
        expected, 300 if expected is RegistrationStatus.ACCEPTED else 60, ARRIVAL_T0
    )
    (station,) = rows(path, "SELECT * FROM stations WHERE id = 'NEW'")
    assert station["registered"] == registered
    assert station["registration_status"] == expected.value
    # Boot data is recorded for every station, whatever the answer.
    assert (station["vendor"], station["model"], station["serial_number"]) == (
        "Vendor",
        "Model",
        "SN-1",
    )
    assert (station["charge_box_serial"], station["firmware_version"]) == ("CB-1", "1.0")
    assert (station["iccid"], station["imsi"]) == ("ICCID", "IMSI")
    assert (station["meter_type"], station["meter_serial"]) == ("MeterType", "MS-1")
    assert station["last_boot_at"] == to_text(ARRIVAL_T0)
    assert station["online"] == 1
    (logged,) = events_of(path, "boot")
    assert logged["station_id"] == "NEW"
    assert logged["data"] == {"status": expected.value}


@pytest.mark.parametrize("policy", list(UnknownStationPolicy))
def test_registered_station_is_accepted_under_every_policy(
    store: SqliteStore, path: str, policy: UnknownStationPolicy
) -> None:
    assert store.add_station("KNOWN")
    reply = apply(store, LedgerRules(unknown_stations=policy), boot("KNOWN"))
    assert isinstance(reply, BootDecision)
    assert reply.status is RegistrationStatus.ACCEPTED
    (station,) = rows(path, "SELECT * FROM stations WHERE id = 'KNOWN'")
    assert station["registered"] == 1
    assert station["registration_status"] == "Accepted"
    assert station["vendor"] == "Vendor"


def test_station_accepted_once_stays_registered_when_policy_tightens(
    store: SqliteStore, path: str
) -> None:
    apply(store, ACCEPT_ALL, boot("CP1"))
    strict = LedgerRules(unknown_stations=UnknownStationPolicy.REJECT)
    reply = apply(store, strict, boot("CP1", received=arrived(5), firmware="2.0"))
    assert isinstance(reply, BootDecision)
    assert reply.status is RegistrationStatus.ACCEPTED
    (station,) = rows(path, "SELECT * FROM stations WHERE id = 'CP1'")
    assert station["firmware_version"] == "2.0"  # a reboot updates the boot data
    assert station["last_boot_at"] == to_text(arrived(5))
    assert count(path, "stations") == 1


def test_pending_station_becomes_accepted_once_registered(store: SqliteStore, path: str) -> None:
    pending = LedgerRules(unknown_stations=UnknownStationPolicy.PENDING)
    assert apply(store, pending, boot("CP1")).status is RegistrationStatus.PENDING  # type: ignore[union-attr]
    assert store.add_station("CP1")  # was known, not registered
    assert apply(store, pending, boot("CP1")).status is RegistrationStatus.ACCEPTED  # type: ignore[union-attr]
    (station,) = rows(path, "SELECT vendor, registered FROM stations WHERE id = 'CP1'")
    assert station == {"vendor": "Vendor", "registered": 1}


def test_heartbeat_updates_the_station(store: SqliteStore, path: str) -> None:
    apply(store, RULES, boot("CP1"))
    assert apply(store, RULES, heartbeat("CP1", arrived(10))) == HeartbeatAck(arrived(10))
    (station,) = rows(path, "SELECT last_heartbeat_at, last_seen_at FROM stations")
    assert station == {
        "last_heartbeat_at": to_text(arrived(10)),
        "last_seen_at": to_text(arrived(10)),
    }


# -- status ------------------------------------------------------------------------------------


def test_status_history_and_connector_status(store: SqliteStore, path: str) -> None:
    apply(store, RULES, boot("CP1"))
    assert apply(store, RULES, status(1, "Available", timestamp=at(0), received=arrived(0))) == (
        Ack()
    )
    apply(store, RULES, status(1, "Charging", timestamp=at(1), received=arrived(1)))
    apply(store, RULES, status(2, "Available", timestamp=None, received=arrived(2)))

    connectors = rows(path, "SELECT * FROM connectors ORDER BY connector_id")
    assert [(c["connector_id"], c["status"]) for c in connectors] == [
        (1, "Charging"),
        (2, "Available"),
    ]
    assert connectors[0]["status_timestamp"] == to_text(at(1))
    assert connectors[0]["updated_at"] == to_text(arrived(1))
    assert connectors[1]["status_timestamp"] is None

    history = store.status_history("CP1")
    assert [(h["connector_id"], h["status"]) for h in history] == [
        (1, "Available"),
        (1, "Charging"),
        (2, "Available"),
    ]
    # Device time and arrival time are kept apart.
    assert history[1]["timestamp"] == to_text(at(1))
    assert history[1]["received_at"] == to_text(arrived(1))
    assert events_of(path, "fault") == []

    station = store.get_station("CP1")
    assert station is not None
    assert [c["status"] for c in station["connectors"]] == ["Charging", "Available"]


def test_fault_status_is_logged(store: SqliteStore, path: str) -> None:
    apply(store, RULES, status(1, "Faulted", error_code="GroundFailure"))
    apply(store, RULES, status(2, "Available", error_code="HighTemperature"))
    faults = events_of(path, "fault")
    assert [(f["data"]["connector_id"], f["data"]["error_code"]) for f in faults] == [  # type: ignore[index]
        (1, "GroundFailure"),
        (2, "HighTemperature"),
    ]


# -- authorize ---------------------------------------------------------------------------------


def test_authorize_answers_and_logs_only_refusals(store: SqliteStore, path: str) -> None:
    store.upsert_token("GOOD")
    store.upsert_token("BAD", "Blocked")
    good = apply(store, RULES, authorize_request("GOOD"))
    bad = apply(store, RULES, authorize_request("BAD"))
    unknown = apply(store, RULES, authorize_request("NOBODY"))
    assert isinstance(good, AuthorizeDecision) and isinstance(bad, AuthorizeDecision)
    assert isinstance(unknown, AuthorizeDecision)
    assert good.id_tag_info.status is AuthorizationStatus.ACCEPTED
    assert bad.id_tag_info.status is AuthorizationStatus.BLOCKED
    assert unknown.id_tag_info.status is AuthorizationStatus.INVALID
    refused = events_of(path, "authorization_refused")
    assert [r["data"] for r in refused] == [
        {"id_tag": "BAD", "status": "Blocked"},
        {"id_tag": "NOBODY", "status": "Invalid"},
    ]


def test_authorize_with_parent_and_expiry_from_the_store(store: SqliteStore) -> None:
    store.upsert_token("GROUP", "Blocked")
    store.upsert_token("CHILD", parent_id_tag="GROUP")
    store.upsert_token("OLD", expiry=ARRIVAL_T0 - timedelta(days=1))
    store.upsert_token("NEWER", expiry=ARRIVAL_T0 + timedelta(days=1))
    child = apply(store, RULES, authorize_request("CHILD"))
    old = apply(store, RULES, authorize_request("OLD"))
    newer = apply(store, RULES, authorize_request("NEWER"))
    assert isinstance(child, AuthorizeDecision)
    assert child.id_tag_info.status is AuthorizationStatus.BLOCKED
    assert child.id_tag_info.parent_id_tag == "GROUP"
    assert isinstance(old, AuthorizeDecision) and isinstance(newer, AuthorizeDecision)
    assert old.id_tag_info.status is AuthorizationStatus.EXPIRED
    assert newer.id_tag_info.status is AuthorizationStatus.ACCEPTED
    assert newer.id_tag_info.expiry == ARRIVAL_T0 + timedelta(days=1)


# -- StartTransaction --------------------------------------------------------------------------


def test_start_transactions_get_unique_ids(store: SqliteStore, path: str) -> None:
    store.upsert_token("TAG")
    ids = [
        started(store, connector=1).transaction_id,
        started(store, connector=2).transaction_id,
        started(store, station="CP2").transaction_id,
        started(store, connector=1, timestamp=at(90)).transaction_id,
    ]
    assert len(set(ids)) == 4
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert count(path, "transactions") == 4


def test_start_records_device_time_and_arrival_time_apart(store: SqliteStore, path: str) -> None:
    store.upsert_token("TAG")
    reply = started(store, meter_start=1234, timestamp=at(0), received=arrived(0))
    assert reply.id_tag_info.status is AuthorizationStatus.ACCEPTED
    row = transaction_row(path, reply.transaction_id)
    assert row["started_at"] == to_text(at(0))
    assert row["start_received_at"] == to_text(arrived(0))
    assert row["started_at"] != row["start_received_at"]
    assert (row["status"], row["auth_status"]) == ("Active", "Accepted")
    assert (row["meter_start_wh"], row["last_meter_wh"]) == (1234, 1234)
    assert (row["station_id"], row["connector_id"], row["id_tag"]) == ("CP1", 1, "TAG")
    assert row["needs_reconciliation"] == 0


def test_retried_start_returns_the_same_id_and_inserts_one_row(
    store: SqliteStore, path: str
) -> None:
    store.upsert_token("TAG")
    first = started(store, received=arrived(0))
    retry = started(store, received=arrived(1))  # same station, connector, tag, timestamp
    assert retry.transaction_id == first.transaction_id
    assert retry.id_tag_info == first.id_tag_info
    assert count(path, "transactions") == 1
    assert transaction_row(path, first.transaction_id)["status"] == "Active"
    assert events_of(path, "transaction_interrupted") == []


def test_retried_start_in_the_same_batch_inserts_one_row(store: SqliteStore, path: str) -> None:
    outcomes = store.run_batch([lambda tx: RULES.apply(tx, start())] * 3)
    assert len({o.value.transaction_id for o in outcomes}) == 1
    assert count(path, "transactions") == 1


def test_retried_start_with_the_same_instant_in_another_zone_is_the_same(
    store: SqliteStore, path: str
) -> None:
    from datetime import timezone

    first = started(store)
    shifted = at(0).astimezone(timezone(timedelta(hours=2)))
    assert started(store, timestamp=shifted).transaction_id == first.transaction_id
    assert count(path, "transactions") == 1


def test_retried_start_of_a_token_at_its_limit_gets_the_same_answer(
    store: SqliteStore, path: str
) -> None:
    store.upsert_token("ONE", max_active_transactions=1)
    first = started(store, id_tag="ONE")
    assert first.id_tag_info.status is AuthorizationStatus.ACCEPTED
    retry = started(store, id_tag="ONE")
    assert retry.transaction_id == first.transaction_id
    assert retry.id_tag_info.status is AuthorizationStatus.ACCEPTED
    assert count(path, "transactions") == 1


def test_start_with_a_blocked_token_is_recorded_and_answered_blocked(
    store: SqliteStore, path: str
) -> None:
    store.upsert_token("BLOCKED", "Blocked")
    reply = started(store, id_tag="BLOCKED")
    assert reply.id_tag_info.status is AuthorizationStatus.BLOCKED
    row = transaction_row(path, reply.transaction_id)
    assert (row["auth_status"], row["status"]) == ("Blocked", "Active")


def test_start_with_an_unknown_token_is_recorded_and_answered_invalid(
    store: SqliteStore, path: str
) -> None:
    reply = started(store, id_tag="STRANGER")
    assert reply.id_tag_info.status is AuthorizationStatus.INVALID
    assert transaction_row(path, reply.transaction_id)["auth_status"] == "Invalid"


def test_max_active_transactions_answers_concurrent_tx(store: SqliteStore, path: str) -> None:
    store.upsert_token("TWO", max_active_transactions=2)
    assert started(store, id_tag="TWO", connector=1).id_tag_info.status is (
        AuthorizationStatus.ACCEPTED
    )
    assert started(store, id_tag="TWO", connector=2).id_tag_info.status is (
        AuthorizationStatus.ACCEPTED
    )
    third = started(store, id_tag="TWO", connector=3)
    assert third.id_tag_info.status is AuthorizationStatus.CONCURRENT_TX
    assert transaction_row(path, third.transaction_id)["auth_status"] == "ConcurrentTx"
    # Authorize sees the same limit.
    decision = apply(store, RULES, authorize_request("TWO"))
    assert isinstance(decision, AuthorizeDecision)
    assert decision.id_tag_info.status is AuthorizationStatus.CONCURRENT_TX


def test_stopping_frees_a_concurrent_slot(store: SqliteStore) -> None:
    store.upsert_token("ONE", max_active_transactions=1)
    first = started(store, id_tag="ONE", connector=1)
    apply(store, RULES, stop(first.transaction_id, id_tag="ONE"))
    second = started(store, id_tag="ONE", connector=2, timestamp=at(120))
    assert second.id_tag_info.status is AuthorizationStatus.ACCEPTED


def test_new_start_on_a_busy_connector_interrupts_the_old_one(
    store: SqliteStore, path: str
) -> None:
    old = started(store, id_tag="A", connector=1, timestamp=at(0))
    other_connector = started(store, id_tag="A", connector=2, timestamp=at(0))
    new = started(store, id_tag="B", connector=1, timestamp=at(30), received=arrived(30))
    assert new.transaction_id != old.transaction_id
    old_row = transaction_row(path, old.transaction_id)
    assert old_row["status"] == "Interrupted"
    assert old_row["needs_reconciliation"] == 1
    assert transaction_row(path, new.transaction_id)["status"] == "Active"
    assert transaction_row(path, other_connector.transaction_id)["status"] == "Active"
    (logged,) = events_of(path, "transaction_interrupted")
    assert logged["data"] == {"transaction_id": old.transaction_id, "connector_id": 1}

    # The late stop of the interrupted transaction is still recorded, status kept.
    apply(store, RULES, stop(old.transaction_id, meter_stop=3000, id_tag="A"))
    old_row = transaction_row(path, old.transaction_id)
    assert old_row["status"] == "Interrupted"
    assert (old_row["meter_stop_wh"], old_row["energy_wh"]) == (3000, 2000)


# -- MeterValues -------------------------------------------------------------------------------


def test_meter_values_are_stored_against_the_transaction(store: SqliteStore, path: str) -> None:
    tid = started(store, meter_start=1000).transaction_id
    reply = apply(
        store,
        RULES,
        meter(
            tid,
            register(1500, at(5)),
            register(7000, at(5), measurand="Power.Active.Import"),
            received=arrived(5),
        ),
    )
    assert reply == Ack()
    samples = rows(path, "SELECT * FROM meter_samples ORDER BY id")
    assert [(s["measurand"], s["wh"], s["transaction_id"]) for s in samples] == [
        ("Energy.Active.Import.Register", 1500.0, tid),
        ("Power.Active.Import", None, tid),
    ]
    # Device time and arrival time are kept apart.
    assert samples[0]["timestamp"] == to_text(at(5))
    assert samples[0]["received_at"] == to_text(arrived(5))
    assert all(s["anomaly"] is None and s["reported_transaction_id"] is None for s in samples)
    row = transaction_row(path, tid)
    assert (row["last_meter_wh"], row["last_meter_at"]) == (1500.0, to_text(at(5)))
    assert row["needs_reconciliation"] == 0


def test_retried_meter_values_insert_no_duplicates(store: SqliteStore, path: str) -> None:
    tid = started(store, meter_start=1000).transaction_id
    values = meter(tid, register(1500, at(5)), register(2000, at(10)))
    apply(store, RULES, values)
    before = transaction_row(path, tid)
    events_before = count(path, "events")
    apply(store, RULES, values)
    apply(
        store, RULES, meter(tid, register(1500, at(5)), register(2000, at(10)), received=arrived(9))
    )
    assert count(path, "meter_samples") == 2
    # The retry does not read its own earlier samples as a register going backwards.
    assert transaction_row(path, tid) == before
    assert count(path, "events") == events_before
    assert count(path, "meter_samples", "anomaly IS NOT NULL") == 0


def test_retried_unmatched_meter_values_insert_no_duplicates(store: SqliteStore, path: str) -> None:
    values = meter(-1, register(1500, at(5)))
    apply(store, RULES, values)
    apply(store, RULES, values)
    assert count(path, "meter_samples") == 1
    assert len(events_of(path, "unmatched_meter_values")) == 1


def test_meter_values_without_a_transaction(store: SqliteStore, path: str) -> None:
    apply(store, RULES, meter(None, register(99_000, at(1)), connector=0))
    (sample,) = rows(path, "SELECT * FROM meter_samples")
    assert sample["transaction_id"] is None and sample["reported_transaction_id"] is None
    assert sample["connector_id"] == 0
    assert events_of(path, "unmatched_meter_values") == []


@pytest.mark.parametrize("reported", [-1, 999_999])
def test_meter_values_for_an_unknown_transaction_are_kept_and_flagged(
    store: SqliteStore, path: str, reported: int
) -> None:
    assert apply(store, RULES, meter(reported, register(1500, at(5)))) == Ack()
    (sample,) = rows(path, "SELECT * FROM meter_samples")
    assert sample["transaction_id"] is None
    assert sample["reported_transaction_id"] == reported
    assert sample["wh"] == 1500.0
    (logged,) = events_of(path, "unmatched_meter_values")
    assert logged["data"] == {"reported_transaction_id": reported, "samples": 1}


def test_meter_values_naming_another_stations_transaction_are_unmatched(
    store: SqliteStore, path: str
) -> None:
    tid = started(store, station="CP1").transaction_id
    apply(store, RULES, meter(tid, register(1500, at(5)), station="CP2"))
    (sample,) = rows(path, "SELECT * FROM meter_samples")
    assert (sample["transaction_id"], sample["reported_transaction_id"]) == (None, tid)
    assert sample["station_id"] == "CP2"
    assert transaction_row(path, tid)["last_meter_wh"] == 1000  # CP1's transaction untouched


@pytest.mark.parametrize(
    ("readings", "anomaly"),
    [
        ([(5000, 5), (4000, 10)], "register_backwards"),
        ([(40_000, 5), (10, 10)], "register_reset"),
        ([(2000, 5), (50_000_000, 6)], "implausible_jump"),
    ],
)
def test_meter_anomalies_are_flagged_not_rejected(
    store: SqliteStore, path: str, readings: list[tuple[int, int]], anomaly: str
) -> None:
    tid = started(store, meter_start=1000).transaction_id
    apply(store, RULES, meter(tid, *(register(wh, at(m)) for wh, m in readings)))
    samples = rows(path, "SELECT wh, anomaly FROM meter_samples ORDER BY timestamp")
    assert [s["wh"] for s in samples] == [float(wh) for wh, _ in readings]  # all kept
    assert [s["anomaly"] for s in samples] == [None, anomaly]
    row = transaction_row(path, tid)
    assert row["anomalies"] == anomaly
    assert row["needs_reconciliation"] == 1
    assert row["status"] == "Active"
    (logged,) = events_of(path, "meter_anomaly")
    assert logged["data"] == {"transaction_id": tid, "anomalies": [anomaly]}


def test_register_below_the_start_value_is_flagged(store: SqliteStore, path: str) -> None:
    tid = started(store, meter_start=10_000).transaction_id
    apply(store, RULES, meter(tid, register(9000, at(5))))
    assert rows(path, "SELECT anomaly FROM meter_samples") == [{"anomaly": "register_backwards"}]


def test_anomalies_of_separate_messages_accumulate(store: SqliteStore, path: str) -> None:
    tid = started(store, meter_start=1000).transaction_id
    apply(store, RULES, meter(tid, register(5000, at(5)), register(4000, at(10))))
    apply(store, RULES, meter(tid, register(50_000_000, at(11))))
    row = transaction_row(path, tid)
    assert set(str(row["anomalies"]).split(",")) == {"register_backwards", "implausible_jump"}
    assert row["needs_reconciliation"] == 1


def test_per_phase_and_other_measurands_are_not_judged_as_the_register(
    store: SqliteStore, path: str
) -> None:
    tid = started(store, meter_start=1000).transaction_id
    apply(
        store,
        RULES,
        meter(
            tid,
            register(10, at(5), phase="L1"),
            register(3, at(5), measurand="Energy.Active.Import.Interval"),
            register(1200, at(5)),
        ),
    )
    assert count(path, "meter_samples", "anomaly IS NOT NULL") == 0
    assert transaction_row(path, tid)["last_meter_wh"] == 1200.0


# -- StopTransaction ---------------------------------------------------------------------------


def test_stop_completes_the_transaction(store: SqliteStore, path: str) -> None:
    store.upsert_token("TAG")
    tid = started(store, meter_start=1000).transaction_id
    reply = apply(
        store,
        RULES,
        stop(tid, meter_stop=8500, timestamp=at(60), received=arrived(61), reason="EVDisconnected"),
    )
    assert isinstance(reply, StopDecision)
    assert reply.id_tag_info is not None
    assert reply.id_tag_info.status is AuthorizationStatus.ACCEPTED
    row = transaction_row(path, tid)
    assert row["status"] == "Completed"
    assert (row["meter_stop_wh"], row["energy_wh"]) == (8500, 7500)
    assert row["ended_at"] == to_text(at(60))
    assert row["stop_received_at"] == to_text(arrived(61))
    assert (row["stop_reason"], row["stop_id_tag"]) == ("EVDisconnected", "TAG")
    assert (row["last_meter_wh"], row["last_meter_at"]) == (8500, to_text(at(60)))
    assert row["needs_reconciliation"] == 0
    assert row["anomalies"] is None


def test_stop_without_id_tag_has_no_id_tag_info(store: SqliteStore) -> None:
    tid = started(store).transaction_id
    assert apply(store, RULES, stop(tid, id_tag=None)) == StopDecision(None)


def test_stop_stores_its_transaction_data(store: SqliteStore, path: str) -> None:
    tid = started(store, meter_start=1000).transaction_id
    data = (
        register(1000, at(0), context="Transaction.Begin"),
        register(5000, at(60), context="Transaction.End"),
    )
    apply(store, RULES, stop(tid, meter_stop=5000, timestamp=at(60), samples=data))
    samples = rows(path, "SELECT transaction_id, context, wh FROM meter_samples ORDER BY id")
    assert samples == [
        {"transaction_id": tid, "context": "Transaction.Begin", "wh": 1000.0},
        {"transaction_id": tid, "context": "Transaction.End", "wh": 5000.0},
    ]


def test_retried_stop_changes_nothing(store: SqliteStore, path: str) -> None:
    tid = started(store, meter_start=1000).transaction_id
    data = (register(5000, at(60), context="Transaction.End"),)
    first = apply(store, RULES, stop(tid, meter_stop=5000, timestamp=at(60), samples=data))
    before = transaction_row(path, tid)
    tables = {t: count(path, t) for t in ("transactions", "meter_samples", "events")}

    retry = apply(
        store,
        RULES,
        stop(tid, meter_stop=5000, timestamp=at(60), samples=data, received=arrived(70)),
    )
    assert retry == first
    assert transaction_row(path, tid) == before  # stop_received_at not overwritten either
    assert {t: count(path, t) for t in tables} == tables
    # Not counted twice: one completed session with its energy once.
    sessions = store.list_sessions(status="Completed")
    assert [(s["id"], s["energy_wh"]) for s in sessions] == [(tid, 4000)]


def test_conflicting_second_stop_is_logged_not_applied(store: SqliteStore, path: str) -> None:
    tid = started(store, meter_start=1000).transaction_id
    apply(store, RULES, stop(tid, meter_stop=5000, timestamp=at(60)))
    before = transaction_row(path, tid)
    apply(store, RULES, stop(tid, meter_stop=6000, timestamp=at(61)))
    assert transaction_row(path, tid) == before
    (logged,) = events_of(path, "conflicting_stop")
    assert logged["data"] == {"transaction_id": tid, "meter_stop_wh": 6000}


@pytest.mark.parametrize("reported", [-1, 424_242])
def test_stop_for_an_unknown_transaction_is_kept_and_flagged(
    store: SqliteStore, path: str, reported: int
) -> None:
    store.upsert_token("TAG")
    data = (register(5000, at(60)),)
    reply = apply(
        store,
        RULES,
        stop(reported, meter_stop=5000, timestamp=at(60), received=arrived(61), samples=data),
    )
    assert isinstance(reply, StopDecision)
    assert reply.id_tag_info is not None
    assert reply.id_tag_info.status is AuthorizationStatus.ACCEPTED
    (row,) = rows(path, "SELECT * FROM transactions")
    assert row["status"] == "Unmatched"
    assert row["reported_transaction_id"] == reported
    assert row["needs_reconciliation"] == 1
    assert row["id"] != reported
    assert (row["meter_stop_wh"], row["ended_at"]) == (5000, to_text(at(60)))
    assert row["stop_received_at"] == to_text(arrived(61))
    (sample,) = rows(path, "SELECT * FROM meter_samples")
    assert (sample["transaction_id"], sample["reported_transaction_id"]) == (row["id"], reported)
    (logged,) = events_of(path, "unmatched_stop")
    assert logged["data"] == {"reported_transaction_id": reported, "ledger_id": row["id"]}

    # A retry adds nothing.
    apply(store, RULES, stop(reported, meter_stop=5000, timestamp=at(60), samples=data))
    assert count(path, "transactions") == 1
    assert count(path, "meter_samples") == 1
    assert len(events_of(path, "unmatched_stop")) == 1


def test_stop_naming_another_stations_transaction_is_unmatched(
    store: SqliteStore, path: str
) -> None:
    tid = started(store, station="CP1").transaction_id
    apply(store, RULES, stop(tid, station="CP2"))
    assert transaction_row(path, tid)["status"] == "Active"
    (unmatched,) = rows(path, "SELECT * FROM transactions WHERE status = 'Unmatched'")
    assert (unmatched["station_id"], unmatched["reported_transaction_id"]) == ("CP2", tid)


def test_stop_below_start_is_flagged(store: SqliteStore, path: str) -> None:
    tid = started(store, meter_start=10_000).transaction_id
    apply(store, RULES, stop(tid, meter_stop=9_000))
    row = transaction_row(path, tid)
    assert row["status"] == "Completed"
    assert row["meter_stop_wh"] == 9_000  # kept as reported
    assert row["energy_wh"] == 0
    assert row["anomalies"] == "stop_below_start"
    assert row["needs_reconciliation"] == 1


def test_stop_keeps_earlier_meter_anomalies(store: SqliteStore, path: str) -> None:
    tid = started(store, meter_start=1000).transaction_id
    apply(store, RULES, meter(tid, register(5000, at(5)), register(4000, at(10))))
    apply(store, RULES, stop(tid, meter_stop=6000, timestamp=at(60)))
    row = transaction_row(path, tid)
    assert row["status"] == "Completed"
    assert row["anomalies"] == "register_backwards"
    assert row["needs_reconciliation"] == 1


def test_stop_below_start_is_added_to_earlier_anomalies(store: SqliteStore, path: str) -> None:
    tid = started(store, meter_start=10_000).transaction_id
    apply(store, RULES, meter(tid, register(12_000, at(5)), register(11_000, at(10))))
    jump = (register(90_000_000, at(11), context="Transaction.End"),)
    apply(store, RULES, stop(tid, meter_stop=9_000, timestamp=at(60), samples=jump))
    row = transaction_row(path, tid)
    assert set(str(row["anomalies"]).split(",")) == {
        "register_backwards",
        "implausible_jump",
        "stop_below_start",
    }
    assert row["needs_reconciliation"] == 1


# -- other events ------------------------------------------------------------------------------


def test_data_transfer_is_logged_and_answered_unknown_vendor(store: SqliteStore, path: str) -> None:
    from csms.domain.events import DataTransferReceived

    reply = apply(store, RULES, DataTransferReceived("CP1", "com.x", "m", "d", ARRIVAL_T0))
    assert reply == DataTransferDecision("UnknownVendorId")
    (logged,) = events_of(path, "data_transfer")
    assert logged["data"] == {"vendor_id": "com.x", "message_id": "m", "data": "d"}


def test_firmware_and_diagnostics_status_are_recorded(store: SqliteStore, path: str) -> None:
    from csms.domain.events import DiagnosticsStatusReported, FirmwareStatusReported

    apply(store, RULES, boot("CP1"))
    apply(store, RULES, FirmwareStatusReported("CP1", "Installing", ARRIVAL_T0))
    apply(store, RULES, DiagnosticsStatusReported("CP1", "Uploading", ARRIVAL_T0))
    (station,) = rows(path, "SELECT firmware_status, diagnostics_status FROM stations")
    assert station == {"firmware_status": "Installing", "diagnostics_status": "Uploading"}


def test_connection_changes_update_online_state(store: SqliteStore, path: str) -> None:
    from csms.domain.events import ConnectionChanged
    from csms.domain.replies import ConnectionAck

    apply(store, RULES, boot("CP1"))
    assert apply(store, RULES, ConnectionChanged("CP1", "disconnected", arrived(1))) == (
        ConnectionAck(True)
    )
    assert rows(path, "SELECT online FROM stations") == [{"online": 0}]
    apply(store, RULES, ConnectionChanged("CP1", "connected", arrived(2)))
    assert rows(path, "SELECT online FROM stations") == [{"online": 1}]
    assert apply(store, RULES, ConnectionChanged("GHOST", "connected", arrived(2))) == (
        ConnectionAck(False)
    )
    store.mark_all_offline()
    assert rows(path, "SELECT online FROM stations") == [{"online": 0}]


# -- meter resets inside a transaction -----------------------------------------------------------


def test_a_reset_seen_in_meter_values_keeps_the_energy_right(store: SqliteStore, path: str) -> None:
    tid = started(store, meter_start=1_000).transaction_id
    apply(store, RULES, meter(tid, register(5_000, at(600))))
    apply(store, RULES, meter(tid, register(30, at(1200))))  # the meter restarted from zero
    apply(store, RULES, stop(tid, meter_stop=2_000, timestamp=at(1800)))
    row = transaction_row(path, tid)
    # 4,000 Wh before the reset, 2,000 Wh after it.
    assert row["energy_wh"] == 6_000
    assert row["register_offset_wh"] == 5_000
    assert "register_reset" in str(row["anomalies"])


def test_a_reset_between_the_last_sample_and_the_stop(store: SqliteStore, path: str) -> None:
    tid = started(store, meter_start=1_000).transaction_id
    apply(store, RULES, meter(tid, register(5_000, at(600))))
    apply(store, RULES, stop(tid, meter_stop=40, timestamp=at(700)))
    row = transaction_row(path, tid)
    assert row["energy_wh"] == 4_000 + 40
    assert set(str(row["anomalies"]).split(",")) == {"register_reset"}
