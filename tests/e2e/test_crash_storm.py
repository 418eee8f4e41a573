"""The crash harness, small: a 10-charger simulated fleet against a real `csms serve` that is
SIGKILLed 3 times at random moments, then the ledger audit (`loadtest.crash_harness`).

The fleet runs 600 times faster than real time (two simulated hours in about 12 s). And the
reconnect storm (`loadtest.reconnect_storm`), small: 50 chargers all back after a SIGKILL.
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from loadtest.crash_harness import CrashPlan, run_crash_storm
from loadtest.crash_storm import crash_scenario
from loadtest.reconnect_storm import reconnect_storm


def test_three_kills_under_load_lose_and_double_nothing(tmp_path: Path) -> None:
    scenario = crash_scenario("city", chargers=10, duration_s=7_200, seed=3)
    plan = CrashPlan(scenario, kills=3, rate=600, seed=3)
    result = trio.run(run_crash_storm, plan, tmp_path, clock=trio.testing.MockClock(rate=plan.rate))
    assert len(result.kills) == 3, "the fleet ended before every kill"
    assert result.clean_exit, result.log_tail
    # Load was there to lose: sessions ran, their messages were acknowledged and priced.
    assert result.sessions > 0
    assert result.audit.acknowledged > 100
    assert result.audit.postings > 0
    assert result.audit.examples == []
    assert result.audit.lost == 0
    assert result.audit.duplicate_transactions == 0
    assert result.audit.duplicate_samples == 0
    assert result.audit.unacknowledged_samples == 0
    assert result.audit.unbalanced_postings == 0
    assert result.undelivered == 0
    reconciliation = result.reconciliation
    assert reconciliation["lost_sessions"] == 0
    assert reconciliation["duplicate_sessions"] == 0
    assert reconciliation["energy_diff_wh"] == 0
    assert reconciliation["amount_diff"] == "0"
    assert result.ok


async def test_fifty_chargers_all_come_back_after_a_kill(tmp_path: Path) -> None:
    figures = await reconnect_storm(50, tmp_path, reconnect_delay_s=1.0)
    # `reconnect_storm` returns only once every charger had a boot accepted after the kill.
    assert figures.chargers == 50
    assert figures.rss_before_kill_mb > 0
    assert figures.peak_rss_storm_mb > 0
    assert figures.kill_to_all_back_s >= figures.server_start_s
