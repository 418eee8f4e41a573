"""Scenario files: the shipped ones load, bad ones are refused naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.fleet import FAULT_KINDS
from simulator.scenario import (
    ScenarioError,
    load_scenario,
    parse_duration,
    scenario_from_dict,
    shipped_scenario,
)


@pytest.mark.parametrize("name", ["city", "depot", "highway", "faulty"])
def test_shipped_scenarios_load(name: str) -> None:
    scenario = load_scenario(shipped_scenario(name))
    assert scenario.name == name
    assert scenario.charger_count > 0
    assert scenario.start.tzinfo is not None


def test_the_faulty_fleet_exercises_every_fault_kind() -> None:
    faults = load_scenario(shipped_scenario("faulty")).faults
    for kind in FAULT_KINDS:
        assert getattr(faults, kind) > 0, kind
    assert faults.clock_skew_s != 0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("90m", 5400),
        ("6h", 21600),
        ("1d", 86400),
        ("1w", 604800),
        ("1.5h", 5400),
        (45, 45),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1y", "-1h", "0s", "h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"stations": []}, "stations"),
        ({"stations": [{"prefix": "A", "count": 0}]}, "stations.0.count"),
        ({"stations": [{"prefix": "A", "count": 1, "kind": "warp"}]}, "stations.0.kind"),
        ({"stations": [{"prefix": "A", "count": 1}], "colour": "red"}, "colour"),
        ({"stations": [{"prefix": "A", "count": 1}], "duration": "soon"}, "duration"),
        ({"stations": [{"prefix": "A", "count": 1}], "start": "2026-01-01T00:00:00"}, "start"),
        ({"stations": [{"prefix": "A", "count": 1}, {"prefix": "A", "count": 2}]}, "unique"),
        ({"stations": [{"prefix": "A", "count": 1}], "faults": {"reboots": -1}}, "faults.reboots"),
    ],
)
def test_bad_scenarios_name_the_field(document: dict[str, object], named: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(document)
    assert named in str(caught.value)


def test_a_missing_or_broken_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = ")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(broken)
    with pytest.raises(ScenarioError, match="shipped: city"):
        shipped_scenario("atlantis")


def test_overrides_scale_the_fleet_in_proportion() -> None:
    city = load_scenario(shipped_scenario("city"))
    bigger = city.with_overrides(chargers=1000, duration_s=3600, seed=9)
    assert bigger.charger_count == 1000
    assert [g.prefix for g in bigger.stations] == [g.prefix for g in city.stations]
    assert bigger.stations[0].count > bigger.stations[1].count
    assert (bigger.duration_s, bigger.seed) == (3600, 9)
    tiny = city.with_overrides(chargers=2)
    assert [g.count for g in tiny.stations] == [1, 1]
    ids = tiny.stations[0].station_ids()
    assert ids == ["CITY-AC-0001"]
