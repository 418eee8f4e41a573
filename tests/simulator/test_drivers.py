"""Drivers: non-homogeneous Poisson arrivals, dwell and energy, token and behaviour shares."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from simulator.drivers import (
    Arrival,
    Behaviour,
    DriverModel,
    EvClass,
    TokenKind,
    arrivals,
    ev_fleet_mix,
    expected_arrivals,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
MONDAY = datetime(2026, 3, 2, tzinfo=AMSTERDAM)
DAYS = 200
DAY_S = 86_400.0
BIG_BATTERY = (EvClass("big", 1.0, 200_000.0, 11_000.0, 150_000.0),)


def run(model: DriverModel, seed: int = 1, days: int = DAYS) -> list[Arrival]:
    return arrivals(model, MONDAY, days * DAY_S, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def city() -> list[Arrival]:
    """200 days of a busy public AC connector group (rates x 40): about 4,500 arrivals."""
    return run(DriverModel.public_ac().scaled(40))


def local(arrival: Arrival) -> datetime:
    return (MONDAY.astimezone(UTC) + timedelta(seconds=arrival.at_s)).astimezone(AMSTERDAM)


def hour_histogram(items: list[Arrival], weekend: bool) -> np.ndarray:
    hours = [local(a).hour for a in items if (local(a).weekday() >= 5) == weekend]
    return np.bincount(hours, minlength=24)


# --------------------------------------------------------------------------- the process


def test_same_seed_same_arrivals_other_seed_other_arrivals() -> None:
    model = DriverModel.public_ac().scaled(5)
    first = run(model, seed=5, days=20)
    assert first == run(model, seed=5, days=20)
    assert first != run(model, seed=6, days=20)


def test_arrivals_are_sorted_and_inside_the_period(city: list[Arrival]) -> None:
    times = [a.at_s for a in city]
    assert times == sorted(times)
    assert times[0] >= 0.0 and times[-1] < DAYS * DAY_S


def test_count_matches_the_integrated_rate(city: list[Arrival]) -> None:
    model = DriverModel.public_ac().scaled(40)
    # 200 days (of 86,400 s) from Monday 2 March 2026: 144 weekdays and 56 weekend days, less
    # the hour 2:00-3:00 skipped on Sunday 29 March (DST), plus the first hour of Friday
    # 18 September, where the 200th day of absolute time ends.
    by_hand = (
        144 * model.daily_rate(weekend=False)
        + 56 * model.daily_rate(weekend=True)
        - model.weekend_hourly_rate[2]
        + model.weekday_hourly_rate[0]
    )
    expected = expected_arrivals(model, MONDAY, DAYS * DAY_S)
    assert expected == pytest.approx(by_hand, rel=1e-9)
    assert len(city) == pytest.approx(expected, rel=0.05)
    assert len(city) / DAYS == pytest.approx(expected / DAYS, rel=0.05)


@pytest.mark.parametrize("factory", [DriverModel.depot, DriverModel.highway_dc])
def test_count_matches_for_the_other_presets(factory: Callable[[], DriverModel]) -> None:
    model = factory().scaled(10)
    count = len(run(model, seed=2))
    assert count == pytest.approx(expected_arrivals(model, MONDAY, DAYS * DAY_S), rel=0.05)


def test_weekday_histogram_peaks_where_the_model_says(city: list[Arrival]) -> None:
    model = DriverModel.public_ac()
    histogram = hour_histogram(city, weekend=False)
    assert int(np.argmax(histogram)) == int(np.argmax(model.weekday_hourly_rate)) == 8
    evening = histogram[16:20]
    assert int(np.argmax(evening)) + 16 == 17  # the second, evening peak
    assert histogram[17] > 2 * histogram[3] + 1 and histogram[8] > 5 * histogram[3]


def test_weekend_differs_from_weekdays(city: list[Arrival]) -> None:
    model = DriverModel.public_ac()
    weekend = hour_histogram(city, weekend=True)
    weekday = hour_histogram(city, weekend=False)
    assert int(np.argmax(weekend)) in (12, 13, 14)
    assert int(np.argmax(model.weekend_hourly_rate)) == 13
    # Weekend mornings are quiet compared with weekday mornings (per day).
    assert weekend[8] / 56 < 0.5 * weekday[8] / 144


def test_local_hours_follow_daylight_saving_time() -> None:
    only_noon = tuple(10.0 if h == 12 else 0.0 for h in range(24))
    model = dataclasses.replace(
        DriverModel.public_ac(), weekday_hourly_rate=only_noon, weekend_hourly_rate=only_noon
    )
    start = datetime(2026, 3, 25, tzinfo=AMSTERDAM)  # spans the change of 29 March
    result = arrivals(model, start, 10 * DAY_S, np.random.default_rng(4))
    hours = {
        (start.astimezone(UTC) + timedelta(seconds=a.at_s)).astimezone(AMSTERDAM).hour
        for a in result
    }
    assert hours == {12}
    assert expected_arrivals(model, start, 10 * DAY_S) == pytest.approx(100.0)


def test_fixed_offset_start_and_partial_first_hour() -> None:
    model = DriverModel.highway_dc()
    start = datetime(2026, 3, 2, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    rate_10h = model.weekday_hourly_rate[10]
    assert expected_arrivals(model, start, 1800.0) == pytest.approx(rate_10h / 2)
    assert expected_arrivals(model, start, 5400.0) == pytest.approx(
        rate_10h / 2 + model.weekday_hourly_rate[11]
    )


def test_the_same_instant_in_another_zone_has_other_local_hours() -> None:
    only_noon = tuple(10.0 if h == 12 else 0.0 for h in range(24))
    model = dataclasses.replace(
        DriverModel.public_ac(), weekday_hourly_rate=only_noon, weekend_hourly_rate=only_noon
    )
    in_utc = MONDAY.astimezone(UTC)
    assert in_utc == MONDAY
    amsterdam = arrivals(model, MONDAY, DAY_S, np.random.default_rng(1))
    utc = arrivals(model, in_utc, DAY_S, np.random.default_rng(1))
    assert {int(a.at_s // 3600) for a in amsterdam} == {12}
    assert {int(a.at_s // 3600) for a in utc} == {13}


def test_zero_rates_and_zero_duration_give_no_arrivals() -> None:
    assert run(DriverModel.public_ac().scaled(0.0)) == []
    assert arrivals(DriverModel.public_ac(), MONDAY, 0.0, np.random.default_rng(0)) == []


def test_bad_inputs_are_rejected() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        arrivals(DriverModel.public_ac(), datetime(2026, 3, 2), DAY_S, rng)  # naive
    with pytest.raises(ValueError):
        arrivals(DriverModel.public_ac(), MONDAY, -1.0, rng)
    with pytest.raises(ValueError):
        DriverModel.public_ac().scaled(-1.0)
    with pytest.raises(ValueError):
        dataclasses.replace(DriverModel.public_ac(), weekday_hourly_rate=(1.0,) * 23)
    with pytest.raises(ValueError):
        dataclasses.replace(DriverModel.public_ac(), app_share=1.5)
    with pytest.raises(ValueError):
        dataclasses.replace(DriverModel.public_ac(), leaves_early_share=0.6, overstays_share=0.6)
    with pytest.raises(ValueError):
        dataclasses.replace(DriverModel.highway_dc(), ev_mix=(EvClass("phev", 1, 13e3, 3.7e3, 0),))


def test_scaled_multiplies_every_rate() -> None:
    model = DriverModel.public_ac()
    double = model.scaled(2.0)
    assert double.weekday_hourly_rate == tuple(2 * r for r in model.weekday_hourly_rate)
    assert double.weekend_hourly_rate == tuple(2 * r for r in model.weekend_hourly_rate)
    assert double.dwell_median_s == model.dwell_median_s


# --------------------------------------------------------------------------- each arrival


def test_shares_match_the_model(city: list[Arrival]) -> None:
    model = DriverModel.public_ac()
    n = len(city)
    kinds = Counter(a.token_kind for a in city)
    validity = Counter(a.token_validity for a in city)
    behaviour = Counter(a.behaviour for a in city)
    assert set(validity) <= {"valid", "invalid", "blocked"}
    # Tolerances are about 4 binomial standard deviations at n of about 4,500.
    assert kinds[TokenKind.APP] / n == pytest.approx(model.app_share, abs=0.02)
    assert validity["invalid"] / n == pytest.approx(model.invalid_token_share, abs=0.01)
    assert validity["blocked"] / n == pytest.approx(model.blocked_token_share, abs=0.007)
    assert behaviour[Behaviour.LEAVES_EARLY] / n == pytest.approx(
        model.leaves_early_share, abs=0.015
    )
    assert behaviour[Behaviour.OVERSTAYS] / n == pytest.approx(model.overstays_share, abs=0.02)


def test_dwell_median_matches_for_normal_drivers(city: list[Arrival]) -> None:
    normal = [a.dwell_s for a in city if a.behaviour is Behaviour.NORMAL]
    assert float(np.median(normal)) == pytest.approx(
        DriverModel.public_ac().dwell_median_s, rel=0.05
    )


def test_energy_median_matches_when_the_battery_has_room() -> None:
    model = dataclasses.replace(DriverModel.public_ac(), ev_mix=BIG_BATTERY).scaled(40)
    needs = [a.energy_need_wh for a in run(model, seed=9)]
    assert float(np.median(needs)) == pytest.approx(model.energy_median_wh, rel=0.05)


def test_energy_need_never_exceeds_the_room_in_the_battery() -> None:
    for model in (DriverModel.public_ac(), DriverModel.depot(), DriverModel.highway_dc()):
        for a in run(model.scaled(10), seed=3, days=60):
            assert 0.0 < a.energy_need_wh <= a.capacity_wh * (1.0 - a.initial_soc) + 1e-9
            assert 0.0 < a.initial_soc < 1.0


def test_early_leavers_cannot_get_their_need_and_overstayers_stay_longer(
    city: list[Arrival],
) -> None:
    early = [a for a in city if a.behaviour is Behaviour.LEAVES_EARLY]
    assert early and all(a.dwell_s * a.max_power_w / 3600 < a.energy_need_wh for a in early)
    normal = np.median([a.dwell_s for a in city if a.behaviour is Behaviour.NORMAL])
    over = np.median([a.dwell_s for a in city if a.behaviour is Behaviour.OVERSTAYS])
    assert over > normal + 2 * 3600


def test_evs_come_from_the_fleet_mix() -> None:
    mix = ev_fleet_mix()
    assert math.isclose(sum(c.share for c in mix), 1.0)
    ac = {(c.capacity_wh, c.max_ac_w) for c in mix}
    assert all((a.capacity_wh, a.max_power_w) in ac for a in run(DriverModel.public_ac(), days=60))
    dc = {(c.capacity_wh, c.max_dc_w) for c in mix if c.max_dc_w > 0}
    highway = run(DriverModel.highway_dc(), days=20)
    assert highway and all((a.capacity_wh, a.max_power_w) in dc for a in highway)


def test_presets_have_their_character() -> None:
    depot = run(DriverModel.depot().scaled(5), seed=2, days=60)
    evening = sum(16 <= local(a).hour < 21 for a in depot if local(a).weekday() < 5)
    weekday_total = sum(local(a).weekday() < 5 for a in depot)
    assert evening / weekday_total > 0.7
    assert float(np.median([a.dwell_s for a in depot])) > 10 * 3600
    assert all(a.token_kind is TokenKind.RFID for a in depot)
    highway = run(DriverModel.highway_dc(), seed=2, days=60)
    dwell_min = float(np.median([a.dwell_s for a in highway])) / 60
    assert 20 <= dwell_min <= 40
    assert np.median([a.energy_need_wh for a in highway]) > 2 * np.median(
        [a.energy_need_wh for a in run(DriverModel.public_ac().scaled(5), days=60)]
    )
