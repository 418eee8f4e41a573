"""The ledger's relational schema and its migrations, keyed by SQLite's `user_version`."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the foundation ledger
    """
    CREATE TABLE stations (
        id TEXT PRIMARY KEY,
        registered INTEGER NOT NULL DEFAULT 0,
        registration_status TEXT,
        vendor TEXT, model TEXT, serial_number TEXT, charge_box_serial TEXT,
        firmware_version TEXT, iccid TEXT, imsi TEXT, meter_type TEXT, meter_serial TEXT,
        firmware_status TEXT, diagnostics_status TEXT,
        security_profile INTEGER NOT NULL DEFAULT 0,
        online INTEGER NOT NULL DEFAULT 0,
        last_boot_at TEXT, last_heartbeat_at TEXT, last_seen_at TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE connectors (
        station_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT,
        info TEXT,
        vendor_error_code TEXT,
        status_timestamp TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (station_id, connector_id)
    );
    CREATE TABLE status_history (
        id INTEGER PRIMARY KEY,
        station_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT,
        info TEXT,
        vendor_error_code TEXT,
        timestamp TEXT,
        received_at TEXT NOT NULL
    );
    CREATE INDEX status_history_station ON status_history (station_id, connector_id, id);
    CREATE TABLE id_tokens (
        id_tag TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        expiry TEXT,
        parent_id_tag TEXT,
        max_active_transactions INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE transactions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        station_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        id_tag TEXT,
        auth_status TEXT,
        meter_start_wh INTEGER,
        started_at TEXT,
        start_received_at TEXT,
        reservation_id INTEGER,
        meter_stop_wh INTEGER,
        energy_wh INTEGER,
        ended_at TEXT,
        stop_received_at TEXT,
        stop_reason TEXT,
        stop_id_tag TEXT,
        status TEXT NOT NULL,
        reported_transaction_id INTEGER,
        needs_reconciliation INTEGER NOT NULL DEFAULT 0,
        anomalies TEXT,
        last_meter_wh REAL,
        last_meter_at TEXT
    );
    CREATE UNIQUE INDEX transactions_start_key
        ON transactions (station_id, connector_id, id_tag, started_at)
        WHERE started_at IS NOT NULL;
    CREATE INDEX transactions_active_connector
        ON transactions (station_id, connector_id) WHERE status = 'Active';
    CREATE INDEX transactions_active_tag ON transactions (id_tag) WHERE status = 'Active';
    CREATE INDEX transactions_unmatched
        ON transactions (station_id, reported_transaction_id)
        WHERE reported_transaction_id IS NOT NULL;
    CREATE TABLE meter_samples (
        id INTEGER PRIMARY KEY,
        station_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        transaction_id INTEGER,
        reported_transaction_id INTEGER,
        timestamp TEXT NOT NULL,
        received_at TEXT NOT NULL,
        measurand TEXT NOT NULL,
        phase TEXT,
        unit TEXT,
        context TEXT,
        location TEXT,
        format TEXT,
        value TEXT NOT NULL,
        numeric REAL,
        wh REAL,
        anomaly TEXT
    );
    -- A retried MeterValues or StopTransaction inserts nothing twice.
    -- It also serves reads by transaction (WHERE IFNULL(transaction_id, 0) = ?).
    CREATE UNIQUE INDEX meter_samples_dedupe ON meter_samples (
        IFNULL(transaction_id, 0), timestamp, station_id, connector_id,
        IFNULL(reported_transaction_id, 0), measurand, IFNULL(phase, ''), IFNULL(location, ''),
        IFNULL(context, '')
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        station_id TEXT,
        kind TEXT NOT NULL,
        at TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX events_station ON events (station_id, id);
    """,
    # 2: energy counted before a meter reset within a transaction
    """
    ALTER TABLE transactions ADD COLUMN register_offset_wh REAL NOT NULL DEFAULT 0
    """,
    # 3: billing and payments
    """
    CREATE TABLE tariffs (
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        effective_from TEXT NOT NULL,
        currency TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (id, version)
    );
    -- station_id '' is the default tariff, connector_id 0 the whole station.
    CREATE TABLE tariff_assignments (
        station_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        tariff_id TEXT NOT NULL,
        assigned_at TEXT NOT NULL,
        PRIMARY KEY (station_id, connector_id)
    );
    CREATE TABLE cdrs (
        transaction_id INTEGER PRIMARY KEY,
        tariff_id TEXT,
        tariff_version INTEGER,
        currency TEXT NOT NULL,
        cost_excl_vat TEXT NOT NULL,
        cost_incl_vat TEXT NOT NULL,
        flags TEXT,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE drivers (
        id TEXT PRIMARY KEY,
        name TEXT,
        email TEXT,
        currency TEXT NOT NULL,
        payment_method TEXT NOT NULL,
        card_ref TEXT,
        plan_id TEXT,
        wallet_minimum TEXT,
        created_at TEXT NOT NULL
    );
    ALTER TABLE id_tokens ADD COLUMN driver_id TEXT;
    CREATE TABLE subscription_plans (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE postings (
        seq INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        memo TEXT NOT NULL,
        reverses TEXT
    );
    -- Amounts as exact decimal text and as integer minor units (SQLite sums those exactly).
    CREATE TABLE posting_legs (
        posting_seq INTEGER NOT NULL REFERENCES postings (seq),
        leg INTEGER NOT NULL,
        account TEXT NOT NULL,
        currency TEXT NOT NULL,
        amount TEXT NOT NULL,
        minor INTEGER NOT NULL,
        PRIMARY KEY (posting_seq, leg)
    );
    CREATE INDEX posting_legs_account ON posting_legs (account, currency);
    CREATE TABLE payment_actions (
        key TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX payment_actions_due ON payment_actions (next_attempt_at) WHERE status = 'pending';
    CREATE TABLE payment_outcomes (
        key TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (key, attempt)
    );
    CREATE TABLE invoices (
        number TEXT PRIMARY KEY,
        driver_id TEXT NOT NULL,
        period TEXT NOT NULL,
        body TEXT NOT NULL,
        csv TEXT NOT NULL,
        issued_at TEXT NOT NULL
    )
    """,
    # 4: the operator API: api keys, audit log, alerts, uploads, firmware campaigns, snapshots
    """
    SELECT 1
    """,
    # 5: OCPP 2.0.1: station transaction ids, device model
    """
    SELECT 1
    """,
]


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema up to date; return the version it is at."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            (current,) = connection.execute("PRAGMA user_version").fetchone()
            if current < number:
                for statement in script.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {number}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
