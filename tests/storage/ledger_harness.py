"""Helpers for the storage tests: a ledger database (SQLite file or PostgreSQL URL), domain
events, raw row reads and writes."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from csms.domain.events import (
    AuthorizeRequested,
    BootReported,
    DomainEvent,
    HeartbeatReceived,
    MeterSample,
    MeterValuesReported,
    StatusReported,
    TransactionStarted,
    TransactionStopped,
)
from csms.domain.ledger import LedgerRules, UnknownStationPolicy
from csms.domain.metering import ENERGY_REGISTER
from csms.domain.replies import Reply
from csms.storage.base import EventOutcome
from csms.storage.dialect import is_postgres_url
from csms.storage.sqlite import SqliteStore

#: The charger's clock (device timestamps) and the CSMS's clock (arrival) differ on purpose.
DEVICE_T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ARRIVAL_T0 = datetime(2026, 1, 5, 8, 0, 7, 500000, tzinfo=UTC)


def at(minutes: float = 0.0) -> datetime:
    """A device timestamp `minutes` after the base."""
    return DEVICE_T0 + timedelta(minutes=minutes)


def arrived(minutes: float = 0.0) -> datetime:
    """An arrival time `minutes` after the base arrival."""
    return ARRIVAL_T0 + timedelta(minutes=minutes)


def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "ledger.db")


def run(store: SqliteStore, rules: LedgerRules, *events: DomainEvent) -> list[EventOutcome]:
    """Apply events through the rules in one durable batch."""
    return store.run_batch([functools.partial(rules.apply, event=event) for event in events])


def apply(store: SqliteStore, rules: LedgerRules, event: DomainEvent) -> Reply:
    """Apply one event in its own batch; return the rules' reply (raise what it raised)."""
    (outcome,) = run(store, rules, event)
    if outcome.error is not None:
        raise outcome.error
    reply: Reply = outcome.value
    return reply


def _connect(path: str) -> Any:
    """A connection of its own to the database (`path`: a SQLite file or a PostgreSQL URL)."""
    if is_postgres_url(path):
        from csms.storage.postgres import PostgresConnection, connect

        return PostgresConnection(connect(path))
    return sqlite3.connect(path, isolation_level=None)


def rows(path: str, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Read rows through a separate connection: only committed data is visible."""
    db = _connect(path)
    try:
        cursor = db.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        db.close()


def execute(path: str, sql: str, params: Sequence[Any] = ()) -> None:
    """Write behind the store's back, committed at once (bad data a test plants)."""
    db = _connect(path)
    try:
        db.execute(sql, params)
    finally:
        db.close()


def count(path: str, table: str, where: str = "1 = 1", params: Sequence[Any] = ()) -> int:
    (row,) = rows(path, f"SELECT COUNT(*) AS n FROM {table} WHERE {where}", params)
    return int(row["n"])


def transaction_row(path: str, transaction_id: int) -> dict[str, Any]:
    (row,) = rows(path, "SELECT * FROM transactions WHERE id = ?", (transaction_id,))
    return row


# -- events --------------------------------------------------------------------------------


def boot(
    station: str = "CP1", received: datetime = ARRIVAL_T0, firmware: str = "1.0"
) -> BootReported:
    return BootReported(
        station_id=station,
        vendor="Vendor",
        model="Model",
        serial_number="SN-1",
        charge_box_serial="CB-1",
        firmware_version=firmware,
        iccid="ICCID",
        imsi="IMSI",
        meter_type="MeterType",
        meter_serial="MS-1",
        received_at=received,
    )


def heartbeat(station: str = "CP1", received: datetime = ARRIVAL_T0) -> HeartbeatReceived:
    return HeartbeatReceived(station, received)


def status(
    connector: int = 1,
    state: str = "Available",
    error_code: str = "NoError",
    station: str = "CP1",
    timestamp: datetime | None = DEVICE_T0,
    received: datetime = ARRIVAL_T0,
) -> StatusReported:
    return StatusReported(
        station_id=station,
        connector_id=connector,
        status=state,
        error_code=error_code,
        info=None,
        vendor_error_code=None,
        timestamp=timestamp,
        received_at=received,
    )


def authorize_request(id_tag: str, station: str = "CP1") -> AuthorizeRequested:
    return AuthorizeRequested(station, id_tag, ARRIVAL_T0)


def start(
    id_tag: str = "TAG",
    connector: int = 1,
    meter_start: int = 1000,
    timestamp: datetime = DEVICE_T0,
    station: str = "CP1",
    received: datetime = ARRIVAL_T0,
) -> TransactionStarted:
    return TransactionStarted(
        station_id=station,
        connector_id=connector,
        id_tag=id_tag,
        meter_start_wh=meter_start,
        timestamp=timestamp,
        reservation_id=None,
        received_at=received,
    )


def register(
    wh: float,
    timestamp: datetime,
    measurand: str = ENERGY_REGISTER,
    phase: str | None = None,
    context: str = "Sample.Periodic",
) -> MeterSample:
    return MeterSample(
        timestamp=timestamp,
        measurand=measurand,
        value=str(wh),
        numeric=wh,
        unit="Wh",
        phase=phase,
        context=context,
        location=None,
        format=None,
        wh=wh if measurand.startswith("Energy.") else None,
    )


def meter(
    transaction_id: int | None,
    *samples: MeterSample,
    connector: int = 1,
    station: str = "CP1",
    received: datetime = ARRIVAL_T0,
) -> MeterValuesReported:
    return MeterValuesReported(
        station_id=station,
        connector_id=connector,
        transaction_id=transaction_id,
        samples=samples,
        received_at=received,
    )


def stop(
    transaction_id: int,
    meter_stop: int = 5000,
    timestamp: datetime = DEVICE_T0 + timedelta(hours=1),
    id_tag: str | None = "TAG",
    station: str = "CP1",
    received: datetime = ARRIVAL_T0 + timedelta(hours=1),
    samples: tuple[MeterSample, ...] = (),
    reason: str | None = "Local",
) -> TransactionStopped:
    return TransactionStopped(
        station_id=station,
        transaction_id=transaction_id,
        id_tag=id_tag,
        meter_stop_wh=meter_stop,
        timestamp=timestamp,
        reason=reason,
        samples=samples,
        received_at=received,
    )


ACCEPT_ALL = LedgerRules(unknown_stations=UnknownStationPolicy.ACCEPT)
