"""`SqliteStore` on a real file: group commit, savepoints, durability, schema, CLI-side methods."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from ledger_harness import (
    ACCEPT_ALL,
    apply,
    arrived,
    at,
    authorize_request,
    boot,
    count,
    execute,
    meter,
    register,
    rows,
    run,
    start,
    stop,
)

from csms.domain.ports import LedgerTx
from csms.domain.replies import BootDecision, StartDecision
from csms.storage.base import StoreError, open_store
from csms.storage.schema import MIGRATIONS, migrate
from csms.storage.sqlite import SqliteStore, TokenRow, sqlite_path

RULES = ACCEPT_ALL


def start_id(store: SqliteStore, **kwargs: Any) -> int:
    reply = apply(store, RULES, start(**kwargs))
    assert isinstance(reply, StartDecision)
    return reply.transaction_id


class Boom(Exception):
    pass


# -- group commit and savepoints ---------------------------------------------------------------


def test_a_failing_rule_rolls_back_only_its_own_work(store: SqliteStore, path: str) -> None:
    def half_done_then_fail(tx: LedgerTx) -> Any:
        RULES.apply(tx, start(station="CP9"))
        RULES.apply(tx, boot("CP9"))
        raise Boom("in the middle")

    outcomes = store.run_batch(
        [
            lambda tx: RULES.apply(tx, start(station="CP1")),
            half_done_then_fail,
            lambda tx: RULES.apply(tx, boot("CP2")),
        ]
    )
    assert isinstance(outcomes[0].value, StartDecision) and outcomes[0].error is None
    assert isinstance(outcomes[1].error, Boom) and outcomes[1].value is None
    assert str(outcomes[1].error) == "in the middle"
    assert isinstance(outcomes[2].value, BootDecision) and outcomes[2].error is None
    # Committed for the neighbours, nothing of the failed piece; the id answered is the one
    # committed (PostgreSQL does not reuse the ids the first, rolled back, pass drew).
    assert rows(path, "SELECT id, station_id FROM transactions") == [
        {"id": outcomes[0].value.transaction_id, "station_id": "CP1"}
    ]
    assert rows(path, "SELECT id FROM stations") == [{"id": "CP2"}]
    assert [e["kind"] for e in rows(path, "SELECT kind FROM events")] == ["boot"]


def test_a_rule_that_raises_on_bad_stored_data_spares_its_neighbours(
    store: SqliteStore, path: str
) -> None:
    execute(
        path,
        "INSERT INTO id_tokens (id_tag, status, created_at, updated_at)"
        " VALUES ('ODD', 'Bogus', 'x', 'x')",
    )
    outcomes = run(
        store,
        RULES,
        start(id_tag="OK", connector=1),
        start(id_tag="ODD", connector=2),
        authorize_request("ODD"),
        start(id_tag="OK", connector=3),
    )
    assert [o.error is None for o in outcomes] == [True, False, False, True]
    assert isinstance(outcomes[1].error, ValueError)
    assert rows(path, "SELECT connector_id FROM transactions ORDER BY id") == [
        {"connector_id": 1},
        {"connector_id": 3},
    ]


def test_a_batch_of_many_events_is_one_durable_transaction(store: SqliteStore, path: str) -> None:
    events = [start(station=f"CP{n}") for n in range(50)]
    outcomes = run(store, RULES, *events)
    assert len({o.value.transaction_id for o in outcomes}) == 50
    assert count(path, "transactions") == 50  # visible to another connection: committed


def test_applied_batch_is_invisible_until_commit(store: SqliteStore, path: str) -> None:
    outcomes = store.apply_batch([lambda tx: RULES.apply(tx, boot("CP1"))])
    assert outcomes[0].error is None
    assert count(path, "stations") == 0
    store.commit()
    assert count(path, "stations") == 1


def test_rollback_discards_the_applied_batch(store: SqliteStore, path: str) -> None:
    store.apply_batch([lambda tx: RULES.apply(tx, boot("CP1"))])
    store.rollback()
    store.rollback()  # harmless with nothing open
    assert count(path, "stations") == 0
    assert store.count("stations") == 0
    run(store, RULES, boot("CP2"))  # the store is usable afterwards
    assert count(path, "stations") == 1


def test_base_exception_in_a_batch_rolls_everything_back_and_propagates(
    store: SqliteStore, path: str
) -> None:
    def interrupted(tx: LedgerTx) -> Any:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.run_batch([lambda tx: RULES.apply(tx, boot("CP1")), interrupted])
    assert count(path, "stations") == 0
    run(store, RULES, boot("CP2"))
    assert rows(path, "SELECT id FROM stations") == [{"id": "CP2"}]


def test_base_exception_in_the_savepoint_pass_rolls_back_and_propagates(
    store: SqliteStore, path: str
) -> None:
    calls = 0

    def fails_then_interrupts(tx: LedgerTx) -> Any:
        nonlocal calls
        calls += 1
        raise Boom if calls == 1 else KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.run_batch([lambda tx: RULES.apply(tx, boot("CP1")), fails_then_interrupts])
    assert count(path, "stations") == 0
    run(store, RULES, boot("CP2"))
    assert count(path, "stations") == 1


def test_batch_survives_reopening_the_file(path: str) -> None:
    first = SqliteStore(path)
    tid = start_id(first, station="CP1", meter_start=100)
    apply(first, RULES, meter(tid, register(900, at(5))))
    first.close()

    again = SqliteStore(path)
    try:
        session = again.get_session(tid)
        assert session is not None
        assert session["station_id"] == "CP1"
        assert session["energy_wh"] == 800
        assert [s["wh"] for s in session["meter_samples"]] == [900.0]
        # New ids continue after the reopened ones.
        assert start_id(again, station="CP2") > tid
    finally:
        again.close()


# -- schema and pragmas ------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_journal_mode_is_wal_and_synchronous_is_full(store: SqliteStore, path: str) -> None:
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    # WAL is a property of the file: another connection sees it too.
    assert rows(path, "PRAGMA journal_mode") == [{"journal_mode": "wal"}]


@pytest.mark.sqlite_only
def test_migration_is_idempotent(path: str) -> None:
    first = SqliteStore(path)
    first.upsert_token("TAG")
    run(first, RULES, boot("CP1"))
    first.close()
    second = SqliteStore(path)  # migrates an up-to-date file: a no-op
    second.close()
    assert rows(path, "PRAGMA user_version") == [{"user_version": len(MIGRATIONS)}]
    db = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(db) == len(MIGRATIONS)
        assert migrate(db) == len(MIGRATIONS)
    finally:
        db.close()
    assert count(path, "id_tokens") == 1
    assert count(path, "stations") == 1
    tables = {r["name"] for r in rows(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"stations", "transactions", "meter_samples", "events", "id_tokens"} <= tables


def test_migration_of_a_fresh_database(tmp_path: Path) -> None:
    db = sqlite3.connect(str(tmp_path / "fresh.db"), isolation_level=None)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
        assert migrate(db) == len(MIGRATIONS)
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert not db.in_transaction
    finally:
        db.close()


class _StaleVersionConnection:
    """A connection whose first look at user_version is stale: another process migrated
    the file between that read and this one's BEGIN IMMEDIATE."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._stale = True

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "PRAGMA user_version" and self._stale:
            self._stale = False
            return self._db.execute("SELECT 0")
        return self._db.execute(sql, *args)


@pytest.mark.sqlite_only
def test_migration_rechecks_the_version_under_the_write_lock(path: str) -> None:
    SqliteStore(path).close()  # the "other process" migrated the file
    db = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(_StaleVersionConnection(db)) == len(MIGRATIONS)
        assert not db.in_transaction
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        db.close()


def test_memory_database_works(tmp_path: Path) -> None:
    memory = SqliteStore(":memory:")
    try:
        run(memory, RULES, boot("CP1"))
        assert memory.count("stations") == 1
    finally:
        memory.close()


def test_urls(tmp_path: Path) -> None:
    assert sqlite_path("sqlite:///relative.db") == "relative.db"
    assert sqlite_path("sqlite:////abs/x.db") == "/abs/x.db"
    with pytest.raises(StoreError, match="names no file"):
        sqlite_path("sqlite:///")
    with pytest.raises(StoreError, match="not a SQLite URL"):
        sqlite_path("postgresql://h/db")
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
        open_store("postgresql://nobody@127.0.0.1:1/db")
    with pytest.raises(StoreError, match="unsupported"):
        open_store("mysql://localhost/db")
    store = open_store(f"sqlite:///{tmp_path / 'url.db'}")
    try:
        assert isinstance(store, SqliteStore)
        assert (tmp_path / "url.db").exists()
    finally:
        store.close()


def test_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        SqliteStore(str(tmp_path / "no" / "such" / "dir.db"))


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a sqlite database, just some bytes" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        SqliteStore(str(junk))


# -- stations (CLI side) ---------------------------------------------------------------------


def test_add_station(store: SqliteStore, path: str) -> None:
    assert store.add_station("CP1", security_profile=2) is True
    assert store.add_station("CP1") is False
    (station,) = store.list_stations()
    assert (station["id"], station["registered"], station["security_profile"]) == ("CP1", 1, 2)
    assert station["registration_status"] is None


def test_add_station_registers_a_station_that_booted_unregistered(
    store: SqliteStore,
) -> None:
    from csms.domain.ledger import LedgerRules, UnknownStationPolicy

    apply(store, LedgerRules(unknown_stations=UnknownStationPolicy.REJECT), boot("CP1"))
    assert store.add_station("CP1") is True
    station = store.get_station("CP1")
    assert station is not None
    assert station["registered"] == 1
    assert station["vendor"] == "Vendor"  # boot data kept


def test_add_stations_counts_only_new_registrations(store: SqliteStore) -> None:
    store.add_station("A")
    assert store.add_stations([("A", 0), ("B", 0), ("C", 1)]) == 2
    assert [s["id"] for s in store.list_stations()] == ["A", "B", "C"]


def test_get_unknown_station(store: SqliteStore) -> None:
    assert store.get_station("NOPE") is None
    assert store.status_history("NOPE") == []


# -- tokens (CLI side) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id_tag": "T", "status": "Maybe"}, "status must be one of"),
        ({"id_tag": "T", "status": "ConcurrentTx"}, "status must be one of"),
        ({"id_tag": ""}, "1 to 20 characters"),
        ({"id_tag": "X" * 21}, "1 to 20 characters"),
        ({"id_tag": "T", "parent_id_tag": "P" * 21}, "parent id tag"),
        ({"id_tag": "T", "max_active_transactions": 0}, "at least 1"),
        ({"id_tag": "T", "max_active_transactions": -3}, "at least 1"),
    ],
)
def test_upsert_token_validation(
    store: SqliteStore, path: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(StoreError, match=message):
        store.upsert_token(**kwargs)
    assert count(path, "id_tokens") == 0


def test_upsert_token_adds_then_updates(store: SqliteStore) -> None:
    expiry = datetime(2027, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    store.upsert_token("T" * 20, "Accepted", expiry, "GROUP", 2)
    (token,) = store.list_tokens()
    assert token["id_tag"] == "T" * 20
    assert token["expiry"] == "2027-01-01T00:00:00.000000+00:00"  # stored in UTC
    assert (token["parent_id_tag"], token["max_active_transactions"]) == ("GROUP", 2)
    store.upsert_token("T" * 20, "Blocked")
    (token,) = store.list_tokens()
    assert token["status"] == "Blocked"
    assert token["expiry"] is None and token["parent_id_tag"] is None


def test_upsert_tokens_is_all_or_nothing(store: SqliteStore, path: str) -> None:
    with pytest.raises(StoreError):
        store.upsert_tokens([TokenRow("A"), TokenRow("B", "Nope"), TokenRow("C")])
    assert count(path, "id_tokens") == 0
    store.upsert_tokens([TokenRow("A"), TokenRow("B", "Blocked")])
    assert [(t["id_tag"], t["status"]) for t in store.list_tokens()] == [
        ("A", "Accepted"),
        ("B", "Blocked"),
    ]


def test_set_token_status(store: SqliteStore) -> None:
    store.upsert_token("TAG")
    store.set_token_status("TAG", "Blocked")
    assert store.list_tokens()[0]["status"] == "Blocked"
    decision = apply(store, RULES, authorize_request("TAG"))
    assert decision.id_tag_info.status.value == "Blocked"  # type: ignore[union-attr]


def test_set_token_status_on_an_unknown_tag(store: SqliteStore, path: str) -> None:
    with pytest.raises(StoreError, match="no id token"):
        store.set_token_status("GHOST", "Blocked")
    assert count(path, "id_tokens") == 0


def test_set_token_status_refuses_a_status_the_ledger_cannot_read(
    store: SqliteStore,
) -> None:
    store.upsert_token("TAG")
    with pytest.raises(StoreError, match="status must be one of"):
        store.set_token_status("TAG", "Bogus")
    assert store.list_tokens()[0]["status"] == "Accepted"


# -- sessions (CLI side) -----------------------------------------------------------------------


def test_list_sessions_filters(store: SqliteStore) -> None:
    a1 = start_id(store, station="A", connector=1)
    a2 = start_id(store, station="A", connector=2)
    b1 = start_id(store, station="B", connector=1)
    apply(store, RULES, stop(a1, station="A"))

    assert [s["id"] for s in store.list_sessions()] == [b1, a2, a1]  # newest first
    assert [s["id"] for s in store.list_sessions(station_id="A")] == [a2, a1]
    assert [s["id"] for s in store.list_sessions(status="Active")] == [b1, a2]
    assert [s["id"] for s in store.list_sessions(station_id="A", status="Completed")] == [a1]
    assert [s["id"] for s in store.list_sessions(limit=1)] == [b1]
    assert store.list_sessions(station_id="NOPE") == []


def test_get_session_with_meter_samples(store: SqliteStore) -> None:
    tid = start_id(store, meter_start=1000, timestamp=at(0), received=arrived(0))
    other = start_id(store, connector=2)
    apply(store, RULES, meter(tid, register(1500, at(5)), register(2500, at(10))))
    apply(store, RULES, meter(other, register(99_999, at(5)), connector=2))
    session = store.get_session(tid)
    assert session is not None
    assert (session["id"], session["status"], session["id_tag"]) == (tid, "Active", "TAG")
    assert session["started_at"] != session["start_received_at"]
    assert [(s["wh"], s["timestamp"]) for s in session["meter_samples"]] == [
        (1500.0, "2026-01-05T08:05:00.000000+00:00"),
        (2500.0, "2026-01-05T08:10:00.000000+00:00"),
    ]
    # Energy of an active session: last meter reading minus the start value.
    assert session["energy_wh"] == 1500
    assert store.get_session(999) is None


def test_energy_of_an_active_session_without_samples_is_zero(store: SqliteStore) -> None:
    tid = start_id(store, meter_start=1000)
    session = store.get_session(tid)
    assert session is not None
    assert session["energy_wh"] == 0
    assert session["meter_samples"] == []


def test_energy_of_a_completed_session_is_stop_minus_start(store: SqliteStore) -> None:
    tid = start_id(store, meter_start=1000)
    apply(store, RULES, meter(tid, register(2500, at(10))))
    apply(store, RULES, stop(tid, meter_stop=4200))
    session = store.get_session(tid)
    assert session is not None
    assert (session["status"], session["energy_wh"]) == ("Completed", 3200)


def test_unmatched_stop_session_holds_its_samples(store: SqliteStore) -> None:
    apply(store, RULES, stop(-1, samples=(register(5000, at(60)),)))
    (session,) = store.list_sessions(status="Unmatched")
    assert session["reported_transaction_id"] == -1
    assert session["needs_reconciliation"] == 1
    full = store.get_session(session["id"])
    assert full is not None
    assert [s["wh"] for s in full["meter_samples"]] == [5000.0]


def test_events_and_count(store: SqliteStore) -> None:
    run(store, RULES, boot("A"), boot("B"), authorize_request("NOBODY", station="A"))
    assert [e["station_id"] for e in store.events(kind="boot")] == ["A", "B"]
    assert [e["kind"] for e in store.events(station_id="A")] == ["boot", "authorization_refused"]
    assert len(store.events()) == 3
    assert store.count("stations") == 2
    with pytest.raises(StoreError, match="unknown table"):
        store.count("sqlite_master; DROP TABLE stations")


def test_mark_all_offline(store: SqliteStore, path: str) -> None:
    run(store, RULES, boot("A"), boot("B"))
    assert count(path, "stations", "online = 1") == 2
    store.mark_all_offline()
    assert count(path, "stations", "online = 1") == 0


def test_utc_naive_and_aware_moments_are_stored_alike(store: SqliteStore) -> None:
    naive = datetime(2026, 1, 5, 8, 0)
    aware = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    first = start_id(store, timestamp=naive)
    assert start_id(store, timestamp=aware) == first
