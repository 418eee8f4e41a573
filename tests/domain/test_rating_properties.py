"""Properties of the exact rater: never negative (whatever the tariff and the meter do), and the
price never falls when a session gets longer or delivers more energy.

Monotonicity holds only where OCPI's rules allow it, so each property names its family:

- longer (more parking at the end): any restrictions, step sizes of 1. With larger steps OCPI
  bills the rounding extra at the price of the last element that priced the dimension, so a
  session that runs into a cheaper element can cost less than one that stopped just before.
- more energy (charging faster over the same time): tariffs without restrictions. With kWh or
  power restrictions more energy can move time or energy to a cheaper element.
- min/max prices give both amounts: with only `excl_vat`, the amount including VAT is scaled to
  the session's VAT share, which moves with the mix of components.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import hypothesis.strategies as st
from hypothesis import given, settings

from csms.domain.cdr import Cdr
from csms.domain.rating import MeterPoint, SessionUsage, rate_session, rate_so_far
from csms.domain.tariffs import Tariff, parse_tariff

ZONES = [UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")]
KINDS = ["ENERGY", "TIME", "PARKING_TIME", "FLAT"]
PRICES = st.decimals(min_value=0, max_value=20, places=4).map(float)
VATS = st.none() | st.decimals(min_value=0, max_value=30, places=1).map(float)
STEPS = st.sampled_from([1, 1, 15, 60, 100, 300, 900, 1000])
RESTRICTIONS: list[dict[str, Any]] = [
    {"start_time": "22:00", "end_time": "06:00"},
    {"start_time": "08:00", "end_time": "18:30"},
    {"end_time": "12:00"},
    {"day_of_week": ["SATURDAY", "SUNDAY"]},
    {"day_of_week": ["MONDAY", "WEDNESDAY", "FRIDAY"], "start_time": "07:00"},
    {"start_date": "2026-03-01", "end_date": "2026-04-01"},
    {"max_kwh": 5},
    {"min_kwh": 2, "max_kwh": 20.5},
    {"max_power": 11},
    {"min_power": 22},
    {"min_current": 16},
    {"max_current": 16, "min_current": 6},
    {"max_duration": 1800},
    {"min_duration": 3600},
    {"min_duration": 600, "max_duration": 7200},
    {"reservation": "RESERVATION"},
]


@st.composite
def tariffs(draw: st.DrawFn, *, restricted: bool, steps: st.SearchStrategy[int]) -> Tariff:
    elements = []
    for _ in range(draw(st.integers(1, 4))):
        kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4, unique=True))
        restrictions = draw(st.sampled_from(RESTRICTIONS)) if restricted else None
        if restrictions and "reservation" in restrictions:
            kinds = [k for k in kinds if k in ("FLAT", "TIME")] or ["TIME"]
        components = [
            {"type": k, "price": draw(PRICES), "vat": draw(VATS), "step_size": draw(steps)}
            for k in kinds
        ]
        element: dict[str, Any] = {"price_components": components}
        if restrictions is not None and draw(st.booleans()):
            element["restrictions"] = restrictions
        elements.append(element)
    data: dict[str, Any] = {
        "id": "P",
        "currency": "EUR",
        "last_updated": "2026-01-01T00:00:00Z",
        "elements": elements,
        "parking_grace_period_s": draw(st.sampled_from([0, 0, 300, 900])),
    }
    low = draw(st.none() | st.decimals(min_value=0, max_value=5, places=1))
    high = draw(st.none() | st.decimals(min_value=5, max_value=80, places=1))
    if low is not None:
        data["min_price"] = {"excl_vat": float(low), "incl_vat": float(low * 12 / 10)}
    if high is not None:
        data["max_price"] = {"excl_vat": float(high), "incl_vat": float(high * 12 / 10)}
    return parse_tariff(data)


STARTS = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))
#: (seconds, kW, current A): kW 0 is parked, otherwise at least 1 kW (well above idle).
LEGS = st.lists(
    st.tuples(
        st.integers(1, 3 * 3600),
        st.just(0.0) | st.floats(1, 150),
        st.none() | st.floats(0, 64),
    ),
    min_size=0,
    max_size=6,
)


def usage(start: datetime, legs: list[tuple[int, float, float | None]], tail: int) -> SessionUsage:
    at, wh = start, 0.0
    points = [MeterPoint(start, 0.0)]
    for seconds, kw, amps in legs:
        at += timedelta(seconds=seconds)
        wh += kw * seconds / 3.6
        points.append(MeterPoint(at, wh, amps))
    return SessionUsage("p", start, at + timedelta(seconds=tail), tuple(points))


def totals(cdr: Cdr) -> tuple[Decimal, Decimal]:
    assert cdr.total_cost.incl_vat is not None
    return cdr.total_cost.excl_vat, cdr.total_cost.incl_vat


@settings(max_examples=150, deadline=None)
@given(
    tariffs(restricted=True, steps=STEPS),
    STARTS,
    st.lists(st.tuples(st.integers(0, 3 * 3600), st.floats(-20_000, 60_000)), max_size=8),
    st.sampled_from(ZONES),
)
def test_never_negative_whatever_the_meter_does(
    tariff: Tariff, start: datetime, steps: list[tuple[int, float]], tz: ZoneInfo
) -> None:
    at, wh = start, 1000.0
    points = [MeterPoint(start, wh)]
    for seconds, change in steps:
        at += timedelta(seconds=seconds)
        wh = max(wh + change, 0.0)
        points.append(MeterPoint(at, wh))
    cdr = rate_session(SessionUsage("p", start, at, tuple(points)), tariff, tz=tz)
    prices = (
        cdr.total_cost,
        cdr.total_energy_cost,
        cdr.total_time_cost,
        cdr.total_parking_cost,
        cdr.total_fixed_cost,
    )
    for price in prices:
        assert price.incl_vat is not None
        assert Decimal(0) <= price.excl_vat <= price.incl_vat
    assert cdr.volumes.energy_mwh >= 0 and cdr.volumes.billed_energy_mwh >= 0


@settings(max_examples=150, deadline=None)
@given(
    tariffs(restricted=True, steps=st.just(1)),
    STARTS,
    LEGS,
    st.integers(0, 3600),
    st.integers(1, 10 * 3600),
    st.sampled_from(ZONES),
)
def test_price_does_not_fall_when_the_session_lasts_longer(
    tariff: Tariff,
    start: datetime,
    legs: list[tuple[int, float, float | None]],
    tail: int,
    more: int,
    tz: ZoneInfo,
) -> None:
    shorter = rate_session(usage(start, legs, tail), tariff, tz=tz)
    longer = rate_session(usage(start, legs, tail + more), tariff, tz=tz)
    assert totals(longer)[0] >= totals(shorter)[0]
    assert totals(longer)[1] >= totals(shorter)[1]


@settings(max_examples=150, deadline=None)
@given(
    tariffs(restricted=False, steps=STEPS),
    STARTS,
    LEGS,
    st.integers(0, 3600),
    st.floats(1, 4),
)
def test_price_does_not_fall_with_more_energy(
    tariff: Tariff,
    start: datetime,
    legs: list[tuple[int, float, float | None]],
    tail: int,
    factor: float,
) -> None:
    more = [(seconds, kw * factor, amps) for seconds, kw, amps in legs]
    less_cdr = rate_session(usage(start, legs, tail), tariff)
    more_cdr = rate_session(usage(start, more, tail), tariff)
    assert more_cdr.volumes.energy_mwh >= less_cdr.volumes.energy_mwh
    assert totals(more_cdr)[0] >= totals(less_cdr)[0]
    assert totals(more_cdr)[1] >= totals(less_cdr)[1]


@settings(max_examples=50, deadline=None)
@given(tariffs(restricted=True, steps=STEPS), STARTS, LEGS, st.integers(0, 3600))
def test_live_cost_at_the_end_is_the_final_cost(
    tariff: Tariff, start: datetime, legs: list[tuple[int, float, float | None]], tail: int
) -> None:
    finished = usage(start, legs, tail)
    assert finished.ended_at is not None
    live = rate_so_far(replace(finished, ended_at=None), tariff, finished.ended_at)
    assert replace(live, final=True) == rate_session(finished, tariff)
