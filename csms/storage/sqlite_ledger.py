"""`SqliteLedgerTx`: the ledger port implemented on one open transaction of the ledger
database (SQLite, or PostgreSQL through `csms.storage.dialect`; the name is historical)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from csms.domain.events import (
    BootReported,
    DeviceVariable,
    MeterSample,
    PasswordStage,
    StatusReported,
    TransactionEventReported,
)
from csms.domain.records import (
    RegisterReading,
    StationRecord,
    StationTransactionRecord,
    TokenRecord,
    TransactionRecord,
    TransactionStatus,
)
from csms.storage.dialect import DbConnection
from csms.storage.sqlite_billing import SqliteBillingTx
from csms.storage.timestamps import from_text, to_text

_TRANSACTION_COLUMNS = frozenset(
    {
        "station_id",
        "connector_id",
        "id_tag",
        "auth_status",
        "meter_start_wh",
        "started_at",
        "start_received_at",
        "reservation_id",
        "meter_stop_wh",
        "energy_wh",
        "ended_at",
        "stop_received_at",
        "stop_reason",
        "stop_id_tag",
        "status",
        "reported_transaction_id",
        "needs_reconciliation",
        "anomalies",
        "register_offset_wh",
        "last_meter_wh",
        "last_meter_at",
    }
)
_STATION_FIELDS = frozenset({"firmware_status", "diagnostics_status"})
_STATION_TRANSACTION_COLUMNS = (
    "station_id",
    "station_tx_id",
    "transaction_id",
    "evse_id",
    "connector_id",
    "token_type",
    "started_seq_no",
    "ended_seq_no",
    "charging_state",
    "remote_start_id",
    "stop_id_tag",
    "cost_pushed_at",
)
_STATION_TRANSACTION_UPDATABLE = frozenset(_STATION_TRANSACTION_COLUMNS[3:])
_TRANSACTION_SELECT = (
    "SELECT id, station_id, connector_id, id_tag, meter_start_wh, started_at, meter_stop_wh,"
    " ended_at, status, reported_transaction_id, last_meter_wh, last_meter_at, anomalies,"
    " register_offset_wh"
    " FROM transactions"
)


def _transaction(row: tuple[Any, ...] | None) -> TransactionRecord | None:
    if row is None:
        return None
    return TransactionRecord(
        id=row[0],
        station_id=row[1],
        connector_id=row[2],
        id_tag=row[3],
        meter_start_wh=row[4],
        started_at=from_text(row[5]),
        meter_stop_wh=row[6],
        ended_at=from_text(row[7]),
        status=TransactionStatus(row[8]),
        reported_transaction_id=row[9],
        last_register=(
            None
            if row[10] is None or row[11] is None
            else RegisterReading(row[10], _moment(row[11]))
        ),
        anomalies=tuple(row[12].split(",")) if row[12] else (),
        register_offset_wh=float(row[13] or 0),
    )


def _moment(text: str) -> datetime:
    moment = from_text(text)
    assert moment is not None
    return moment


def _sql_value(value: Any) -> Any:
    return to_text(value) if isinstance(value, datetime) else value


class SqliteLedgerTx(SqliteBillingTx):
    """Reads and writes of one ledger batch; the caller owns BEGIN and COMMIT."""

    def __init__(self, connection: DbConnection) -> None:
        self._db = connection

    def get_station(self, station_id: str) -> StationRecord | None:
        row = self._db.execute(
            "SELECT id, registered, registration_status FROM stations WHERE id = ?",
            (station_id,),
        ).fetchone()
        return None if row is None else StationRecord(row[0], bool(row[1]), row[2])

    def save_boot(self, boot: BootReported, registration_status: str, register: bool) -> None:
        at = to_text(boot.received_at)
        self._db.execute(
            """
            INSERT INTO stations (id, registered, registration_status, vendor, model,
                serial_number, charge_box_serial, firmware_version, iccid, imsi, meter_type,
                meter_serial, last_boot_at, last_seen_at, created_at, online)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
            ON CONFLICT (id) DO UPDATE SET
                registered = CASE WHEN excluded.registered > stations.registered
                    THEN excluded.registered ELSE stations.registered END,
                registration_status = excluded.registration_status,
                vendor = excluded.vendor, model = excluded.model,
                serial_number = excluded.serial_number,
                charge_box_serial = excluded.charge_box_serial,
                firmware_version = excluded.firmware_version, iccid = excluded.iccid,
                imsi = excluded.imsi, meter_type = excluded.meter_type,
                meter_serial = excluded.meter_serial, last_boot_at = excluded.last_boot_at,
                last_seen_at = excluded.last_seen_at, online = 1
            """,
            (
                boot.station_id,
                int(register),
                registration_status,
                boot.vendor,
                boot.model,
                boot.serial_number,
                boot.charge_box_serial,
                boot.firmware_version,
                boot.iccid,
                boot.imsi,
                boot.meter_type,
                boot.meter_serial,
                at,
                at,
                at,
            ),
        )

    def touch_station(self, station_id: str, at: datetime, *, heartbeat: bool) -> None:
        text = to_text(at)
        if heartbeat:
            self._db.execute(
                "UPDATE stations SET last_heartbeat_at = ?, last_seen_at = ? WHERE id = ?",
                (text, text, station_id),
            )
        else:
            self._db.execute(
                "UPDATE stations SET last_seen_at = ? WHERE id = ?", (text, station_id)
            )

    def set_station_field(self, station_id: str, field: str, value: str) -> None:
        if field not in _STATION_FIELDS:
            raise ValueError(f"not a settable station field: {field}")
        self._db.execute(f"UPDATE stations SET {field} = ? WHERE id = ?", (value, station_id))

    def set_connection_state(self, station_id: str, online: bool, at: datetime) -> None:
        self._db.execute(
            "UPDATE stations SET online = ?, last_seen_at = ? WHERE id = ?",
            (int(online), to_text(at), station_id),
        )

    def record_status(self, status: StatusReported) -> None:
        received = to_text(status.received_at)
        timestamp = to_text(status.timestamp)
        values = (
            status.station_id,
            status.connector_id,
            status.status,
            status.error_code,
            status.info,
            status.vendor_error_code,
            timestamp,
        )
        self._db.execute(
            """
            INSERT INTO connectors (station_id, connector_id, status, error_code, info,
                vendor_error_code, status_timestamp, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (station_id, connector_id) DO UPDATE SET
                status = excluded.status, error_code = excluded.error_code,
                info = excluded.info, vendor_error_code = excluded.vendor_error_code,
                status_timestamp = excluded.status_timestamp, updated_at = excluded.updated_at
            """,
            (*values, received),
        )
        self._db.execute(
            """
            INSERT INTO status_history (station_id, connector_id, status, error_code, info,
                vendor_error_code, timestamp, received_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (*values, received),
        )

    def get_token(self, id_tag: str) -> TokenRecord | None:
        row = self._db.execute(
            "SELECT id_tag, status, expiry, parent_id_tag, max_active_transactions"
            " FROM id_tokens WHERE id_tag = ?",
            (id_tag,),
        ).fetchone()
        if row is None:
            return None
        return TokenRecord(row[0], row[1], from_text(row[2]), row[3], row[4])

    def count_active_transactions(self, id_tag: str) -> int:
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM transactions WHERE id_tag = ? AND status = 'Active'",
            (id_tag,),
        ).fetchone()
        return int(count)

    def find_started_transaction(
        self, station_id: str, connector_id: int, id_tag: str, started_at: datetime
    ) -> TransactionRecord | None:
        return _transaction(
            self._db.execute(
                f"{_TRANSACTION_SELECT} WHERE station_id = ? AND connector_id = ?"
                " AND id_tag = ? AND started_at = ?",
                (station_id, connector_id, id_tag, to_text(started_at)),
            ).fetchone()
        )

    def active_transaction_on_connector(
        self, station_id: str, connector_id: int
    ) -> TransactionRecord | None:
        return _transaction(
            self._db.execute(
                f"{_TRANSACTION_SELECT} WHERE station_id = ? AND connector_id = ?"
                " AND status = 'Active' ORDER BY id DESC LIMIT 1",
                (station_id, connector_id),
            ).fetchone()
        )

    def get_transaction(self, transaction_id: int) -> TransactionRecord | None:
        return _transaction(
            self._db.execute(f"{_TRANSACTION_SELECT} WHERE id = ?", (transaction_id,)).fetchone()
        )

    def find_unmatched_stop(
        self, station_id: str, reported_id: int, ended_at: datetime
    ) -> TransactionRecord | None:
        return _transaction(
            self._db.execute(
                f"{_TRANSACTION_SELECT} WHERE station_id = ? AND reported_transaction_id = ?"
                " AND ended_at = ?",
                (station_id, reported_id, to_text(ended_at)),
            ).fetchone()
        )

    def insert_transaction(self, values: dict[str, Any]) -> int:
        columns = list(values)
        unknown = set(columns) - _TRANSACTION_COLUMNS
        if unknown:
            raise ValueError(f"unknown transaction columns: {sorted(unknown)}")
        ((transaction_id,),) = self._db.execute(
            f"INSERT INTO transactions ({', '.join(columns)})"
            f" VALUES ({', '.join('?' for _ in columns)}) RETURNING id",
            [_sql_value(values[c]) for c in columns],
        ).fetchall()
        return int(transaction_id)

    def update_transaction(self, transaction_id: int, values: dict[str, Any]) -> None:
        unknown = set(values) - _TRANSACTION_COLUMNS
        if unknown:
            raise ValueError(f"unknown transaction columns: {sorted(unknown)}")
        assignments = ", ".join(f"{column} = ?" for column in values)
        self._db.execute(
            f"UPDATE transactions SET {assignments} WHERE id = ?",
            [*(_sql_value(v) for v in values.values()), transaction_id],
        )

    def insert_samples(
        self,
        station_id: str,
        connector_id: int,
        transaction_id: int | None,
        reported_transaction_id: int | None,
        samples: Sequence[tuple[MeterSample, str | None]],
        received_at: datetime,
    ) -> int:
        received = to_text(received_at)
        return self._db.executemany(
            """
            INSERT OR IGNORE INTO meter_samples (station_id, connector_id, transaction_id,
                reported_transaction_id, timestamp, received_at, measurand, phase, unit,
                context, location, format, value, numeric, wh, anomaly)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                (
                    station_id,
                    connector_id,
                    transaction_id,
                    reported_transaction_id,
                    to_text(s.timestamp),
                    received,
                    s.measurand,
                    s.phase,
                    s.unit,
                    s.context,
                    s.location,
                    s.format,
                    s.value,
                    s.numeric,
                    s.wh,
                    anomaly,
                )
                for s, anomaly in samples
            ],
        ).rowcount

    def log_event(
        self, station_id: str | None, kind: str, at: datetime, data: dict[str, Any]
    ) -> None:
        self._db.execute(
            "INSERT INTO events (station_id, kind, at, data) VALUES (?, ?, ?, ?)",
            (station_id, kind, to_text(at), orjson.dumps(data, default=str).decode()),
        )

    def rotate_password(self, station_id: str, stage: PasswordStage, password_hash: str) -> bool:
        match stage:
            case PasswordStage.OFFERED:
                sql = (
                    "UPDATE stations SET pending_password_hash = ?"
                    " WHERE id = ? AND security_profile IN (1, 2)"
                )
                params: tuple[str, ...] = (password_hash, station_id)
            case PasswordStage.CONFIRMED:
                sql = (
                    "UPDATE stations SET password_hash = pending_password_hash,"
                    " pending_password_hash = NULL WHERE id = ? AND pending_password_hash = ?"
                )
                params = (station_id, password_hash)
            case PasswordStage.WITHDRAWN:
                sql = (
                    "UPDATE stations SET pending_password_hash = NULL"
                    " WHERE id = ? AND pending_password_hash = ?"
                )
                params = (station_id, password_hash)
        return self._db.execute(sql, params).rowcount == 1

    # -- station-numbered (2.x) transactions and the device model ---------------------------

    def get_station_transaction(
        self, station_id: str, station_tx_id: str
    ) -> StationTransactionRecord | None:
        row = self._db.execute(
            f"SELECT {', '.join(_STATION_TRANSACTION_COLUMNS)} FROM station_transactions"
            " WHERE station_id = ? AND station_tx_id = ?",
            (station_id, station_tx_id),
        ).fetchone()
        if row is None:
            return None
        values = dict(zip(_STATION_TRANSACTION_COLUMNS, row, strict=True))
        values["cost_pushed_at"] = from_text(values["cost_pushed_at"])
        return StationTransactionRecord(**values)

    def insert_station_transaction(self, record: StationTransactionRecord, at: datetime) -> None:
        values = [_sql_value(getattr(record, c)) for c in _STATION_TRANSACTION_COLUMNS]
        self._db.execute(
            f"INSERT INTO station_transactions ({', '.join(_STATION_TRANSACTION_COLUMNS)},"
            f" created_at) VALUES ({', '.join('?' for _ in values)}, ?)",
            [*values, to_text(at)],
        )

    def update_station_transaction(
        self, station_id: str, station_tx_id: str, values: dict[str, Any]
    ) -> None:
        unknown = set(values) - _STATION_TRANSACTION_UPDATABLE
        if unknown:
            raise ValueError(f"unknown station transaction columns: {sorted(unknown)}")
        if not values:
            return
        assignments = ", ".join(f"{column} = ?" for column in values)
        self._db.execute(
            f"UPDATE station_transactions SET {assignments}"
            " WHERE station_id = ? AND station_tx_id = ?",
            [*(_sql_value(v) for v in values.values()), station_id, station_tx_id],
        )

    def record_transaction_event(self, event: TransactionEventReported) -> bool:
        cursor = self._db.execute(
            """
            INSERT OR IGNORE INTO station_transaction_events (station_id, station_tx_id,
                seq_no, event_type, trigger_reason, offline, timestamp, received_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (
                event.station_id,
                event.station_tx_id,
                event.seq_no,
                event.event_type,
                event.trigger_reason,
                int(event.offline),
                to_text(event.timestamp),
                to_text(event.received_at),
            ),
        )
        return cursor.rowcount > 0

    def transaction_event_seq_nos(self, station_id: str, station_tx_id: str) -> list[int]:
        return [
            int(seq_no)
            for (seq_no,) in self._db.execute(
                "SELECT seq_no FROM station_transaction_events"
                " WHERE station_id = ? AND station_tx_id = ? ORDER BY seq_no",
                (station_id, station_tx_id),
            )
        ]

    def save_device_variables(
        self, station_id: str, report_id: int, variables: Sequence[DeviceVariable], at: datetime
    ) -> None:
        updated = to_text(at)
        self._db.executemany(
            """
            INSERT INTO device_model (station_id, component, component_instance, evse_id,
                connector_id, variable, variable_instance, attribute_type, value, mutability,
                data_type, unit, report_id, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (station_id, component, component_instance, evse_id, connector_id,
                variable, variable_instance, attribute_type) DO UPDATE SET
                value = excluded.value, mutability = excluded.mutability,
                data_type = excluded.data_type, unit = excluded.unit,
                report_id = excluded.report_id, updated_at = excluded.updated_at
            """,
            [
                (
                    station_id,
                    v.component,
                    v.component_instance or "",
                    v.evse_id or 0,
                    v.connector_id or 0,
                    v.variable,
                    v.variable_instance or "",
                    v.attribute_type,
                    v.value,
                    v.mutability,
                    v.data_type,
                    v.unit,
                    report_id,
                    updated,
                )
                for v in variables
            ],
        )

    # -- reads for operators (outside the ledger's batches) --------------------------------

    def device_model(self, station_id: str) -> list[dict[str, Any]]:
        """The station's device model as reported, one row per variable attribute."""
        cursor = self._db.execute(
            """
            SELECT component, component_instance, evse_id, connector_id, variable,
                variable_instance, attribute_type, value, mutability, data_type, unit,
                report_id, updated_at
            FROM device_model WHERE station_id = ?
            ORDER BY component, component_instance, evse_id, connector_id, variable,
                variable_instance, attribute_type
            """,
            (station_id,),
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def station_transaction_of(self, transaction_id: int) -> StationTransactionRecord | None:
        """The station's own id (and more) for a ledger transaction a 2.x station runs:
        what RequestStopTransaction and CostUpdated name it by."""
        row = self._db.execute(
            "SELECT station_id, station_tx_id FROM station_transactions WHERE transaction_id = ?",
            (transaction_id,),
        ).fetchone()
        return None if row is None else self.get_station_transaction(row[0], row[1])
