"""The ledger audit after crashes: every acknowledged transaction message is in the SQLite
ledger, nothing is in it twice, and every posting balances.

A 1.6 charger's acknowledged StartTransaction must be a transaction row with the id the CSMS
answered and the charger's connector, meter start and timestamp; an acknowledged
StopTransaction must have completed that row with its meter stop and timestamp; every
sampled value of an acknowledged MeterValues (and of a stop's transactionData) must be a
meter sample row with its transaction, timestamp, measurand, phase and value. Duplicates are
transaction rows for one (station, connector, start time) and meter sample rows for one
(transaction, timestamp, measurand, phase, context, location). Postings balance when the
legs of each posting sum to zero per currency.
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

SampleKey = tuple[str, int, str, str, str | None, str]


@dataclass
class LedgerAudit:
    acknowledged: int = 0
    lost: int = 0
    duplicate_transactions: int = 0
    duplicate_samples: int = 0
    #: Meter samples in the ledger that no acknowledged message carried.
    unacknowledged_samples: int = 0
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


def _sample_keys(
    station_id: str, transaction_id: int, meter_values: Iterable[Any]
) -> list[SampleKey]:
    keys: list[SampleKey] = []
    for meter_value in meter_values:
        at = stored(meter_value["timestamp"])
        for sampled in meter_value["sampledValue"]:
            measurand = sampled.get("measurand", ENERGY_REGISTER)
            keys.append(
                (station_id, transaction_id, at, measurand, sampled.get("phase"), sampled["value"])
            )
    return keys


def audit_ledger(
    db_path: Path, acks: Sequence[Acknowledgement], station_ids: Iterable[str]
) -> LedgerAudit:
    """Check the ledger at `db_path` against the chargers' acknowledged messages."""
    audit = LedgerAudit(acknowledged=len(acks))
    stations = sorted(set(station_ids))
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        db.execute("CREATE TEMP TABLE fleet (id TEXT PRIMARY KEY)")
        db.executemany("INSERT INTO fleet VALUES (?)", [(s,) for s in stations])
        transactions = {
            row[0]: row[1:]
            for row in db.execute(
                "SELECT id, station_id, connector_id, meter_start_wh, started_at, status,"
                " meter_stop_wh, ended_at FROM transactions WHERE station_id IN fleet"
            )
        }
        samples = Counter(
            db.execute(
                "SELECT station_id, transaction_id, timestamp, measurand, phase, value"
                " FROM meter_samples WHERE station_id IN fleet AND transaction_id IS NOT NULL"
            )
        )
        (audit.duplicate_transactions,) = db.execute(
            "SELECT IFNULL(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM transactions"
            " WHERE station_id IN fleet GROUP BY station_id, connector_id, started_at)"
        ).fetchone()
        (audit.duplicate_samples,) = db.execute(
            "SELECT IFNULL(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM meter_samples"
            " WHERE station_id IN fleet GROUP BY station_id, connector_id,"
            " IFNULL(transaction_id, 0), timestamp, measurand, IFNULL(phase, ''),"
            " IFNULL(context, ''), IFNULL(location, ''))"
        ).fetchone()
        (audit.postings,) = db.execute("SELECT COUNT(*) FROM postings").fetchone()
        (audit.unbalanced_postings,) = db.execute(
            "SELECT COUNT(*) FROM (SELECT posting_seq FROM posting_legs"
            " GROUP BY posting_seq, currency HAVING SUM(minor) != 0)"
        ).fetchone()
    acked_samples: set[SampleKey] = set()
    for ack in acks:
        for problem in _check(ack, transactions, samples, acked_samples):
            audit.lost += 1
            audit.note(problem)
    for key in samples:
        if key not in acked_samples:
            audit.unacknowledged_samples += 1
            audit.note(f"meter sample no acknowledged message carried: {key}")
    return audit


def _check(
    ack: Acknowledgement,
    transactions: dict[int, tuple[Any, ...]],
    samples: Counter[tuple[Any, ...]],
    acked_samples: set[SampleKey],
) -> list[str]:
    """What of one acknowledged message the ledger lacks."""
    payload, station = ack.payload, ack.station_id
    if ack.action == "StartTransaction":
        tx_id = int(ack.result["transactionId"])
        row = transactions.get(tx_id)
        expected = (station, payload["connectorId"], payload["meterStart"])
        if row is None or row[:4] != (*expected, stored(payload["timestamp"])):
            return [f"acknowledged start lost: {station} tx {tx_id} (ledger: {row})"]
        return []
    if ack.action not in ("MeterValues", "StopTransaction"):
        return [f"{ack.action} is not audited (a 1.6 fleet only)"]
    tx_id = int(payload["transactionId"])
    key = "meterValue" if ack.action == "MeterValues" else "transactionData"
    keys = _sample_keys(station, tx_id, payload.get(key, ()))
    acked_samples.update(keys)
    problems = [f"acknowledged meter sample lost: {k}" for k in keys if k not in samples]
    if ack.action == "StopTransaction":
        row = transactions.get(tx_id)
        ended = (station, "Completed", payload["meterStop"], stored(payload["timestamp"]))
        if row is None or (row[0], *row[4:]) != ended:
            problems.append(f"acknowledged stop lost: {station} tx {tx_id} (ledger: {row})")
    return problems
