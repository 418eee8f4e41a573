"""`CredentialReader`: a station's security profile and password hash, read at each handshake.

Its own read-only connection to the ledger's SQLite file: registrations made by the CLI while
the server runs are seen at once, and WAL readers never wait for the ledger's commits.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StationSecurity:
    """How a known station must authenticate."""

    profile: int
    password_hash: str | None


class CredentialReader:
    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )

    def lookup(self, station_id: str) -> StationSecurity | None:
        """The station's security settings; None if the id is unknown."""
        row = self._db.execute(
            "SELECT security_profile, password_hash FROM stations WHERE id = ?", (station_id,)
        ).fetchone()
        return None if row is None else StationSecurity(int(row[0]), row[1])

    def close(self) -> None:
        self._db.close()
