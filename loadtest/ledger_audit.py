"""The ledger audit after crashes: every acknowledged transaction message is in the SQLite
ledger, nothing is in it twice, and every posting balances.

OCPP 1.6: an acknowledged StartTransaction must be a transaction row with the id the CSMS
answered and the charger's connector, meter start and timestamp; an acknowledged
StopTransaction must have completed that row with its meter stop and timestamp.

OCPP 2.0.1: an acknowledged TransactionEvent must be a `station_transaction_events` row
(station, the station's transaction id, seqNo) of its event type and timestamp, and its
transaction must map (`station_transactions`) to one ledger transaction row; a Started
gives that row its EVSE, Transaction.Begin register reading and timestamp, an Ended
completes it with its Transaction.End reading and timestamp.

Either version: every sampled value of an acknowledged message (1.6 MeterValues and a stop's
transactionData, 2.0.1 meterValue) must be a meter sample row with its transaction,
timestamp, measurand, phase and value. Duplicates are transaction rows for one (station,
connector, start time) and meter sample rows for one (transaction, timestamp, measurand,
phase, context, location); a ledger row that no acknowledged message explains (a meter
sample, a 2.0.1 event, a 2.0.1 station's transaction that no station transaction maps to)
is counted too. Postings balance when the legs of each posting sum to zero per currency.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from csms.domain.metering import ENERGY_REGISTER
from csms.storage.timestamps import to_text
from simulator.records import Acknowledgement

#: 1.6 sends values as text, 2.0.1 as numbers: a sample's value is compared as a number.
SampleValue = float | str
SampleKey = tuple[str, int, str, str, str | None, SampleValue]
#: (station, the station's transaction id, seqNo) of a 2.0.1 transaction event.
EventKey = tuple[str, str, int]

TRANSACTION_EVENT = "TransactionEvent"
V16, V201 = "1.6", "2.0.1"


@dataclass
class LedgerAudit:
    acknowledged: int = 0
    #: Acknowledged messages per OCPP version ("1.6", "2.0.1").
    acknowledged_by_version: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    duplicate_transactions: int = 0
    duplicate_samples: int = 0
    #: Meter samples in the ledger that no acknowledged message carried.
    unacknowledged_samples: int = 0
    #: 2.0.1 transaction events in the ledger that no acknowledged message carried.
    unacknowledged_events: int = 0
    #: Ledger transactions of 2.0.1 stations that no station transaction maps to.
    unmapped_transactions: int = 0
    postings: int = 0
    unbalanced_postings: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicate_transactions
            or self.duplicate_samples
            or self.unacknowledged_samples
            or self.unacknowledged_events
            or self.unmapped_transactions
            or self.unbalanced_postings
        )

    def note(self, problem: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(problem)


def stored(ocpp_timestamp: str) -> str:
    """How the ledger stores an OCPP timestamp."""
    text = to_text(datetime.fromisoformat(ocpp_timestamp))
    assert text is not None
    return text


def _value(value: Any) -> SampleValue:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _sample_keys(
    station_id: str, transaction_id: int, meter_values: Iterable[Any]
) -> list[SampleKey]:
    keys: list[SampleKey] = []
    for meter_value in meter_values:
        at = stored(meter_value["timestamp"])
        for sampled in meter_value["sampledValue"]:
            measurand = sampled.get("measurand", ENERGY_REGISTER)
            keys.append(
                (
                    station_id,
                    transaction_id,
                    at,
                    measurand,
                    sampled.get("phase"),
                    _value(sampled["value"]),
                )
            )
    return keys


def _register(meter_values: Iterable[Any], context: str) -> int | None:
    """The (whole-Wh) energy register reading of `context` in 2.0.1 meter values."""
    for meter_value in meter_values:
        for sampled in meter_value["sampledValue"]:
            if (
                sampled.get("measurand", ENERGY_REGISTER) == ENERGY_REGISTER
                and sampled.get("context") == context
                and "phase" not in sampled
            ):
                return round(float(sampled["value"]))
    return None


def version_of(ack: Acknowledgement) -> str:
    return V201 if ack.action == TRANSACTION_EVENT else V16


@dataclass
class _Ledger:
    """What the audit reads of the ledger, for the fleet's stations."""

    transactions: dict[int, tuple[Any, ...]]
    samples: Counter[SampleKey]
    #: (station, station transaction id) -> ledger transaction id.
    station_transactions: dict[tuple[str, str], int]
    #: event key -> (event type, stored timestamp).
    events: dict[EventKey, tuple[str, str]]
    acked_samples: set[SampleKey] = field(default_factory=set)
    acked_events: set[EventKey] = field(default_factory=set)


def audit_ledger(
    db_path: Path,
    acks: Sequence[Acknowledgement],
    station_ids: Iterable[str],
    v201_station_ids: Iterable[str] = (),
) -> LedgerAudit:
    """Check the ledger at `db_path` against the chargers' acknowledged messages
    (`v201_station_ids`: the stations among `station_ids` that speak 2.0.1)."""
    audit = LedgerAudit(
        acknowledged=len(acks), acknowledged_by_version=dict(Counter(map(version_of, acks)))
    )
    stations = sorted(set(station_ids))
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        db.execute("CREATE TEMP TABLE fleet (id TEXT PRIMARY KEY)")
        db.executemany("INSERT INTO fleet VALUES (?)", [(s,) for s in stations])
        db.execute("CREATE TEMP TABLE fleet_v201 (id TEXT PRIMARY KEY)")
        db.executemany(
            "INSERT INTO fleet_v201 VALUES (?)", [(s,) for s in sorted(set(v201_station_ids))]
        )
        ledger = _read(db)
        _count_duplicates(db, audit)
    for ack in acks:
        for problem in _check(ack, ledger):
            audit.lost += 1
            audit.note(problem)
    for key in ledger.samples:
        if key not in ledger.acked_samples:
            audit.unacknowledged_samples += 1
            audit.note(f"meter sample no acknowledged message carried: {key}")
    for event in ledger.events:
        if event not in ledger.acked_events:
            audit.unacknowledged_events += 1
            audit.note(f"transaction event no acknowledged message carried: {event}")
    return audit


def _read(db: sqlite3.Connection) -> _Ledger:
    transactions = {
        row[0]: row[1:]
        for row in db.execute(
            "SELECT id, station_id, connector_id, meter_start_wh, started_at, status,"
            " meter_stop_wh, ended_at FROM transactions WHERE station_id IN fleet"
        )
    }
    samples: Counter[SampleKey] = Counter(
        (station, transaction_id, at, measurand, phase, _value(value))
        for station, transaction_id, at, measurand, phase, value in db.execute(
            "SELECT station_id, transaction_id, timestamp, measurand, phase, value"
            " FROM meter_samples WHERE station_id IN fleet AND transaction_id IS NOT NULL"
        )
    )
    station_transactions = {
        (station, station_tx_id): transaction_id
        for station, station_tx_id, transaction_id in db.execute(
            "SELECT station_id, station_tx_id, transaction_id FROM station_transactions"
            " WHERE station_id IN fleet"
        )
    }
    events = {
        (station, station_tx_id, seq_no): (event_type, timestamp)
        for station, station_tx_id, seq_no, event_type, timestamp in db.execute(
            "SELECT station_id, station_tx_id, seq_no, event_type, timestamp"
            " FROM station_transaction_events WHERE station_id IN fleet"
        )
    }
    return _Ledger(transactions, samples, station_transactions, events)


def _count_duplicates(db: sqlite3.Connection, audit: LedgerAudit) -> None:
    # A 2.0.1 transaction opened by a later event has no start time until its Started
    # comes: such rows are not duplicates of each other.
    (audit.duplicate_transactions,) = db.execute(
        "SELECT IFNULL(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM transactions"
        " WHERE station_id IN fleet AND started_at IS NOT NULL"
        " GROUP BY station_id, connector_id, started_at)"
    ).fetchone()
    (audit.duplicate_samples,) = db.execute(
        "SELECT IFNULL(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM meter_samples"
        " WHERE station_id IN fleet GROUP BY station_id, connector_id,"
        " IFNULL(transaction_id, 0), timestamp, measurand, IFNULL(phase, ''),"
        " IFNULL(context, ''), IFNULL(location, ''))"
    ).fetchone()
    (audit.unmapped_transactions,) = db.execute(
        "SELECT COUNT(*) FROM transactions WHERE station_id IN fleet_v201"
        " AND id NOT IN (SELECT transaction_id FROM station_transactions)"
    ).fetchone()
    (audit.postings,) = db.execute("SELECT COUNT(*) FROM postings").fetchone()
    (audit.unbalanced_postings,) = db.execute(
        "SELECT COUNT(*) FROM (SELECT posting_seq FROM posting_legs"
        " GROUP BY posting_seq, currency HAVING SUM(minor) != 0)"
    ).fetchone()


def _check(ack: Acknowledgement, ledger: _Ledger) -> list[str]:
    """What of one acknowledged message the ledger lacks."""
    if ack.action == TRANSACTION_EVENT:
        return _check_event(ack, ledger)
    payload, station = ack.payload, ack.station_id
    if ack.action == "StartTransaction":
        tx_id = int(ack.result["transactionId"])
        row = ledger.transactions.get(tx_id)
        expected = (station, payload["connectorId"], payload["meterStart"])
        if row is None or row[:4] != (*expected, stored(payload["timestamp"])):
            return [f"acknowledged start lost: {station} tx {tx_id} (ledger: {row})"]
        return []
    if ack.action not in ("MeterValues", "StopTransaction"):
        return [f"{ack.action} is not audited"]
    tx_id = int(payload["transactionId"])
    key = "meterValue" if ack.action == "MeterValues" else "transactionData"
    problems = _check_samples(station, tx_id, payload.get(key, ()), ledger)
    if ack.action == "StopTransaction":
        row = ledger.transactions.get(tx_id)
        ended = (station, "Completed", payload["meterStop"], stored(payload["timestamp"]))
        if row is None or (row[0], *row[4:]) != ended:
            problems.append(f"acknowledged stop lost: {station} tx {tx_id} (ledger: {row})")
    return problems


def _check_samples(
    station: str, tx_id: int, meter_values: Iterable[Any], ledger: _Ledger
) -> list[str]:
    keys = _sample_keys(station, tx_id, meter_values)
    ledger.acked_samples.update(keys)
    return [f"acknowledged meter sample lost: {k}" for k in keys if k not in ledger.samples]


def _check_event(ack: Acknowledgement, ledger: _Ledger) -> list[str]:
    payload, station = ack.payload, ack.station_id
    event_type, at = payload["eventType"], stored(payload["timestamp"])
    station_tx_id = payload["transactionInfo"]["transactionId"]
    key: EventKey = (station, station_tx_id, int(payload["seqNo"]))
    ledger.acked_events.add(key)
    problems = []
    if ledger.events.get(key) != (event_type, at):
        problems.append(
            f"acknowledged {event_type} event lost: {key} (ledger: {ledger.events.get(key)})"
        )
    tx_id = ledger.station_transactions.get((station, station_tx_id))
    row = None if tx_id is None else ledger.transactions.get(tx_id)
    if tx_id is None or row is None:
        return [*problems, f"acknowledged transaction {station}/{station_tx_id} not in the ledger"]
    meter_values = payload.get("meterValue", ())
    problems += _check_samples(station, tx_id, meter_values, ledger)
    if event_type == "Started":
        expected = (
            station,
            payload["evse"]["id"],
            _register(meter_values, "Transaction.Begin"),
            at,
        )
        if row[:4] != expected:
            problems.append(f"acknowledged Started lost: {key} tx {tx_id} (ledger: {row})")
    elif event_type == "Ended":
        ended = (station, "Completed", _register(meter_values, "Transaction.End"), at)
        if (row[0], *row[4:]) != ended:
            problems.append(f"acknowledged Ended lost: {key} tx {tx_id} (ledger: {row})")
    return problems
