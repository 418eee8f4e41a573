"""Reconciliation of simulated sessions against the ledger, on known data."""

from __future__ import annotations

from typing import Any

import pandas as pd

from simulator.reconcile import ledger_sessions, reconcile


def _session(
    station: str, connector: int, tx: int | None, minute: int, start: int, stop: int | None
) -> dict[str, Any]:
    return {
        "station_id": station,
        "connector_id": connector,
        "transaction_id": tx,
        "started_at": f"2026-03-02T08:{minute:02d}:00+00:00",
        "meter_start_wh": start,
        "meter_stop_wh": stop,
        "energy_wh": None if stop is None else stop - start,
    }


SIM = pd.DataFrame(
    [
        _session("A", 1, 1, 0, 0, 5000),
        _session("A", 2, 2, 5, 100, 2100),
        _session("B", 1, 3, 10, 0, 7000),
    ]
)


def test_identical_sides_reconcile_exactly() -> None:
    result = reconcile(SIM, SIM.copy())
    assert result.summary() == {
        "simulated_sessions": 3,
        "ledger_sessions": 3,
        "lost_sessions": 0,
        "duplicate_sessions": 0,
        "unexpected_sessions": 0,
        "energy_diff_wh": 0,
        "exact": True,
    }
    assert result.differences == []


def test_a_lost_session_is_named() -> None:
    result = reconcile(SIM, SIM.iloc[[0, 2]])
    assert result.lost_sessions == 1
    (difference,) = result.differences
    assert (difference.kind, difference.station_id, difference.transaction_id) == ("lost", "A", 2)
    assert not result.exact


def test_a_duplicate_start_is_counted_once() -> None:
    ledger = pd.concat([SIM, SIM.iloc[[1]].assign(transaction_id=9)], ignore_index=True)
    result = reconcile(SIM, ledger)
    assert result.duplicate_sessions == 1
    assert result.differences[0].transaction_id == 9
    assert result.lost_sessions == 0


def test_energy_differences_add_up() -> None:
    ledger = SIM.copy()
    ledger.loc[0, "energy_wh"] = 4990
    ledger.loc[2, "energy_wh"] = None  # the stop never reached the ledger
    result = reconcile(SIM, ledger)
    assert result.energy_diff_wh == 10 + 7000
    causes = [d.cause for d in result.differences]
    assert "ledger 4990 Wh, charger 5000 Wh" in causes
    assert any("never reached the ledger" in c for c in causes)


def test_a_late_acknowledged_start_matches_by_time() -> None:
    simulated = SIM.copy()
    simulated.loc[1, "transaction_id"] = None  # the charger never saw the answer
    assert reconcile(simulated, SIM).exact


def test_other_stations_are_ignored_and_unmatched_stops_are_unexpected() -> None:
    ledger = pd.concat(
        [
            SIM,
            pd.DataFrame([_session("ELSEWHERE", 1, 50, 0, 0, 10)]),
            pd.DataFrame([{**_session("B", 0, 51, 0, 0, 10), "started_at": None}]),
        ],
        ignore_index=True,
    )
    result = reconcile(SIM, ledger)
    assert result.ledger_sessions == 4
    assert result.unexpected_sessions == 1
    assert result.differences[0].cause == "a stop for a transaction id the ledger never assigned"
    assert result.exact  # unexpected rows are listed, not counted as lost or duplicate


def test_ledger_rows_from_the_store_shape() -> None:
    rows = [
        {
            "id": 7,
            "station_id": "A",
            "connector_id": 1,
            "started_at": "2026-03-02T08:00:00+00:00",
            "meter_start_wh": 0,
            "meter_stop_wh": 5,
            "energy_wh": 5,
            "status": "Completed",
        }
    ]
    frame = ledger_sessions(rows)
    assert frame.loc[0, "transaction_id"] == 7
    assert ledger_sessions([]).empty


def test_amounts_are_compared_when_both_sides_are_priced() -> None:
    sim = SIM.assign(cost_incl_vat=["2.38", "1.19", None])  # the third never ended
    ledger = SIM.assign(cost_incl_vat=["2.38", "1.31", "3.00"])
    result = reconcile(sim, ledger)
    assert result.summary()["amount_diff"] == "0.12"
    assert result.exact is False
    (difference,) = result.differences
    assert (difference.kind, difference.transaction_id) == ("amount", 2)
    assert "ledger 1.31, charger 1.19" in difference.cause
    unpriced = reconcile(sim, ledger.assign(cost_incl_vat=["2.38", None, None]))
    assert "priced no CDR" in unpriced.differences[0].cause
    assert "amount_diff" not in reconcile(SIM, SIM.copy()).summary()  # no tariff, no amounts
