"""PostgreSQL connections for the stores: opening them from a URL, and their SQLite face.

`connect(url)` and `open_pool(url)` are the one place a `postgresql://` URL becomes a psycopg
connection (or a pool of them) with the settings every part of the CSMS relies on:
autocommit (the stores send BEGIN/COMMIT themselves, as on SQLite), durable commits
(`synchronous_commit=on`: a charger is answered only after its records are on disk), and
integral sums as ints. `PostgresConnection` wraps one such connection in the `DbConnection`
shape the stores use, translating their SQLite SQL (`csms.storage.dialect.to_postgres`); it
can hold back a batch's writes to send them with its next read (`pipeline()`) and, given its
URL, reconnects at the next transaction after the server dropped it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.adapt import Loader
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from csms.storage.base import StoreError
from csms.storage.dialect import DbCursor, to_postgres

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


#: Seconds a connection attempt may take: the ledger reconnects on the event loop, which an
#: unreachable host (a partition, not a refusal) must not stall for the system's minutes.
CONNECT_TIMEOUT_S = 5


def connect_kwargs(application_name: str = "csms") -> dict[str, Any]:
    return {
        "autocommit": True,
        "options": SESSION_OPTIONS,
        "application_name": application_name,
        "connect_timeout": CONNECT_TIMEOUT_S,
    }


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


_BEGIN = re.compile(r"^\s*BEGIN\b", re.IGNORECASE)
_END = re.compile(r"^\s*(COMMIT|END|ROLLBACK)\s*;?\s*$", re.IGNORECASE)
_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES|SHOW)\b|\bRETURNING\b", re.IGNORECASE)


@lru_cache(maxsize=4096)
def _returns_rows(sql: str) -> bool:
    return bool(_ROWS.search(sql))


class PostgresConnection:
    """A psycopg connection as the stores use a `sqlite3.Connection`.

    Inside `pipeline()` the statements that return no rows are held back and sent with the
    next one that does, in one round trip (psycopg's pipeline mode), rather than one round
    trip each. Given the `url` it was opened from, a connection the server dropped (a
    restart, a network cut) is replaced when the next transaction begins, or at the next
    statement outside one; never in the middle of a transaction, whose earlier statements
    died with the old connection."""

    dialect = "postgresql"

    def __init__(
        self,
        connection: psycopg.Connection[Any],
        *,
        url: str | None = None,
        application_name: str = "csms",
    ) -> None:
        self.raw = connection
        self._url = url
        self._application_name = application_name
        self._holding = False
        self._held: list[_Held] = []
        self._open_transaction = False

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> DbCursor:
        if sql == "COMMIT" and self.raw.info.transaction_status == TransactionStatus.INERROR:
            # PostgreSQL would answer a COMMIT of a failed transaction with a silent rollback.
            raise StoreError("the transaction failed and cannot be committed")
        begins = bool(_BEGIN.match(sql))
        self._revive(begins)
        if begins:
            self._open_transaction = True
        elif _END.match(sql):
            self._open_transaction = False
        statement = to_postgres(sql)
        if not self._holding:
            return self.raw.execute(statement, parameters)
        if not _returns_rows(statement):
            return self._hold(_Held(statement, [parameters], many=False))
        if not self._held:
            return self.raw.execute(statement, parameters)
        return self._send_held_then(statement, parameters)

    def executemany(self, sql: str, parameters: Sequence[Sequence[Any]], /) -> DbCursor:
        self._revive(False)
        statement = to_postgres(sql)
        if self._holding and not _returns_rows(statement):
            return self._hold(_Held(statement, list(parameters), many=True))
        if self._held:
            self._send_held()
        cursor = self.raw.cursor()
        cursor.executemany(statement, parameters)
        return cursor

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Hold back the block's statements that return no rows until one that does (or a
        rowcount) needs the answers, then send them together. A held statement's error is
        raised there, at the latest on leaving the block: the caller learns of every error
        of the block inside it."""
        self._revive(True)
        self._holding = True
        try:
            yield
            self._send_held()
        finally:
            self._holding = False
            self._held = []  # after an error: the caller rolls the transaction back

    @property
    def dropped(self) -> bool:
        """The server dropped the connection: the next transaction will run on a new one."""
        return bool(self.raw.broken) and self._url is not None

    @property
    def in_transaction(self) -> bool:
        # A broken connection's transaction (UNKNOWN) is gone: there is nothing to roll back.
        return self.raw.info.transaction_status in (
            TransactionStatus.ACTIVE,
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        )

    def close(self) -> None:
        self.raw.close()

    def _hold(self, held: _Held) -> _HeldCursor:
        self._held.append(held)
        return _HeldCursor(self, held)

    def _send_held(self) -> None:
        """Send the held statements in one round trip; raises the first error of any."""
        held, self._held = self._held, []
        if len(held) == 1:
            held[0].send(self.raw)  # alone, it needs no pipeline
        elif held:
            with self.raw.pipeline():
                for statement in held:
                    statement.send(self.raw)

    def _send_held_then(self, statement: str, parameters: Sequence[Any]) -> psycopg.Cursor[Any]:
        """The held statements and then `statement`, which returns rows, in one round trip:
        its cursor, the rows fetched. Raises the first error of any of them."""
        held, self._held = self._held, []
        with self.raw.pipeline():
            for earlier in held:
                earlier.send(self.raw)
            answer = self.raw.execute(statement, parameters)
        return answer

    def _revive(self, begins: bool) -> None:
        """A new connection for a dropped one, unless a transaction of it was under way."""
        if self._url is None or not self.raw.broken or (self._open_transaction and not begins):
            return
        self.raw.close()
        self.raw = connect(self._url, application_name=self._application_name)
        self._open_transaction = False


class _Held:
    """A statement returning no rows, held back to go out with the next that does."""

    __slots__ = ("cursor", "many", "parameters", "statement")

    def __init__(self, statement: str, parameters: list[Sequence[Any]], *, many: bool) -> None:
        self.statement = statement
        self.parameters = parameters
        self.many = many
        self.cursor: psycopg.Cursor[Any] | None = None

    def send(self, connection: psycopg.Connection[Any]) -> None:
        self.cursor = connection.cursor()
        if self.many:
            self.cursor.executemany(self.statement, self.parameters)
        else:
            self.cursor.execute(self.statement, self.parameters[0])


class _HeldCursor:
    """The cursor of a held statement: asking for its rowcount sends it (and what is held
    before it) and waits for the answer."""

    def __init__(self, owner: PostgresConnection, held: _Held) -> None:
        self._owner = owner
        self._held = held

    def _sent(self) -> psycopg.Cursor[Any]:
        if self._held.cursor is None:
            self._owner._send_held()
        assert self._held.cursor is not None
        return self._held.cursor

    @property
    def rowcount(self) -> int:
        return self._sent().rowcount

    @property
    def description(self) -> Any:
        return self._sent().description

    def fetchone(self) -> Any:
        return self._sent().fetchone()

    def fetchall(self) -> list[Any]:
        return self._sent().fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._sent())


@contextmanager
def scratch_database(maintenance_url: str, prefix: str = "csms_scratch") -> Iterator[str]:
    """The URL of a new, empty database beside the one `maintenance_url` names, dropped (with
    its connections) on exit: for tests and benchmarks."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(maintenance_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(maintenance_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(maintenance_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
