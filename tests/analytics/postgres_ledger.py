"""The hand-built ledger (`analytics_ledger`) copied row for row into a PostgreSQL database, so
that analytics can be compared on the two backends."""

from __future__ import annotations

import sqlite3

from csms.storage.database import open_connection


def copy_to_postgres(sqlite_url: str, postgres_url: str) -> None:
    """Migrate the PostgreSQL database and copy every row of the SQLite ledger into it."""
    source = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    target = open_connection(postgres_url)
    try:
        tables = [
            name
            for (name,) in source.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        target.execute("BEGIN")
        for table in tables:
            cursor = source.execute(f"SELECT * FROM {table}")
            columns = ", ".join(column[0] for column in cursor.description)
            rows = cursor.fetchall()
            if rows:
                marks = ", ".join("?" for _ in cursor.description)
                target.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
        target.execute("COMMIT")
    finally:
        target.close()
        source.close()
