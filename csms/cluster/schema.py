"""The cluster's own tables (PostgreSQL only): nodes with their heartbeats, which node holds
which station, and the bodies of messages too big for a NOTIFY payload.

They are created here, not by the ledger's migrations, because SQLite runs those too and has no
use for them. Every statement is idempotent and runs under an advisory lock, so nodes starting
at once do not race.
"""

from __future__ import annotations

import psycopg

#: The advisory lock key serializing this migration (an arbitrary constant of this project).
MIGRATION_LOCK = 0x6373_6D73_0001

_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS cluster_nodes (
        node_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS cluster_stations (
        station_id TEXT PRIMARY KEY,
        node_id TEXT NOT NULL REFERENCES cluster_nodes (node_id) ON DELETE CASCADE,
        ocpp_version TEXT NOT NULL,
        claimed_at DOUBLE PRECISION NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS cluster_stations_node ON cluster_stations (node_id)",
    """
    CREATE TABLE IF NOT EXISTS cluster_messages (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        body TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )
    """,
)


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create the cluster tables if they are missing."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        for statement in _TABLES:
            conn.execute(statement)
