"""`open_connection`: a store's target (a SQLite file or a PostgreSQL URL) as a migrated
`DbConnection`, and `store_target`, the target a database URL names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from csms.storage.base import StoreError
from csms.storage.dialect import DbConnection, is_postgres_url
from csms.storage.schema import migrate, schema_version


def sqlite_path(url: str) -> str:
    """The file of a `sqlite:///PATH` URL (`sqlite:///:memory:` for a private database)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise StoreError(f"not a SQLite URL: {url!r} (expected sqlite:///PATH)")
    path = url[len(prefix) :]
    if not path:
        raise StoreError("the SQLite URL names no file")
    return path


def store_target(url: str) -> str:
    """What a store opens for a database URL: the SQLite file, or the PostgreSQL URL."""
    return url if is_postgres_url(url) else sqlite_path(url)


def open_connection(
    target: str, *, busy_timeout_ms: int = 10_000, application_name: str = "csms"
) -> DbConnection:
    """Connect to `target` (a SQLite file path, `:memory:`, or a `postgresql://` URL) and
    bring its schema up to date. On PostgreSQL the connection reconnects by itself after the
    server dropped it (`PostgresConnection`), under `application_name`."""
    if is_postgres_url(target):
        try:
            from csms.storage.postgres import PostgresConnection, connect
        except ImportError:
            raise StoreError(
                "PostgreSQL needs psycopg and psycopg-pool (the package's `postgres` extra)"
            ) from None

        connection = PostgresConnection(
            connect(target, application_name=application_name),
            url=target,
            application_name=application_name,
        )
        try:
            migrate(connection)
        except BaseException:
            connection.close()
            raise
        return connection
    if target != ":memory:":
        parent = Path(target).parent
        if not parent.exists():
            raise StoreError(f"directory {parent} does not exist")
    try:
        db = sqlite3.connect(
            target, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
        )
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        migrate(db)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open database {target}: {exc}") from None
    return db


def upgrade_database(url: str) -> int:
    """Apply the migrations to the database `url` names; the schema version it is at now."""
    connection = open_connection(store_target(url))
    try:
        if is_postgres_url(url):
            return schema_version(connection)
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        return int(version)
    finally:
        connection.close()
