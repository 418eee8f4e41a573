"""Charging physics: curve, vehicle, energy register and the vectorised fleet."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from simulator.physics import ChargingCurve, EnergyRegister, FleetPhysics, Vehicle

AC = ChargingCurve.typical_ac()
DC = ChargingCurve.typical_dc()
# A curve that starts low, rises, then tapers to zero: crossings in both directions.
ODD = ChargingCurve(soc_points=(0.1, 0.3, 0.7, 1.0), power_fractions=(0.4, 1.0, 0.6, 0.0))


def reference_energy(vehicle: Vehicle, seconds: float, offered_w: float, dt: float) -> float:
    """Fine midpoint (RK2) integration of the same equation, for comparison."""
    soc, wh_per_soc = vehicle.soc, vehicle.capacity_wh
    probe = Vehicle(vehicle.capacity_wh, soc, vehicle.max_power_w, vehicle.curve)
    delivered = 0.0
    for _ in range(round(seconds / dt)):
        probe.soc = soc
        half = soc + probe.power_w(offered_w) * dt / 2 / 3600 / wh_per_soc
        probe.soc = min(half, 1.0)
        step_wh = probe.power_w(offered_w) * dt / 3600
        step_wh = min(step_wh, (1.0 - soc) * wh_per_soc)
        soc += step_wh / wh_per_soc
        delivered += step_wh
    return delivered


# --------------------------------------------------------------------------- curve


def test_curve_interpolates_between_points() -> None:
    assert DC.fraction(0.3) == 1.0
    assert DC.fraction(0.8) == pytest.approx(0.55)
    assert DC.fraction(0.85) == pytest.approx((0.55 + 0.3) / 2)
    assert ODD.fraction(0.2) == pytest.approx(0.7)


def test_curve_is_constant_beyond_its_ends_and_clamps_soc() -> None:
    assert ODD.fraction(0.0) == pytest.approx(0.4)
    assert ODD.fraction(0.05) == pytest.approx(0.4)
    assert ODD.fraction(-3.0) == pytest.approx(0.4)
    assert ODD.fraction(1.0) == 0.0
    assert ODD.fraction(7.0) == 0.0
    single = ChargingCurve(soc_points=(0.5,), power_fractions=(0.7,))
    assert single.fraction(0.0) == single.fraction(1.0) == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("xs", "fs"),
    [
        ((), ()),
        ((0.0, 1.0), (1.0,)),
        ((0.0, 0.5, 0.5), (1.0, 1.0, 1.0)),
        ((0.5, 0.2), (1.0, 1.0)),
        ((0.0, 1.2), (1.0, 1.0)),
        ((0.0, 1.0), (1.0, -0.1)),
        ((0.0, math.nan), (1.0, 1.0)),
    ],
)
def test_curve_rejects_bad_points(xs: tuple[float, ...], fs: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        ChargingCurve(soc_points=xs, power_fractions=fs)


def test_typical_curves_have_the_documented_shape() -> None:
    assert all(AC.fraction(s) == 1.0 for s in np.linspace(0, 0.9, 10))
    assert AC.fraction(0.95) < 1.0
    assert all(DC.fraction(s) == 1.0 for s in np.linspace(0, 0.55, 10))
    grid = np.linspace(0.55, 1.0, 50)
    fractions = [DC.fraction(s) for s in grid]
    assert all(b <= a for a, b in itertools.pairwise(fractions))
    gentle = DC.fraction(0.55) - DC.fraction(0.65)
    steep_after_80 = DC.fraction(0.8) - DC.fraction(0.9)
    assert steep_after_80 > gentle  # the taper steepens after 80 %
    assert ChargingCurve.typical_ac() == AC and hash(AC) == hash(ChargingCurve.typical_ac())


# --------------------------------------------------------------------------- vehicle


def test_power_never_exceeds_offered_or_max_and_is_never_negative() -> None:
    rng = np.random.default_rng(1)
    for _ in range(500):
        curve = (AC, DC, ODD)[int(rng.integers(3))]
        vehicle = Vehicle(60_000.0, float(rng.random()), float(rng.uniform(1, 3e5)), curve)
        offered = float(rng.uniform(-1e4, 4e5))
        power = vehicle.power_w(offered)
        assert 0.0 <= power <= max(offered, 0.0)
        assert power <= vehicle.max_power_w * curve.fraction(vehicle.soc) + 1e-9


def test_full_vehicle_draws_nothing() -> None:
    vehicle = Vehicle(40_000.0, 1.0, 11_000.0, AC)
    assert vehicle.full
    assert vehicle.power_w(11_000.0) == 0.0
    assert vehicle.charge(3600.0, 11_000.0) == 0.0
    assert Vehicle(40_000.0, 1.0 - 1e-10, 11_000.0, AC).full


def test_taper_lowers_power_as_soc_rises() -> None:
    powers = [Vehicle(60_000.0, s, 150_000.0, DC).power_w(math.inf) for s in np.linspace(0, 1, 41)]
    assert all(b <= a for a, b in itertools.pairwise(powers))
    assert powers[-2] < 0.2 * powers[0]


@pytest.mark.parametrize(
    ("capacity", "soc", "max_power", "curve", "offered", "seconds"),
    [
        (60_000.0, 0.5, 150_000.0, DC, 120_000.0, 900.0),  # offered-limited, then the taper
        (60_000.0, 0.1, 150_000.0, DC, math.inf, 900.0),  # into the taper, across breakpoints
        (40_000.0, 0.85, 11_000.0, AC, 22_000.0, 900.0),  # across the AC knee at 90 %
        (40_000.0, 0.99, 11_000.0, AC, 11_000.0, 900.0),  # reaches full mid-step
        (50_000.0, 0.05, 50_000.0, ODD, 35_000.0, 3600.0),  # rising curve crosses the limit
        (50_000.0, 0.6, 50_000.0, ODD, 45_000.0, 900.0),  # tapering to zero power
    ],
)
def test_charge_matches_a_fine_numerical_integration(
    capacity: float,
    soc: float,
    max_power: float,
    curve: ChargingCurve,
    offered: float,
    seconds: float,
) -> None:
    vehicle = Vehicle(capacity, soc, max_power, curve)
    expected = reference_energy(vehicle, seconds, offered, dt=0.05)
    delivered = vehicle.charge(seconds, offered)
    assert delivered == pytest.approx(expected, abs=0.1)
    assert delivered == pytest.approx(capacity * (vehicle.soc - soc), abs=1e-6)


def test_charge_conserves_energy_and_never_overfills() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        curve = (AC, DC, ODD)[int(rng.integers(3))]
        soc0 = float(rng.random())
        vehicle = Vehicle(
            float(rng.uniform(10e3, 100e3)), soc0, float(rng.uniform(3e3, 3e5)), curve
        )
        offered = float(rng.uniform(0, 3e5))
        seconds = float(rng.uniform(0, 20_000))
        delivered = vehicle.charge(seconds, offered)
        assert 0.0 <= delivered <= min(offered, vehicle.max_power_w) * seconds / 3600 + 1e-6
        assert vehicle.capacity_wh * (vehicle.soc - soc0) == pytest.approx(delivered, abs=1e-6)
        assert soc0 <= vehicle.soc <= 1.0


def test_charge_to_full_stops_exactly_at_capacity() -> None:
    vehicle = Vehicle(50_000.0, 0.3, 50_000.0, DC)
    assert vehicle.charge(10 * 86_400.0, 50_000.0) == pytest.approx(35_000.0, abs=1e-6)
    assert vehicle.soc == 1.0
    assert vehicle.charge(3600.0, 50_000.0) == 0.0


def test_charge_is_additive_over_steps() -> None:
    whole = Vehicle(60_000.0, 0.2, 150_000.0, DC)
    steps = Vehicle(60_000.0, 0.2, 150_000.0, DC)
    total = whole.charge(1800.0, 100_000.0)
    pieces = sum(steps.charge(1.0, 100_000.0) for _ in range(1800))
    assert pieces == pytest.approx(total, abs=1e-6)
    assert steps.soc == pytest.approx(whole.soc, abs=1e-12)


def test_charge_with_nothing_offered_or_no_time_delivers_nothing() -> None:
    vehicle = Vehicle(40_000.0, 0.5, 11_000.0, AC)
    assert vehicle.charge(3600.0, 0.0) == 0.0
    assert vehicle.charge(3600.0, -5.0) == 0.0
    assert vehicle.charge(0.0, 11_000.0) == 0.0
    assert vehicle.soc == 0.5
    with pytest.raises(ValueError):
        vehicle.charge(-1.0, 11_000.0)
    with pytest.raises(ValueError):
        vehicle.charge(60.0, math.nan)


@pytest.mark.parametrize(
    ("capacity", "soc", "max_power"),
    [(0.0, 0.5, 1.0), (1.0, 1.5, 1.0), (1.0, -0.1, 1.0), (1.0, 0.5, -1.0), (math.inf, 0.5, 1.0)],
)
def test_vehicle_rejects_bad_values(capacity: float, soc: float, max_power: float) -> None:
    with pytest.raises(ValueError):
        Vehicle(capacity, soc, max_power, AC)


# --------------------------------------------------------------------------- register


def test_register_keeps_the_exact_total_and_reports_its_floor() -> None:
    register = EnergyRegister(start_wh=1000)
    assert register.wh == 1000 and register.total_wh == 1000.0
    register.add(0.6)
    register.add(0.6)
    assert register.total_wh == pytest.approx(1001.2)
    assert register.wh == 1001


def test_register_is_monotone_and_does_not_drift() -> None:
    rng = np.random.default_rng(3)
    parts = rng.exponential(0.01, size=100_000).tolist()
    register = EnergyRegister()
    last_total, last_wh = 0.0, 0
    for part in parts:
        register.add(part)
        assert register.total_wh >= last_total and register.wh >= last_wh
        last_total, last_wh = register.total_wh, register.wh
    assert register.total_wh == pytest.approx(math.fsum(parts), rel=1e-15, abs=1e-12)
    assert register.wh == math.floor(math.fsum(parts))


@pytest.mark.parametrize("bad", [-0.001, -1.0, math.nan, math.inf])
def test_register_rejects_negative_and_non_finite_energy(bad: float) -> None:
    register = EnergyRegister()
    with pytest.raises(ValueError):
        register.add(bad)
    assert register.total_wh == 0.0
    with pytest.raises(ValueError):
        EnergyRegister(start_wh=-1)


# --------------------------------------------------------------------------- fleet


def random_vehicle(rng: np.random.Generator) -> Vehicle:
    curve = (AC, DC, ODD)[int(rng.integers(3))]
    return Vehicle(
        capacity_wh=float(rng.uniform(10e3, 100e3)),
        soc=float(rng.uniform(0.0, 1.0)),
        max_power_w=float(rng.uniform(3e3, 3e5)),
        curve=curve,
    )


def test_fleet_agrees_with_each_vehicle_over_many_steps() -> None:
    rng = np.random.default_rng(11)
    n = 1000
    fleet = FleetPhysics(n)
    twins: list[Vehicle] = []
    limits = rng.uniform(0, 2e5, size=n)
    for i in range(n):
        vehicle = random_vehicle(rng)
        twin = Vehicle(vehicle.capacity_wh, vehicle.soc, vehicle.max_power_w, vehicle.curve)
        fleet.plug(i, vehicle)
        fleet.set_limit(i, float(limits[i]))
        twins.append(twin)
    for _ in range(12):
        for i in rng.choice(n, size=50, replace=False):
            limits[i] = rng.uniform(0, 2e5)
            fleet.set_limit(int(i), float(limits[i]))
        seconds = float(rng.uniform(1, 900))
        expected_power = np.array([t.power_w(lim) for t, lim in zip(twins, limits, strict=True)])
        np.testing.assert_allclose(fleet.power_w(), expected_power, atol=1e-6)
        delivered = fleet.advance(seconds)
        expected = np.array([t.charge(seconds, lim) for t, lim in zip(twins, limits, strict=True)])
        assert delivered.dtype == np.float64 and delivered.shape == (n,)
        np.testing.assert_allclose(delivered, expected, rtol=0, atol=0.1)
        assert np.max(np.abs(delivered - expected)) < 1e-6
    for i in range(n):
        unplugged = fleet.unplug(i)
        assert unplugged is not None
        assert unplugged.soc == pytest.approx(twins[i].soc, abs=1e-12)


def test_unplug_returns_the_vehicle_with_its_updated_soc_and_frees_the_row() -> None:
    fleet = FleetPhysics(3)
    vehicle = Vehicle(40_000.0, 0.2, 11_000.0, AC)
    fleet.plug(1, vehicle)
    fleet.set_limit(1, 7_400.0)
    delivered = fleet.advance(3600.0)
    assert delivered.tolist() == pytest.approx([0.0, 7_400.0, 0.0])
    assert fleet.unplug(1) is vehicle
    assert vehicle.soc == pytest.approx(0.2 + 7_400.0 / 40_000.0)
    assert fleet.unplug(1) is None
    assert fleet.advance(3600.0).tolist() == [0.0, 0.0, 0.0]
    assert fleet.power_w().tolist() == [0.0, 0.0, 0.0]
    fleet.plug(1, Vehicle(40_000.0, 0.5, 11_000.0, AC))
    assert fleet.power_w()[1] == 7_400.0  # the connector's limit outlives the vehicle


def test_set_limit_is_respected() -> None:
    fleet = FleetPhysics(2)
    fleet.plug(0, Vehicle(60_000.0, 0.1, 150_000.0, DC))
    fleet.plug(1, Vehicle(60_000.0, 0.1, 150_000.0, DC))
    assert fleet.power_w().tolist() == [150_000.0, 150_000.0]  # unlimited until set
    fleet.set_limit(0, 50_000.0)
    fleet.set_limit(1, 0.0)
    assert fleet.power_w().tolist() == [50_000.0, 0.0]
    delivered = fleet.advance(600.0)
    assert delivered[0] == pytest.approx(50_000.0 * 600 / 3600)
    assert delivered[1] == 0.0
    with pytest.raises(ValueError):
        fleet.set_limit(0, math.nan)


def test_fleet_rejects_bad_rows_and_double_plugging() -> None:
    fleet = FleetPhysics(2)
    fleet.plug(0, Vehicle(40_000.0, 0.5, 11_000.0, AC))
    with pytest.raises(ValueError):
        fleet.plug(0, Vehicle(40_000.0, 0.5, 11_000.0, AC))
    for bad in (-1, 2):
        with pytest.raises(IndexError):
            fleet.plug(bad, Vehicle(40_000.0, 0.5, 11_000.0, AC))
        with pytest.raises(IndexError):
            fleet.set_limit(bad, 1.0)
    with pytest.raises(ValueError):
        fleet.advance(-1.0)


def test_fleet_handles_curves_of_different_lengths_plugged_later() -> None:
    fleet = FleetPhysics(2)
    short = Vehicle(40_000.0, 0.88, 11_000.0, ChargingCurve((0.0,), (1.0,)))
    fleet.plug(0, short)
    fleet.plug(1, Vehicle(60_000.0, 0.5, 150_000.0, DC))  # widens the curve table
    twin_short = Vehicle(40_000.0, 0.88, 11_000.0, ChargingCurve((0.0,), (1.0,)))
    twin_dc = Vehicle(60_000.0, 0.5, 150_000.0, DC)
    for _ in range(6):
        delivered = fleet.advance(900.0)
        assert delivered[0] == pytest.approx(twin_short.charge(900.0, math.inf), abs=1e-6)
        assert delivered[1] == pytest.approx(twin_dc.charge(900.0, math.inf), abs=1e-6)
    assert fleet.unplug(0) is short and short.soc == 1.0
