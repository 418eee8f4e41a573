"""`CredentialReader`: a station's security profile and password hash, read at each handshake.

Its own connections to the ledger database, apart from the ledger's: registrations made by the
CLI while the server runs are seen at once. On SQLite a read-only connection (WAL readers never
wait for the ledger's commits); on PostgreSQL a small pool, so that a connection the server
dropped is replaced rather than failing every handshake from then on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from csms.storage.base import StoreError
from csms.storage.dialect import is_postgres_url, to_postgres

_LOOKUP = "SELECT security_profile, password_hash, pending_password_hash FROM stations WHERE id = ?"


class CredentialsUnavailable(StoreError):
    """The stations' credentials cannot be read now (the database failed)."""


@dataclass(frozen=True, slots=True)
class StationSecurity:
    """How a known station must authenticate."""

    profile: int
    password_hash: str | None
    #: A rotated password sent to the station, accepted beside the old one until the
    #: station logs in with it.
    pending_password_hash: str | None = None


class CredentialReader:
    """Reads credentials from a SQLite file path or a `postgresql://` URL."""

    def __init__(self, target: str) -> None:
        self._fetch: Callable[[str], Any]
        #: A lookup waits for the network (PostgreSQL): callers on an event loop should
        #: make it on a worker thread. A SQLite lookup is a local read.
        self.remote = is_postgres_url(target)
        if self.remote:
            from csms.storage.postgres import open_pool

            pool = open_pool(target, min_size=1, max_size=2, application_name="csms-credentials")
            self._close: Callable[[], None] = pool.close
            sql = to_postgres(_LOOKUP)

            def fetch(station_id: str) -> Any:
                try:
                    with pool.connection() as connection:
                        return connection.execute(sql, (station_id,)).fetchone()
                except Exception as exc:  # psycopg's and the pool's errors alike
                    raise CredentialsUnavailable(str(exc)) from exc

        else:
            db = sqlite3.connect(
                f"file:{target}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
            self._close = db.close

            def fetch(station_id: str) -> Any:
                try:
                    return db.execute(_LOOKUP, (station_id,)).fetchone()
                except sqlite3.Error as exc:
                    raise CredentialsUnavailable(str(exc)) from exc

        self._fetch = fetch

    def lookup(self, station_id: str) -> StationSecurity | None:
        """The station's security settings; None if the id is unknown.
        CredentialsUnavailable if the database cannot be read."""
        row = self._fetch(station_id)
        return None if row is None else StationSecurity(int(row[0]), row[1], row[2])

    def close(self) -> None:
        self._close()
