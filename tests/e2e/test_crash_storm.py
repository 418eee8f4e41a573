"""The crash harness, small: a 10-charger simulated fleet, 1.6 and 2.0.1 chargers mixed,
against a real `csms serve` that is SIGKILLed 3 times at random moments, then the ledger
audit (`loadtest.crash_harness`).

The fleet runs 600 times faster than real time (two simulated hours in about 12 s). And the
reconnect storm (`loadtest.reconnect_storm`), small: 50 chargers all back after a SIGKILL.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import trio
import trio.testing

from loadtest.crash_harness import CrashPlan, CrashStormResult, run_crash_storm
from loadtest.crash_storm import crash_scenario, parse_versions
from loadtest.ledger_audit import LedgerAudit, audit_ledger
from loadtest.reconnect_storm import reconnect_storm
from simulator.scenario import Scenario

SCENARIO = crash_scenario("city", chargers=10, duration_s=7_200, seed=3)


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> CrashStormResult:
    plan = CrashPlan(SCENARIO, kills=3, rate=600, seed=3)
    workdir = tmp_path_factory.mktemp("crash-storm")
    result: CrashStormResult = trio.run(
        run_crash_storm, plan, workdir, clock=trio.testing.MockClock(rate=plan.rate)
    )
    return result


def test_three_kills_under_load_lose_and_double_nothing(storm: CrashStormResult) -> None:
    assert {g.ocpp_version for g in SCENARIO.stations} == {"ocpp1.6", "ocpp2.0.1"}
    result = storm
    assert len(result.kills) == 3, "the fleet ended before every kill"
    assert result.clean_exit, result.log_tail
    # Load was there to lose: sessions ran, their messages were acknowledged and priced.
    assert result.sessions > 0
    assert result.audit.acknowledged > 100
    # Both versions' transaction messages were acknowledged, and so audited.
    by_version = result.audit.acknowledged_by_version
    assert by_version["1.6"] > 30 and by_version["2.0.1"] > 30, by_version
    assert result.audit.postings > 0
    assert result.audit.examples == []
    assert result.audit.lost == 0
    assert result.audit.duplicate_transactions == 0
    assert result.audit.duplicate_samples == 0
    assert result.audit.unacknowledged_samples == 0
    assert result.audit.unacknowledged_events == 0
    assert result.audit.unmapped_transactions == 0
    assert result.audit.unbalanced_postings == 0
    assert result.undelivered == 0
    reconciliation = result.reconciliation
    assert reconciliation["lost_sessions"] == 0
    assert reconciliation["duplicate_sessions"] == 0
    assert reconciliation["energy_diff_wh"] == 0
    assert reconciliation["amount_diff"] == "0"
    assert result.ok


def _stations(scenario: Scenario, version: str | None = None) -> list[str]:
    return [
        station_id
        for group in scenario.stations
        if version is None or group.ocpp_version == version
        for station_id in group.station_ids()
    ]


def _audit_tampered(result: CrashStormResult, copy: Path, tamper: str) -> LedgerAudit:
    """The audit of a copy of the run's ledger after `tamper` (SQL) changed it."""
    assert result.ledger_path is not None
    with (
        closing(sqlite3.connect(result.ledger_path)) as source,
        closing(sqlite3.connect(copy)) as target,
    ):
        source.backup(target)
        changed = target.execute(tamper).rowcount
        target.commit()
    assert changed == 1, "the tampering matched no row"
    return audit_ledger(copy, result.acks, _stations(SCENARIO), _stations(SCENARIO, "ocpp2.0.1"))


_FIRST_201_TX = "SELECT transaction_id FROM station_transactions ORDER BY transaction_id LIMIT 1"
_IS_FIRST_201_TX = f"WHERE id = ({_FIRST_201_TX})"


@pytest.mark.parametrize(
    ("tamper", "field", "problem"),
    [
        (
            "DELETE FROM station_transaction_events WHERE rowid ="
            " (SELECT MIN(rowid) FROM station_transaction_events WHERE event_type = 'Updated')",
            "lost",
            "acknowledged Updated event lost",
        ),
        (
            f"UPDATE transactions SET meter_stop_wh = meter_stop_wh + 1 {_IS_FIRST_201_TX}",
            "lost",
            "acknowledged Ended lost",
        ),
        (
            f"UPDATE transactions SET meter_start_wh = meter_start_wh - 1 {_IS_FIRST_201_TX}",
            "lost",
            "acknowledged Started lost",
        ),
        (
            "DELETE FROM meter_samples WHERE id = (SELECT MIN(id) FROM meter_samples"
            f" WHERE transaction_id = ({_FIRST_201_TX}))",
            "lost",
            "acknowledged meter sample lost",
        ),
        (
            "INSERT INTO station_transaction_events SELECT station_id, station_tx_id,"
            " seq_no + 1000, event_type, trigger_reason, offline, timestamp, received_at"
            " FROM station_transaction_events LIMIT 1",
            "unacknowledged_events",
            "transaction event no acknowledged message carried",
        ),
        (
            "INSERT INTO transactions (station_id, connector_id, status) SELECT station_id,"
            f" connector_id, 'Completed' FROM transactions {_IS_FIRST_201_TX}",
            "unmapped_transactions",
            None,
        ),
    ],
)
def test_the_audit_finds_what_a_201_ledger_lost_or_gained(
    storm: CrashStormResult, tmp_path: Path, tamper: str, field: str, problem: str | None
) -> None:
    audit = _audit_tampered(storm, tmp_path / "tampered.db", tamper)
    assert getattr(audit, field) == 1, audit
    assert not audit.clean
    if problem is not None:
        assert len(audit.examples) == 1 and audit.examples[0].startswith(problem), audit.examples


async def test_fifty_chargers_all_come_back_after_a_kill(tmp_path: Path) -> None:
    figures = await reconnect_storm(50, tmp_path, reconnect_delay_s=1.0)
    # `reconnect_storm` returns only once every charger had a boot accepted after the kill.
    assert figures.chargers == 50
    assert figures.rss_before_kill_mb > 0
    assert figures.peak_rss_storm_mb > 0
    assert figures.kill_to_all_back_s >= figures.server_start_s


@pytest.mark.parametrize(
    ("versions", "v16", "v201"),
    [("1.6,2.0.1", 100, 100), ("1.6=3,2.0.1=1", 150, 50), ("2.0.1", 0, 200)],
)
def test_versions_split_every_station_group(versions: str, v16: int, v201: int) -> None:
    scenario = crash_scenario("city", 200, 3_600, 1, versions=parse_versions(versions))
    # Each group is split on its own: the fleet's split may be off by one per group.
    groups = len(scenario.stations)
    assert abs(len(_stations(scenario, "ocpp1.6")) - v16) < groups
    assert abs(len(_stations(scenario, "ocpp2.0.1")) - v201) < groups
    assert len(set(_stations(scenario))) == 200
    assert {g.ocpp_version for g in scenario.stations} == {
        version for version, count in (("ocpp1.6", v16), ("ocpp2.0.1", v201)) if count
    }


def test_an_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown OCPP version '2\\.1'"):
        parse_versions("1.6,2.1")
