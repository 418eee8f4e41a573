"""Arrival and dwell distributions and per-driver figures on the hand-built ledger."""

from __future__ import annotations

from csms.analytics import arrivals, driver_summary, dwell_distribution, sessions


def test_arrivals_by_weekday_and_hour(ledger_url: str) -> None:
    table = arrivals(sessions(ledger_url))
    assert table.shape == (7, 24)
    assert table.values.sum() == 5
    assert {(d, h) for d, h in zip(*table.to_numpy().nonzero(), strict=True)} == {
        (0, 8),
        (0, 9),
        (0, 23),
        (1, 10),
        (1, 20),
    }
    assert arrivals(sessions(ledger_url), "Europe/Berlin").loc["Tue", 0] == 1


def test_dwell_distribution(ledger_url: str) -> None:
    table = dwell_distribution(sessions(ledger_url), edges_h=(0, 1, 2, 4))
    assert table.index.tolist() == ["0-1 h", "1-2 h", "2-4 h", ">= 4 h"]
    assert table["sessions"].tolist() == [0, 2, 2, 0]
    assert table["share"].tolist() == [0.0, 0.5, 0.5, 0.0]
    assert table.loc["2-4 h", "energy_kwh"] == 7.0
    # Session 1 idles half of its 2 h, session 2 two thirds of its 3 h.
    assert table.loc["2-4 h", "idle_share"] == (0.5 + 2 / 3) / 2


def test_driver_summary(ledger_url: str) -> None:
    table = driver_summary(sessions(ledger_url))
    assert table.index.tolist() == ["D1", "T2", "D2"]
    d1 = table.loc["D1"]
    assert (d1["sessions"], d1["energy_kwh"], d1["cost_incl_vat"], d1["stations"]) == (
        2,
        13.0,
        6.19,
        2,
    )
    assert d1["mean_dwell_h"] == 1.5
    assert table.loc["T2", "mean_idle_h"] == 1.25
