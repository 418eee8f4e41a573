"""The ledger's relational schema and its migrations: one list for SQLite and PostgreSQL.

Migrations are written in SQLite's dialect; on PostgreSQL each statement goes through
`csms.storage.dialect.to_postgres` (types, identity keys), so a migration appended here needs
nothing more. SQLite keeps the version in `PRAGMA user_version`, PostgreSQL in a
`schema_version` table, updated under an advisory lock so that processes starting together
migrate one after the other.
"""

from __future__ import annotations

from typing import Any

from csms.storage.dialect import DbConnection

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
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        scope TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        key_name TEXT,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        status_code INTEGER NOT NULL,
        body TEXT,
        remote TEXT
    );
    CREATE TABLE driver_blocks (
        driver_id TEXT NOT NULL,
        id_tag TEXT NOT NULL,
        previous_status TEXT NOT NULL,
        PRIMARY KEY (driver_id, id_tag)
    );
    CREATE TABLE local_list_versions (
        id INTEGER PRIMARY KEY,
        station_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        update_type TEXT NOT NULL,
        entries INTEGER NOT NULL,
        status TEXT NOT NULL,
        sent_at TEXT NOT NULL
    );
    CREATE INDEX local_list_versions_station ON local_list_versions (station_id, version);
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        station_id TEXT,
        severity TEXT NOT NULL,
        message TEXT NOT NULL,
        detail TEXT NOT NULL,
        state TEXT NOT NULL,
        raised_at TEXT NOT NULL,
        acknowledged_at TEXT,
        acknowledged_by TEXT,
        cleared_at TEXT,
        cleared_by TEXT
    );
    -- At most one open (active or acknowledged) alert per kind and subject.
    CREATE UNIQUE INDEX alerts_open ON alerts (kind, subject) WHERE state != 'cleared';
    CREATE TABLE alert_settings (
        key TEXT PRIMARY KEY,
        value REAL NOT NULL
    );
    CREATE TABLE upload_slots (
        token TEXT PRIMARY KEY,
        station_id TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE uploads (
        id INTEGER PRIMARY KEY,
        station_id TEXT NOT NULL,
        file_name TEXT NOT NULL,
        stored_as TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        content_type TEXT,
        uploaded_at TEXT NOT NULL
    );
    CREATE INDEX uploads_station ON uploads (station_id, id);
    CREATE TABLE firmware_files (
        name TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        uploaded_at TEXT NOT NULL
    );
    CREATE TABLE firmware_campaigns (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        firmware TEXT NOT NULL,
        location TEXT NOT NULL,
        batch_size INTEGER NOT NULL,
        start_at TEXT NOT NULL,
        retries INTEGER NOT NULL,
        retry_interval INTEGER NOT NULL,
        target_timeout_s REAL NOT NULL,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE campaign_targets (
        campaign_id INTEGER NOT NULL REFERENCES firmware_campaigns (id),
        station_id TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        firmware_status TEXT,
        error TEXT,
        started_at TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (campaign_id, station_id)
    );
    CREATE TABLE config_snapshots (
        id INTEGER PRIMARY KEY,
        station_id TEXT NOT NULL,
        taken_at TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX config_snapshots_station ON config_snapshots (station_id, id);
    -- station_id '' is the fleet-wide desired value, a station's own row overrides it.
    CREATE TABLE desired_config (
        station_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (station_id, key)
    )
    """,
    # 5: OCPP 2.0.1: station transaction ids, device model
    """
    -- A station-numbered (2.x) transaction and the ledger transaction it is.
    CREATE TABLE station_transactions (
        station_id TEXT NOT NULL,
        station_tx_id TEXT NOT NULL,
        transaction_id INTEGER NOT NULL,
        evse_id INTEGER,
        connector_id INTEGER,
        token_type TEXT,
        started_seq_no INTEGER,
        ended_seq_no INTEGER,
        charging_state TEXT,
        remote_start_id INTEGER,
        stop_id_tag TEXT,
        cost_pushed_at TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (station_id, station_tx_id)
    );
    CREATE UNIQUE INDEX station_transactions_ledger ON station_transactions (transaction_id);
    CREATE INDEX station_transactions_remote_start
        ON station_transactions (station_id, remote_start_id) WHERE remote_start_id IS NOT NULL;
    -- Every event of such a transaction by its sequence number: a retry inserts nothing.
    CREATE TABLE station_transaction_events (
        station_id TEXT NOT NULL,
        station_tx_id TEXT NOT NULL,
        seq_no INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        trigger_reason TEXT NOT NULL,
        offline INTEGER NOT NULL,
        timestamp TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (station_id, station_tx_id, seq_no)
    );
    -- The device model as the station reported it. '' and 0 stand for an absent instance
    -- or EVSE, so that the key has no NULLs.
    CREATE TABLE device_model (
        station_id TEXT NOT NULL,
        component TEXT NOT NULL,
        component_instance TEXT NOT NULL DEFAULT '',
        evse_id INTEGER NOT NULL DEFAULT 0,
        connector_id INTEGER NOT NULL DEFAULT 0,
        variable TEXT NOT NULL,
        variable_instance TEXT NOT NULL DEFAULT '',
        attribute_type TEXT NOT NULL,
        value TEXT,
        mutability TEXT,
        data_type TEXT,
        unit TEXT,
        report_id INTEGER,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (station_id, component, component_instance, evse_id, connector_id,
            variable, variable_instance, attribute_type)
    )
    """,
    # 6: the password of a security profile 1 or 2 station, as a salted scrypt hash only
    """
    ALTER TABLE stations ADD COLUMN password_hash TEXT
    """,
    # 7: a rotated password the station has been sent but not yet logged in with; both
    # it and the old one are accepted until it does
    """
    ALTER TABLE stations ADD COLUMN pending_password_hash TEXT
    """,
]


#: The advisory lock PostgreSQL migrations hold (any constant of our own would do).
MIGRATION_LOCK = 0x4353_4D53_0001


def statements(script: str) -> list[str]:
    return [statement for statement in script.split(";") if statement.strip()]


def migrate(connection: Any) -> int:
    """Bring the schema up to date; return the version it is at.

    `connection` is a `sqlite3.Connection` (or one like it) or a
    `csms.storage.postgres.PostgresConnection`."""
    if getattr(connection, "dialect", "sqlite") == "postgresql":
        return _migrate_postgres(connection)
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            (current,) = connection.execute("PRAGMA user_version").fetchone()
            if current < number:
                for statement in statements(script):
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {number}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def schema_version(connection: DbConnection) -> int:
    """The version a PostgreSQL database is at (0 when it has no schema yet)."""
    exists = connection.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not exists[0]:
        return 0
    row = connection.execute("SELECT version FROM schema_version").fetchone()
    return 0 if row is None else int(row[0])


def _migrate_postgres(connection: DbConnection) -> int:
    if schema_version(connection) == len(MIGRATIONS):
        return len(MIGRATIONS)  # the common start: no lock, no write
    connection.execute("BEGIN")
    try:
        connection.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = schema_version(connection)
        if connection.execute("SELECT 1 FROM schema_version").fetchone() is None:
            connection.execute("INSERT INTO schema_version (version) VALUES (0)")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in statements(script):
                connection.execute(statement)
            connection.execute("UPDATE schema_version SET version = ?", (number,))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
