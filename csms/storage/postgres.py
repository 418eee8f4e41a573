"""PostgreSQL connections for the stores: opening them from a URL, and their SQLite face.

`connect(url)` and `open_pool(url)` are the one place a `postgresql://` URL becomes a psycopg
connection (or a pool of them) with the settings every part of the CSMS relies on:
autocommit (the stores send BEGIN/COMMIT themselves, as on SQLite), durable commits
(`synchronous_commit=on`: a charger is answered only after its records are on disk), and
integral sums as ints. `PostgresConnection` wraps one such connection in the `DbConnection`
shape the stores use, translating their SQLite SQL (`csms.storage.dialect.to_postgres`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.adapt import Loader
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from csms.storage.base import StoreError
from csms.storage.dialect import to_postgres

#: Settings of every session: durable commits whatever the server's default says.
SESSION_OPTIONS = "-c synchronous_commit=on"


class _NumberLoader(Loader):
    """`numeric` results (SUM over integers, AVG) as SQLite gives them: int when integral."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


def configure(connection: psycopg.Connection[Any]) -> None:
    """What every connection of the CSMS needs beyond its connect arguments."""
    connection.adapters.register_loader("numeric", _NumberLoader)


def connect_kwargs(application_name: str = "csms") -> dict[str, Any]:
    return {"autocommit": True, "options": SESSION_OPTIONS, "application_name": application_name}


def connect(url: str, *, application_name: str = "csms") -> psycopg.Connection[Any]:
    """A configured connection to the database `url` names; StoreError if there is none."""
    try:
        connection = psycopg.connect(url, **connect_kwargs(application_name))
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL: {_one_line(exc)}") from None
    configure(connection)
    return connection


def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 4, application_name: str = "csms"
) -> ConnectionPool[psycopg.Connection[Any]]:
    """An open pool of configured connections (checked before each use: a connection the
    server dropped is replaced rather than handed out)."""
    pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs=connect_kwargs(application_name),
        configure=configure,
        check=ConnectionPool.check_connection,
        open=False,
    )
    try:
        pool.open(wait=True, timeout=10.0)
    except psycopg.Error as exc:
        pool.close()
        raise StoreError(f"cannot connect to PostgreSQL: {_one_line(exc)}") from None
    return pool


def _one_line(exc: BaseException) -> str:
    """libpq's messages span lines; an operator's error is one."""
    return " ".join(str(exc).split())


class PostgresConnection:
    """A psycopg connection as the stores use a `sqlite3.Connection`."""

    dialect = "postgresql"

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.raw = connection

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        if sql == "COMMIT" and self.raw.info.transaction_status == TransactionStatus.INERROR:
            # PostgreSQL would answer a COMMIT of a failed transaction with a silent rollback.
            raise StoreError("the transaction failed and cannot be committed")
        return self.raw.execute(to_postgres(sql), parameters)

    def executemany(self, sql: str, parameters: Sequence[Sequence[Any]], /) -> psycopg.Cursor[Any]:
        cursor = self.raw.cursor()
        cursor.executemany(to_postgres(sql), parameters)
        return cursor

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()
