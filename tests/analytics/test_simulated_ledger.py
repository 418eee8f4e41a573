"""Analytics against a ledger the CSMS wrote: a small simulated fleet in virtual time.

The session frame's idle time and the bulk rater fed by `rating_inputs` must agree with the
CDRs the ledger rated session by session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from csms.analytics import cdrs, rating_inputs, sessions, utilization
from csms.domain.rerating import rerate_samples
from csms.logs import configure_logging
from simulator.run import RunOutcome, run_virtual_sync
from simulator.scenario import load_scenario, parse_duration, shipped_scenario


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RunOutcome]]:
    configure_logging("error")
    scenario = load_scenario(shipped_scenario("city")).with_overrides(
        chargers=4, duration_s=parse_duration("1d")
    )
    database = tmp_path_factory.mktemp("simulated") / "ledger.db"
    yield f"sqlite:///{database}", run_virtual_sync(scenario, Path(database))


def test_sessions_match_the_simulation(simulated: tuple[str, RunOutcome]) -> None:
    url, outcome = simulated
    frame = sessions(url)
    assert len(frame) == outcome.summary["sessions"] > 0
    assert frame["energy_wh"].sum() == outcome.summary["energy_wh"]
    assert frame["site"].isin(["CITY-AC", "CITY-DC"]).all()
    energy = utilization(url)["energy_wh"].sum()
    assert energy == pytest.approx(outcome.summary["energy_wh"])


def test_idle_time_is_the_cdrs_parking_time(simulated: tuple[str, RunOutcome]) -> None:
    url, _ = simulated
    both = sessions(url).merge(cdrs(url), on="session_id")
    # CDR hours have 6 decimals.
    assert np.allclose(both["idle_s"], both["total_parking_time_h"] * 3600, atol=0.002)


def test_the_bulk_rater_reproduces_the_ledgers_cdrs(simulated: tuple[str, RunOutcome]) -> None:
    url, _ = simulated
    tariff = load_scenario(shipped_scenario("city")).parsed_tariff
    assert tariff is not None
    samples, finished = rating_inputs(url)
    costs = rerate_samples(samples, finished, tariff, tz=ZoneInfo("Europe/Berlin"))
    stored = cdrs(url).set_index("session_id")
    expected = (stored["cost_incl_vat"] * 100).round().astype("int64")
    assert (costs["total_incl"] == expected.reindex(costs.index)).all()
    assert len(costs) == len(stored)
