"""A small hand-built ledger with known numbers, for the analytics tests.

Monday 2 March 2026 (UTC) on three stations at two sites, A (A-1 with two connectors, A-2
with one) and B (B-1, one connector), plus two sessions on Tuesday:

- A-1 is connected all day but 10:00-11:00; its connector 1 is Faulted (GroundFailure)
  06:00-08:00 and the whole station (connector 0) Unavailable 20:00-22:00.
- A-2 is connected all day; B-1 is first seen at 12:00 and Faulted (OverCurrentFailure) from
  18:00 on.
- Session 1, A-1/1, driver D1 (token T1): 08:00-10:00, 11 kWh at 11 kW in the first hour,
  then idle; CDR 4.40 / 5.24 EUR.
- Session 2, A-2/1, token T2 (no driver): 09:00-12:00, 3 kWh in the first hour; CDR 1.20 /
  1.43 EUR.
- Session 3, B-1/1, driver D1: 23:30-00:30, 2 kWh, no samples; CDR 0.80 / 0.95 EUR.
- Session 4, A-1/2, driver D2 (token T3), Tuesday 10:00-11:00, 5 kWh, no CDR.
- Session 5, A-2/1, token T2, Tuesday from 20:00, still active: 1 kWh by 20:30, then idle to
  its last reading at 21:00.

The ledger's horizon is Wednesday 00:00 (the stations' last_seen_at).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from csms.storage.schema import migrate

DAY = "2026-03-02"
NEXT = "2026-03-03"


def at(day: str, clock: str) -> str:
    return f"{day}T{clock}:00.000000+00:00"


def build_ledger(path: Path) -> str:
    """Write the ledger to `path`; its database URL."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")  # as the CSMS keeps its ledger
    migrate(db)
    seen = at("2026-03-04", "00:00")
    db.executemany(
        "INSERT INTO stations (id, registered, online, last_seen_at, created_at)"
        " VALUES (?, 1, 1, ?, ?)",
        [(station, seen, at(DAY, "00:00")) for station in ("A-1", "A-2", "B-1")],
    )
    db.executemany(
        "INSERT INTO connectors (station_id, connector_id, status, updated_at) VALUES (?, ?, ?, ?)",
        [
            ("A-1", 1, "Available", seen),
            ("A-1", 2, "Available", seen),
            ("A-2", 1, "Available", seen),
            ("B-1", 1, "Faulted", seen),
        ],
    )
    db.executemany(
        "INSERT INTO events (station_id, kind, at, data) VALUES (?, ?, ?, '{}')",
        [
            ("A-1", "connected", at(DAY, "00:00")),
            ("A-2", "connected", at(DAY, "00:00")),
            ("A-1", "boot", at(DAY, "00:00")),
            ("A-1", "disconnected", at(DAY, "10:00")),
            ("A-1", "connected", at(DAY, "11:00")),
            ("B-1", "connected", at(DAY, "12:00")),
        ],
    )
    statuses = [
        ("A-1", 0, "Available", "NoError", "00:00"),
        ("A-1", 1, "Available", "NoError", "00:00"),
        ("A-1", 2, "Available", "NoError", "00:00"),
        ("A-2", 1, "Available", "NoError", "00:00"),
        ("A-1", 1, "Faulted", "GroundFailure", "06:00"),
        ("A-1", 1, "Available", "NoError", "08:00"),
        ("A-2", 1, "Charging", "NoError", "09:00"),
        ("A-2", 1, "Available", "NoError", "12:00"),
        ("B-1", 1, "Available", "NoError", "12:00"),
        ("B-1", 1, "Faulted", "OverCurrentFailure", "18:00"),
        ("A-1", 0, "Unavailable", "NoError", "20:00"),
        ("A-1", 0, "Available", "NoError", "22:00"),
    ]
    db.executemany(
        "INSERT INTO status_history (station_id, connector_id, status, error_code, timestamp,"
        " received_at) VALUES (?, ?, ?, ?, ?, ?)",
        [(s, c, st, e, at(DAY, t), at(DAY, t)) for s, c, st, e, t in statuses],
    )
    db.executemany(
        "INSERT INTO id_tokens (id_tag, status, driver_id, created_at, updated_at)"
        " VALUES (?, 'Accepted', ?, ?, ?)",
        [(tag, driver, seen, seen) for tag, driver in (("T1", "D1"), ("T2", None), ("T3", "D2"))],
    )
    sessions = [
        # id, station, connector, tag, start, end, meter start, meter stop, energy, status
        (1, "A-1", 1, "T1", at(DAY, "08:00"), at(DAY, "10:00"), 1000, 12000, 11000, "Completed"),
        (2, "A-2", 1, "T2", at(DAY, "09:00"), at(DAY, "12:00"), 0, 3000, 3000, "Completed"),
        (3, "B-1", 1, "T1", at(DAY, "23:30"), at(NEXT, "00:30"), 500, 2500, 2000, "Completed"),
        (4, "A-1", 2, "T3", at(NEXT, "10:00"), at(NEXT, "11:00"), 0, 5000, 5000, "Completed"),
        (5, "A-2", 1, "T2", at(NEXT, "20:00"), None, 0, None, None, "Active"),
    ]
    db.executemany(
        "INSERT INTO transactions (id, station_id, connector_id, id_tag, auth_status,"
        " started_at, ended_at, meter_start_wh, meter_stop_wh, energy_wh, status,"
        " last_meter_wh, last_meter_at)"
        " VALUES (?, ?, ?, ?, 'Accepted', ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (*row, 1000.0 if row[0] == 5 else None, at(NEXT, "21:00") if row[0] == 5 else None)
            for row in sessions
        ],
    )
    registers = [
        (1, "A-1", 1, at(DAY, "08:30"), 6500.0),
        (1, "A-1", 1, at(DAY, "09:00"), 12000.0),
        (2, "A-2", 1, at(DAY, "10:00"), 3000.0),
        (2, "A-2", 1, at(DAY, "11:00"), 3000.0),
        (5, "A-2", 1, at(NEXT, "20:30"), 1000.0),
        (5, "A-2", 1, at(NEXT, "21:00"), 1000.0),
    ]
    db.executemany(
        "INSERT INTO meter_samples (station_id, connector_id, transaction_id, timestamp,"
        " received_at, measurand, unit, context, value, numeric, wh)"
        " VALUES (?, ?, ?, ?, ?, 'Energy.Active.Import.Register', 'Wh', 'Sample.Periodic',"
        " ?, ?, ?)",
        [(s, c, tx, t, t, str(int(wh)), wh, wh) for tx, s, c, t, wh in registers],
    )
    # One value that is not an energy register: it is in the meter values, not in the energy.
    db.execute(
        "INSERT INTO meter_samples (station_id, connector_id, transaction_id, timestamp,"
        " received_at, measurand, unit, value, numeric)"
        " VALUES ('A-1', 1, 1, ?, ?, 'Power.Active.Import', 'W', '11000', 11000)",
        (at(DAY, "08:30"), at(DAY, "08:30")),
    )
    cdrs = [(1, "4.40", "5.24", "11.0", 2.0, 1.0), (2, "1.20", "1.43", "3.0", 3.0, 2.0)]
    cdrs.append((3, "0.80", "0.95", "2.0", 1.0, 0.0))
    db.executemany(
        "INSERT INTO cdrs (transaction_id, tariff_id, tariff_version, currency, cost_excl_vat,"
        " cost_incl_vat, body, created_at) VALUES (?, 'STD', 1, 'EUR', ?, ?, ?, ?)",
        [
            (
                tx,
                excl,
                incl,
                f'{{"total_energy": {kwh}, "total_time": {hours}, "total_parking_time": {idle}}}',
                seen,
            )
            for tx, excl, incl, kwh, hours, idle in cdrs
        ],
    )
    db.close()
    return f"sqlite:///{path}"
