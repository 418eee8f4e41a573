"""`SqliteStore`: the ledger database (group commit), on SQLite or PostgreSQL.

The ledger actor hands it whole batches (`run_batch`), one transaction each, with a savepoint
per event so one bad event cannot undo its neighbours. The CLI opens the same database beside
a running server for its listings and registrations.

The name is historical: the SQL is written in SQLite's dialect, and on a `postgresql://` URL
the same class runs on a PostgreSQL connection that translates it (`csms.storage.dialect`).
SQLite is the embedded default (WAL, synchronous=FULL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

from csms.domain.authorization import TOKEN_STATUSES
from csms.domain.ports import LedgerTx
from csms.storage.base import EventOutcome, StoreError
from csms.storage.database import open_connection, sqlite_path, store_target
from csms.storage.dialect import DbConnection, dropped, pipelined
from csms.storage.sqlite_billing_admin import BillingAdmin
from csms.storage.sqlite_ledger import SqliteLedgerTx
from csms.storage.timestamps import to_text

T = TypeVar("T")


__all__ = ["SqliteStore", "TokenRow", "sqlite_path"]


@dataclass(frozen=True)
class TokenRow:
    """An id token as an operator registers it."""

    id_tag: str
    status: str = "Accepted"
    expiry: datetime | None = None
    parent_id_tag: str | None = None
    max_active_transactions: int | None = None

    def check(self) -> None:
        """Raise StoreError naming what is wrong with this token."""
        if self.status not in TOKEN_STATUSES:
            raise StoreError(
                f"status must be one of {', '.join(TOKEN_STATUSES)}, not {self.status!r}"
            )
        if not self.id_tag or len(self.id_tag) > 20:
            raise StoreError(f"id tag must be 1 to 20 characters: {self.id_tag!r}")
        if self.parent_id_tag is not None and len(self.parent_id_tag) > 20:
            raise StoreError(f"parent id tag must be at most 20 characters: {self.parent_id_tag!r}")
        if self.max_active_transactions is not None and self.max_active_transactions < 1:
            raise StoreError("max active transactions must be at least 1")


class SqliteStore(BillingAdmin):
    """One connection to the ledger database; used by one thread at a time.

    `target` is a SQLite file (or `:memory:`) or a `postgresql://` URL; on PostgreSQL the
    connection is named `application_name` (what `pg_stat_activity` shows)."""

    def __init__(
        self, target: str, *, busy_timeout_ms: int = 10_000, application_name: str = "csms"
    ) -> None:
        self.path = target
        self._db: DbConnection = open_connection(
            target, busy_timeout_ms=busy_timeout_ms, application_name=application_name
        )

    @classmethod
    def from_url(cls, url: str, *, application_name: str = "csms") -> Self:
        """The store a database URL (`sqlite:///PATH` or `postgresql://...`) names."""
        return cls(store_target(url), application_name=application_name)

    @classmethod
    def on_connection(cls, connection: DbConnection, target: str) -> Self:
        """A store on a connection someone else opened, migrated and will close (a pool's)."""
        store = cls.__new__(cls)
        store.path = target
        store._db = connection
        return store

    def close(self) -> None:
        self._db.close()

    # -- the ledger's group commit -------------------------------------------------------

    def apply_batch(self, work: Sequence[Callable[[LedgerTx], Any]]) -> list[EventOutcome]:
        """Open a write transaction and run each piece of work in it; `commit` ends it.

        A piece that raises is rolled back alone and its exception returned in its place.
        Failures are rare, so the batch first runs without per-piece savepoints (two
        statements fewer per event); only if a piece raises is it run again, each piece
        under its own savepoint.
        """
        db = self._db
        tx = SqliteLedgerTx(db)
        began = False
        try:
            # On PostgreSQL the batch's writes go out together with its next read, one round
            # trip for all; a write's error may so surface at a later piece, but by the end
            # of the block at the latest, and sends the batch down the savepoint path.
            with pipelined(db):
                db.execute("BEGIN IMMEDIATE")
                began = True
                values = [piece(tx) for piece in work]
            return [EventOutcome(value=value) for value in values]
        except Exception:
            # A batch that could not even begin fails, unless the server had dropped the
            # connection unnoticed: then the savepoint pass begins again on a new one.
            if not began and not dropped(db):
                raise
            self.rollback()
        except BaseException:
            self.rollback()
            raise
        outcomes: list[EventOutcome] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for piece in work:
                db.execute("SAVEPOINT event")
                try:
                    value = piece(tx)
                except Exception as exc:
                    db.execute("ROLLBACK TO event")
                    db.execute("RELEASE event")
                    outcomes.append(EventOutcome(error=exc))
                else:
                    db.execute("RELEASE event")
                    outcomes.append(EventOutcome(value=value))
        except BaseException:
            self.rollback()
            raise
        return outcomes

    def commit(self) -> None:
        """Commit the open batch durably (WAL, synchronous=FULL); roll back if that fails."""
        try:
            self._db.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def run_batch(self, work: Sequence[Callable[[LedgerTx], Any]]) -> list[EventOutcome]:
        """`apply_batch` then `commit`: one durable transaction for all of the work."""
        outcomes = self.apply_batch(work)
        self.commit()
        return outcomes

    def mark_all_offline(self) -> None:
        """At start no station is connected, whatever the last run left behind."""
        self._db.execute("UPDATE stations SET online = 0 WHERE online = 1")

    # -- stations ----------------------------------------------------------------------

    def add_station(
        self, station_id: str, security_profile: int = 0, password_hash: str | None = None
    ) -> bool:
        """Register a station (accepted at its next boot); False if it was registered.

        `password_hash` (see `csms.domain.credentials`) is for profiles 1 and 2."""
        return self.add_stations([(station_id, security_profile)], password_hash) == 1

    def set_station_password(self, station_id: str, password_hash: str) -> int:
        """Replace a profile 1 or 2 station's password hash; the station's profile (None if
        there is no such station). Any other profile is left as it is."""
        with self._write():
            row = self._db.execute(
                "SELECT security_profile FROM stations WHERE id = ?", (station_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no station {station_id!r}")
            if row[0] in (1, 2):
                self._db.execute(
                    "UPDATE stations SET password_hash = ? WHERE id = ?",
                    (password_hash, station_id),
                )
            return int(row[0])

    def add_stations(
        self, stations: Sequence[tuple[str, int]], password_hash: str | None = None
    ) -> int:
        """Register stations in one transaction; return how many were not registered yet."""
        now = to_text(datetime.now(UTC))
        added = 0
        with self._write():
            for station_id, security_profile in stations:
                row = self._db.execute(
                    "SELECT registered FROM stations WHERE id = ?", (station_id,)
                ).fetchone()
                if row is not None and row[0]:
                    continue
                self._db.execute(
                    """
                    INSERT INTO stations (id, registered, registration_status,
                        security_profile, password_hash, created_at)
                    VALUES (?, 1, NULL, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET registered = 1,
                        security_profile = excluded.security_profile,
                        password_hash = excluded.password_hash
                    """,
                    (station_id, security_profile, password_hash, now),
                )
                added += 1
        return added

    def list_stations(self) -> list[dict[str, Any]]:
        return self._rows(
            """
            SELECT id, registered, registration_status, vendor, model, serial_number,
                firmware_version, online, last_boot_at, last_heartbeat_at, last_seen_at,
                security_profile
            FROM stations ORDER BY id
            """
        )

    def get_station(self, station_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM stations WHERE id = ?", (station_id,))
        if not rows:
            return None
        station = rows[0]
        station["connectors"] = self._rows(
            "SELECT connector_id, status, error_code, info, vendor_error_code,"
            " status_timestamp, updated_at FROM connectors WHERE station_id = ?"
            " ORDER BY connector_id",
            (station_id,),
        )
        return station

    def status_history(self, station_id: str) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT * FROM status_history WHERE station_id = ? ORDER BY id", (station_id,)
        )

    # -- id tokens ---------------------------------------------------------------------

    def upsert_token(
        self,
        id_tag: str,
        status: str = "Accepted",
        expiry: datetime | None = None,
        parent_id_tag: str | None = None,
        max_active_transactions: int | None = None,
    ) -> None:
        self.upsert_tokens(
            [TokenRow(id_tag, status, expiry, parent_id_tag, max_active_transactions)]
        )

    def upsert_tokens(self, tokens: Sequence[TokenRow]) -> None:
        """Add or update tokens in one transaction: all of them, or none if one is invalid."""
        for token in tokens:
            token.check()
        now = to_text(datetime.now(UTC))
        with self._write():
            self._db.executemany(
                """
                INSERT INTO id_tokens (id_tag, status, expiry, parent_id_tag,
                    max_active_transactions, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id_tag) DO UPDATE SET status = excluded.status,
                    expiry = excluded.expiry, parent_id_tag = excluded.parent_id_tag,
                    max_active_transactions = excluded.max_active_transactions,
                    updated_at = excluded.updated_at
                """,
                [
                    (
                        t.id_tag,
                        t.status,
                        to_text(t.expiry),
                        t.parent_id_tag,
                        t.max_active_transactions,
                        now,
                        now,
                    )
                    for t in tokens
                ],
            )

    def set_token_status(self, id_tag: str, status: str) -> None:
        TokenRow(id_tag, status).check()
        with self._write():
            cursor = self._db.execute(
                "UPDATE id_tokens SET status = ?, updated_at = ? WHERE id_tag = ?",
                (status, to_text(datetime.now(UTC)), id_tag),
            )
            if cursor.rowcount == 0:
                raise StoreError(f"no id token {id_tag!r}")

    def list_tokens(self) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT id_tag, status, expiry, parent_id_tag, max_active_transactions, updated_at"
            " FROM id_tokens ORDER BY id_tag"
        )

    # -- sessions ----------------------------------------------------------------------

    _SESSION_SELECT = """
        SELECT id, station_id, connector_id, id_tag, auth_status, started_at, ended_at,
            meter_start_wh, meter_stop_wh,
            energy_wh, status, stop_reason, needs_reconciliation, anomalies,
            reported_transaction_id, start_received_at, stop_received_at,
            cdrs.cost_excl_vat, cdrs.cost_incl_vat, cdrs.currency,
            last_meter_wh - meter_start_wh AS running_wh
        FROM transactions LEFT JOIN cdrs ON cdrs.transaction_id = transactions.id
    """

    def _sessions(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of `_SESSION_SELECT`: an active session's energy is its last reading's."""
        sessions = self._rows(sql, params)
        for session in sessions:
            running = session.pop("running_wh")
            if session["energy_wh"] is None and running is not None:
                session["energy_wh"] = int(running)  # toward zero, as SQLite's CAST did
        return sessions

    def list_sessions(
        self, *, station_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        clauses, params = [], []
        if station_id:
            clauses.append("station_id = ?")
            params.append(station_id)
        if status:
            clauses.append("status = ?")
            params.append(status)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._sessions(
            f"{self._SESSION_SELECT}{where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )

    def get_session(self, transaction_id: int) -> dict[str, Any] | None:
        rows = self._sessions(f"{self._SESSION_SELECT} WHERE id = ?", (transaction_id,))
        if not rows:
            return None
        session = rows[0]
        session["meter_samples"] = self._rows(
            "SELECT timestamp, received_at, measurand, phase, unit, context, location, value,"
            " wh, anomaly FROM meter_samples WHERE IFNULL(transaction_id, 0) = ?"
            " ORDER BY timestamp, id",
            (transaction_id,),
        )
        return session

    def events(
        self, station_id: str | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        clauses, params = [], []
        if station_id:
            clauses.append("station_id = ?")
            params.append(station_id)
        if kind:
            clauses.append("kind = ?")
            params.append(kind)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._rows(f"SELECT * FROM events{where} ORDER BY id", params)

    def count(self, table: str) -> int:
        if table not in {
            "stations",
            "transactions",
            "meter_samples",
            "events",
            "status_history",
            "id_tokens",
            "connectors",
        }:
            raise StoreError(f"unknown table {table}")
        (n,) = self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        return int(n)

    # -- helpers -----------------------------------------------------------------------

    def _write(self) -> _WriteTransaction:
        return _WriteTransaction(self._db)


class _WriteTransaction:
    """BEGIN IMMEDIATE ... COMMIT, so a CLI write waits politely for the server's batch."""

    def __init__(self, db: DbConnection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
