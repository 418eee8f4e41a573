"""The cluster's own tables (PostgreSQL only): nodes with their heartbeats, which node holds
which station (with the claim's place in the database's order of claims), and the bodies of
messages too big for a NOTIFY payload.

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
    # Claims are ordered by this one sequence, not by the claiming nodes' clocks.
    "CREATE SEQUENCE IF NOT EXISTS cluster_claims",
    """
    CREATE TABLE IF NOT EXISTS cluster_stations (
        station_id TEXT PRIMARY KEY,
        node_id TEXT NOT NULL REFERENCES cluster_nodes (node_id) ON DELETE CASCADE,
        ocpp_version TEXT NOT NULL,
        claim BIGINT NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
    )
    """,
    # Tables of the version that ordered claims by the nodes' wall clocks (seconds as a float):
    # their rows only say who holds what now, so any new claim may replace them.
    "ALTER TABLE cluster_stations ADD COLUMN IF NOT EXISTS claim BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE cluster_stations ALTER COLUMN claim DROP DEFAULT",
    """
    DO $$ BEGIN
        IF (SELECT data_type FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = 'cluster_stations'
                AND column_name = 'claimed_at') = 'double precision' THEN
            ALTER TABLE cluster_stations DROP COLUMN claimed_at;
            ALTER TABLE cluster_stations
                ADD COLUMN claimed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp();
        END IF;
    END $$
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
