"""A site's load, its peak against a limit and the smart-charging limit model."""

from __future__ import annotations

import pandas as pd
import pytest

from csms.analytics import AnalyticsError, limit_site_power, peak_against, site_loads

MONDAY = ("2026-03-02", "2026-03-03")


def test_site_loads_and_peak(ledger_url: str) -> None:
    loads = site_loads(ledger_url, "A", *MONDAY, freq="1h")
    assert loads.energy_wh.index.tolist() == [1, 2]
    assert loads.energy_wh.sum(axis=1).tolist() == [11000.0, 3000.0]
    plugged = loads.plugged.loc[:, loads.plugged.any()]
    assert plugged.columns.hour.tolist() == [8, 9, 10, 11]
    assert plugged.values.tolist() == [[True, True, False, False], [False, True, True, True]]
    peak = peak_against(loads.power_kw(), 5.0, loads.step)
    assert peak == {
        "peak_kw": 11.0,
        "peak_at": pd.Timestamp("2026-03-02T08:00:00Z"),
        "buckets_over": 1,
        "hours_over": 1.0,
        "energy_over_kwh": 6.0,
    }


def test_a_site_limit_defers_energy_and_leaves_some_unserved(ledger_url: str) -> None:
    loads = site_loads(ledger_url, "A", *MONDAY, freq="1h")
    delivered, unserved = limit_site_power(loads, 6.0)
    used = delivered.loc[:, delivered.sum() > 0]
    # 08: session 1 gets 6 kWh of 11 (owes 5). 09: it asks 5, session 2 asks 3: 6 shared in
    # proportion (3.75, 2.25); session 1 leaves owing 1.25. 10: session 2 gets its 0.75.
    assert used.columns.hour.tolist() == [8, 9, 10]
    assert used.values.tolist() == [[6000.0, 3750.0, 0.0], [0.0, 2250.0, 750.0]]
    assert unserved.tolist() == [1250.0, 0.0]
    assert peak_against(loads.power_kw(delivered), 6.0, loads.step)["peak_kw"] == 6.0
    # A limit above the peak changes nothing.
    same, none = limit_site_power(loads, 20.0)
    assert same.equals(loads.energy_wh) and none.sum() == 0.0
    with pytest.raises(AnalyticsError):
        limit_site_power(loads, 0.0)
