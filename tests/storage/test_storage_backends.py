"""What differs between the backends behind one store: migrations (PostgreSQL's advisory
lock and `schema_version`, a migration appended later), `csms db upgrade`, the dialect
translation, the credential reader and the API's store pool on either database."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from ledger_harness import ACCEPT_ALL, boot, rows, run
from support.postgres import fresh_database
from support.server_process import csms_env, run_cli

from csms.runtime.store_pool import StorePool
from csms.storage import schema
from csms.storage.database import upgrade_database
from csms.storage.dialect import UntranslatableSql, is_postgres_url, to_postgres
from csms.storage.sqlite import SqliteStore
from csms.storage.sqlite_api import ApiStore
from csms.storage.sqlite_credentials import CredentialReader


def url_of(path: str) -> str:
    return path if is_postgres_url(path) else f"sqlite:///{path}"


def test_two_stores_opened_at_once_on_a_fresh_postgres_database_migrate_once() -> None:
    with fresh_database() as url:
        errors: list[BaseException] = []
        stores: list[SqliteStore] = []
        barrier = threading.Barrier(3)

        def open_one() -> None:
            barrier.wait()
            try:
                stores.append(SqliteStore(url))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            assert errors == []
            assert rows(url, "SELECT version FROM schema_version") == [
                {"version": len(schema.MIGRATIONS)}
            ]
            run(stores[0], ACCEPT_ALL, boot("CP1"))
            assert stores[1].count("stations") == 1
        finally:
            for store in stores:
                store.close()


def test_a_migration_appended_later_is_applied_to_an_existing_database(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    SqliteStore(path).close()
    appended = """
    ALTER TABLE stations ADD COLUMN rating REAL;
    CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, station_id TEXT NOT NULL,
        -- a comment with a ? and IFNULL(x, 0) in it
        body TEXT NOT NULL DEFAULT '50% off?', weight INTEGER NOT NULL DEFAULT 0)
    """
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, appended])
    assert upgrade_database(url_of(path)) == len(schema.MIGRATIONS)
    store = SqliteStore(path)
    try:
        store._db.execute("INSERT INTO notes (station_id) VALUES (?)", ("CP1",))
        store._db.execute("INSERT INTO notes (station_id) VALUES (?)", ("CP2",))
        store._db.execute("UPDATE stations SET rating = ?", (4.5,))
    finally:
        store.close()
    assert rows(path, "SELECT id, body, weight FROM notes ORDER BY id") == [
        {"id": 1, "body": "50% off?", "weight": 0},
        {"id": 2, "body": "50% off?", "weight": 0},
    ]


def test_csms_db_upgrade_applies_the_migrations_and_prints_the_version(
    path: str, tmp_path: Path
) -> None:
    env = csms_env(tmp_path / "unused.db", extra={"CSMS_DATABASE_URL": url_of(path)})
    for _ in range(2):  # a second upgrade finds nothing to do
        done = run_cli(["db", "upgrade"], env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"database schema at version {len(schema.MIGRATIONS)}"
    assert rows(path, "SELECT COUNT(*) AS n FROM stations") == [{"n": 0}]


def test_csms_db_upgrade_reports_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    env = csms_env(
        tmp_path / "unused.db", extra={"CSMS_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}
    )
    done = run_cli(["db", "upgrade"], env)
    assert done.returncode != 0
    assert "cannot connect to PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr


def test_integral_sums_are_ints_and_averages_floats(store: SqliteStore) -> None:
    run(store, ACCEPT_ALL, boot("A"), boot("B"))
    total, average = store._db.execute("SELECT SUM(online), AVG(online) FROM stations").fetchone()
    assert (total, type(total), average, type(average)) == (2, int, 1.0, float)


def test_credential_reader_sees_registrations_made_while_it_is_open(path: str) -> None:
    store = SqliteStore(path)
    reader = CredentialReader(path)
    try:
        assert reader.lookup("CP1") is None
        store.add_station("CP1", security_profile=1, password_hash="scrypt$hash")
        security = reader.lookup("CP1")
        assert security is not None
        assert (security.profile, security.password_hash) == (1, "scrypt$hash")
    finally:
        reader.close()
        store.close()


async def test_store_pool_runs_api_work_on_either_backend(path: str) -> None:
    SqliteStore(path).close()
    pool = StorePool(url_of(path), size=2)
    try:
        assert pool.path == path

        def create(store: ApiStore) -> Any:
            store.create_station("CP1", 0)
            return store.stations_with_connectors()

        stations = await pool.run(create)
        assert [s["id"] for s in stations] == ["CP1"]
        assert await pool.run(lambda store: store.count("stations")) == 1
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("sqlite", "postgres"),
    [
        (
            "SELECT a FROM t WHERE b = ? AND c LIKE '%?'",
            "SELECT a FROM t WHERE b = %s AND c LIKE '%%?'",
        ),
        (
            "INSERT OR IGNORE INTO t (a) VALUES (?)",
            "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING",
        ),
        ("SELECT IFNULL(SUM(x), 0) FROM t", "SELECT COALESCE(SUM(x), 0) FROM t"),
        ("SELECT GROUP_CONCAT(a, ' ') FROM t", "SELECT STRING_AGG(a, ' ') FROM t"),
        ("BEGIN IMMEDIATE", "BEGIN"),
        ("PRAGMA synchronous = FULL", "SELECT NULL WHERE FALSE"),
        (
            "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, r REAL)",
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT,"
            " r DOUBLE PRECISION)",
        ),
        ("SELECT 'it''s REAL' AS \"INTEGER\" -- why?\n", "SELECT 'it''s REAL' AS \"INTEGER\""),
    ],
)
def test_translation_to_postgres(sqlite: str, postgres: str) -> None:
    assert to_postgres(sqlite) == postgres


def test_insert_or_replace_is_refused_with_the_portable_form() -> None:
    with pytest.raises(UntranslatableSql, match="ON CONFLICT"):
        to_postgres("INSERT OR REPLACE INTO t (a) VALUES (?)")
