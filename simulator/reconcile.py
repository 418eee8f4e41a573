"""Reconciliation: the simulator's ground truth against the CSMS ledger.

Both sides are DataFrames of sessions with the columns `station_id`, `connector_id`,
`transaction_id`, `started_at` (the charger's timestamp), `meter_start_wh`, `meter_stop_wh`
and `energy_wh`. A simulated session is matched to the ledger by station and transaction id,
and failing that by station, connector and start time (a start that was acknowledged late).
`lost_sessions`, `duplicate_sessions` and `energy_diff_wh` must all be 0; every difference is
listed with its cause. When both sides carry `cost_incl_vat` (the scenario has a tariff: the
simulator prices its sessions from the readings it sent, the CSMS from what it stored), the
amounts are compared too: `amount_diff` (the sum of the absolute differences) must be 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

from simulator.billing import amount

SESSION_COLUMNS = [
    "station_id",
    "connector_id",
    "transaction_id",
    "started_at",
    "meter_start_wh",
    "meter_stop_wh",
    "energy_wh",
]


@dataclass(frozen=True)
class Difference:
    kind: str  # lost | duplicate | energy | amount | unexpected
    station_id: str
    connector_id: int | None
    transaction_id: int | None
    cause: str


@dataclass
class Reconciliation:
    simulated_sessions: int = 0
    ledger_sessions: int = 0
    lost_sessions: int = 0
    duplicate_sessions: int = 0
    unexpected_sessions: int = 0
    energy_diff_wh: int = 0
    #: None when the run has no tariff (nothing priced to compare).
    amount_diff: Decimal | None = None
    differences: list[Difference] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return (
            self.lost_sessions == 0
            and self.duplicate_sessions == 0
            and self.energy_diff_wh == 0
            and not self.amount_diff
        )

    def summary(self) -> dict[str, Any]:
        return {
            "simulated_sessions": self.simulated_sessions,
            "ledger_sessions": self.ledger_sessions,
            "lost_sessions": self.lost_sessions,
            "duplicate_sessions": self.duplicate_sessions,
            "unexpected_sessions": self.unexpected_sessions,
            "energy_diff_wh": self.energy_diff_wh,
            **({} if self.amount_diff is None else {"amount_diff": str(self.amount_diff)}),
            "exact": self.exact,
        }

    def differences_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [asdict(d) for d in self.differences], columns=list(Difference.__dataclass_fields__)
        )


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    missing = set(SESSION_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"session frame lacks columns {sorted(missing)}")
    out = frame[[*SESSION_COLUMNS, *(["cost_incl_vat"] if "cost_incl_vat" in frame else [])]].copy()
    out["started_at"] = pd.to_datetime(out["started_at"], utc=True)
    return out.reset_index(drop=True)


def reconcile(simulated: pd.DataFrame, ledger: pd.DataFrame) -> Reconciliation:
    """Compare what the chargers did with what the ledger recorded.

    `ledger` may hold sessions of other stations; only stations the simulation ran count.
    Ledger rows without a start (a stop for an unknown transaction) are reported as
    unexpected with their cause, since the charger side knows no such session.
    """
    sim = _normalise(simulated)
    led = _normalise(ledger)
    led = led[led["station_id"].isin(set(sim["station_id"]))].reset_index(drop=True)
    result = Reconciliation(simulated_sessions=len(sim), ledger_sessions=len(led))
    priced = "cost_incl_vat" in sim and "cost_incl_vat" in led
    if priced:
        result.amount_diff = Decimal(0)
    used: set[int] = set()
    by_key: dict[tuple[str, int, pd.Timestamp], list[int]] = {}
    by_id: dict[tuple[str, int], int] = {}
    for index, row in led.iterrows():
        i = int(index)
        if pd.notna(row["transaction_id"]):
            by_id[(row["station_id"], int(row["transaction_id"]))] = i
        if pd.notna(row["started_at"]):
            key = (row["station_id"], int(row["connector_id"]), row["started_at"])
            by_key.setdefault(key, []).append(i)
    for _, session in sim.iterrows():
        station, connector = session["station_id"], int(session["connector_id"])
        tx = None if pd.isna(session["transaction_id"]) else int(session["transaction_id"])
        match = by_id.get((station, tx)) if tx is not None else None
        candidates = by_key.get((station, connector, session["started_at"]), [])
        if match is None and candidates:
            match = candidates[0]
        if match is None:
            result.lost_sessions += 1
            result.differences.append(
                Difference("lost", station, connector, tx, "no ledger session for this start")
            )
            continue
        used.add(match)
        for extra in candidates:
            if extra != match and extra not in used:
                used.add(extra)
                result.duplicate_sessions += 1
                result.differences.append(
                    Difference(
                        "duplicate",
                        station,
                        connector,
                        _int(led.at[extra, "transaction_id"]),
                        f"second ledger session for the start of transaction {tx}",
                    )
                )
        ledger_energy = _int(led.at[match, "energy_wh"])
        charger_energy = _int(session["energy_wh"])
        if charger_energy is not None and ledger_energy != charger_energy:
            diff = abs((ledger_energy or 0) - charger_energy)
            result.energy_diff_wh += diff
            result.differences.append(
                Difference(
                    "energy",
                    station,
                    connector,
                    tx,
                    f"ledger {ledger_energy} Wh, charger {charger_energy} Wh"
                    + ("" if ledger_energy is not None else " (the stop never reached the ledger)"),
                )
            )
        if priced:
            _compare_amounts(result, session, led.loc[match], station, connector, tx)
    for index, row in led.iterrows():
        if int(index) in used:
            continue
        result.unexpected_sessions += 1
        cause = (
            "a stop for a transaction id the ledger never assigned"
            if pd.isna(row["started_at"])
            else "a ledger session no simulated charger started"
        )
        result.differences.append(
            Difference(
                "unexpected",
                row["station_id"],
                _int(row["connector_id"]),
                _int(row["transaction_id"]),
                cause,
            )
        )
    return result


def _compare_amounts(
    result: Reconciliation,
    session: pd.Series,
    ledger_row: pd.Series,
    station: str,
    connector: int,
    tx: int | None,
) -> None:
    expected, billed = amount(session["cost_incl_vat"]), amount(ledger_row["cost_incl_vat"])
    if expected is None or expected == billed:
        return
    assert result.amount_diff is not None
    result.amount_diff += abs(expected - (billed or 0))
    cause = (
        "the ledger priced no CDR (the stop never reached it, or no tariff applied)"
        if billed is None
        else "the CSMS rated other meter readings than the charger sent"
    )
    result.differences.append(
        Difference(
            "amount", station, connector, tx, f"ledger {billed}, charger {expected}: {cause}"
        )
    )


def revenue_of(ledger: pd.DataFrame, stations: set[str]) -> dict[str, str]:
    """The ledger's priced total including VAT per currency, over the given stations."""
    if ledger.empty or "cost_incl_vat" not in ledger:
        return {}
    totals: dict[str, Decimal] = {}
    rows = ledger[ledger["station_id"].isin(stations)]
    for cost, currency in zip(rows["cost_incl_vat"], rows["currency"], strict=True):
        value = amount(cost)
        if value is not None:
            totals[currency] = totals.get(currency, Decimal(0)) + value
    return {currency: str(total) for currency, total in sorted(totals.items())}


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def ledger_sessions(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The ledger's sessions (as `SqliteStore.list_sessions` returns them) as a frame."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=SESSION_COLUMNS)
    return frame.rename(columns={"id": "transaction_id"})
