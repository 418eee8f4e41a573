"""Meter data rules: Wh normalisation and the register anomalies the ledger flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.domain.events import MeterSample
from csms.domain.metering import (
    ENERGY_REGISTER,
    MAX_PLAUSIBLE_POWER_W,
    RESET_SHARE,
    energy_wh,
    is_register,
    register_anomaly,
)
from csms.domain.records import RegisterReading

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def sample(
    wh: float | None,
    at: datetime = T0,
    measurand: str = ENERGY_REGISTER,
    phase: str | None = None,
) -> MeterSample:
    return MeterSample(
        timestamp=at,
        measurand=measurand,
        value=str(wh),
        numeric=wh,
        unit="Wh",
        phase=phase,
        context="Sample.Periodic",
        location=None,
        format=None,
        wh=wh,
    )


# -- energy_wh -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "expected"),
    [(None, 12.5), ("Wh", 12.5), ("kWh", 12500.0), ("varh", 12.5), ("kvarh", 12500.0)],
)
def test_energy_units_normalised_to_wh(unit: str | None, expected: float) -> None:
    assert energy_wh(ENERGY_REGISTER, 12.5, unit) == pytest.approx(expected)


def test_every_energy_measurand_is_converted() -> None:
    assert energy_wh("Energy.Active.Export.Interval", 2.0, "kWh") == 2000.0
    assert energy_wh("Energy.Reactive.Import.Register", 3.0, "kvarh") == 3000.0


@pytest.mark.parametrize("measurand", ["Power.Active.Import", "Voltage", "SoC", "Current.Import"])
def test_non_energy_measurand_has_no_wh(measurand: str) -> None:
    assert energy_wh(measurand, 7.0, "kWh") is None


def test_energy_with_a_non_energy_unit_has_no_wh() -> None:
    assert energy_wh(ENERGY_REGISTER, 7.0, "W") is None
    assert energy_wh(ENERGY_REGISTER, 7.0, "kW") is None


def test_non_numeric_value_has_no_wh() -> None:
    assert energy_wh(ENERGY_REGISTER, None, "Wh") is None


def test_zero_is_a_value() -> None:
    assert energy_wh(ENERGY_REGISTER, 0.0, None) == 0.0


# -- is_register -----------------------------------------------------------------------------


def test_is_register() -> None:
    assert is_register(sample(10.0))
    assert not is_register(sample(10.0, phase="L1"))  # per-phase, not the total
    assert not is_register(sample(10.0, measurand="Energy.Active.Import.Interval"))
    assert not is_register(sample(None))


# -- register_anomaly ------------------------------------------------------------------------


def reading(wh: float, at: datetime = T0) -> RegisterReading:
    return RegisterReading(wh, at)


def test_first_reading_has_nothing_to_compare_with() -> None:
    assert register_anomaly(None, sample(0.0)) is None
    assert register_anomaly(None, sample(1e12)) is None


def test_reading_without_wh_is_not_judged() -> None:
    assert register_anomaly(reading(1000.0), sample(None)) is None


def test_normal_rise() -> None:
    # 11 kW for 15 minutes.
    assert register_anomaly(reading(1000.0), sample(3750.0, T0 + timedelta(minutes=15))) is None


def test_unchanged_register_is_normal_even_at_the_same_instant() -> None:
    assert register_anomaly(reading(1000.0), sample(1000.0)) is None
    assert register_anomaly(reading(1000.0), sample(1000.0, T0 + timedelta(hours=1))) is None


def test_register_going_backwards() -> None:
    later = T0 + timedelta(minutes=1)
    assert register_anomaly(reading(1000.0), sample(999.0, later)) == "register_backwards"
    assert register_anomaly(reading(1000.0), sample(500.0, later)) == "register_backwards"


def test_register_reset_to_about_zero() -> None:
    later = T0 + timedelta(minutes=1)
    assert register_anomaly(reading(100_000.0), sample(0.0, later)) == "register_reset"
    assert register_anomaly(reading(100_000.0), sample(100_000.0 * RESET_SHARE, later)) == (
        "register_reset"
    )
    assert register_anomaly(reading(100_000.0), sample(100_000.0 * RESET_SHARE + 1, later)) == (
        "register_backwards"
    )


def test_implausible_jump() -> None:
    hour = T0 + timedelta(hours=1)
    limit = MAX_PLAUSIBLE_POWER_W  # Wh in one hour at the limit
    assert register_anomaly(reading(0.0), sample(limit, hour)) is None
    assert register_anomaly(reading(0.0), sample(limit + 1000.0, hour)) == "implausible_jump"


def test_rise_with_no_time_between_is_implausible() -> None:
    assert register_anomaly(reading(1000.0), sample(1001.0, T0)) == "implausible_jump"
    earlier = T0 - timedelta(seconds=10)
    assert register_anomaly(reading(1000.0), sample(1001.0, earlier)) == "implausible_jump"
