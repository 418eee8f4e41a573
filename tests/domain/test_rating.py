"""The exact rater on hand-checked examples: each component, each restriction, step sizes, min
and max price, VAT, anomalous meters, live cost and the CDR's shape. Where an example comes from
OCPI 2.2.1's tariff module the test says so."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from csms.domain.cdr import Cdr, CdrDimensionType
from csms.domain.rating import (
    MeterPoint,
    RatingError,
    SessionUsage,
    rate_session,
    rate_so_far,
)
from csms.domain.tariffs import Tariff, parse_tariff

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def tariff(*elements: dict[str, Any], **fields: Any) -> Tariff:
    data = {"id": "T", "currency": "EUR", "last_updated": "2026-01-01T00:00:00Z"}
    return parse_tariff({**data, "elements": list(elements), **fields})


def element(*components: dict[str, Any], **restrictions: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"price_components": list(components)}
    if restrictions:
        out["restrictions"] = restrictions
    return out


def part(kind: str, price: float, vat: float | None = None, step: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "price": price, "step_size": step}
    if vat is not None:
        out["vat"] = vat
    return out


def energy(price: float, vat: float | None = None, step: int = 1) -> dict[str, Any]:
    return part("ENERGY", price, vat, step)


def charging(price: float, vat: float | None = None, step: int = 1) -> dict[str, Any]:
    return part("TIME", price, vat, step)


def parking(price: float, vat: float | None = None, step: int = 1) -> dict[str, Any]:
    return part("PARKING_TIME", price, vat, step)


def flat(price: float, vat: float | None = None) -> dict[str, Any]:
    return part("FLAT", price, vat)


def session(
    start: datetime,
    *legs: tuple[float, float],
    currents: Sequence[float | None] | None = None,
) -> SessionUsage:
    """Readings at the start and after each leg of (minutes, constant kW); kW 0 is parking."""
    at, wh = start, 0.0
    points = [MeterPoint(start, 0.0)]
    for i, (minutes, kw) in enumerate(legs):
        at += timedelta(minutes=minutes)
        wh += kw * 1000 * minutes / 60
        points.append(MeterPoint(at, wh, None if currents is None else currents[i]))
    return SessionUsage("s1", start, at, tuple(points))


def cost(cdr: Cdr) -> tuple[str, str]:
    return str(cdr.total_cost.excl_vat), str(cdr.total_cost.incl_vat)


def amounts(price: Any) -> tuple[str, str]:
    return str(price.excl_vat), str(price.incl_vat)


# -- components --------------------------------------------------------------------------------


def test_energy_ocpi_simple_tariff() -> None:
    # OCPI: 0.25 per kWh, 10% VAT: 20 kWh cost 5.00 excl, 5.50 incl.
    cdr = rate_session(session(MONDAY, (120, 10)), tariff(element(energy(0.25, 10))))
    assert cost(cdr) == ("5.00", "5.50")
    assert cdr.total_energy == Decimal("20") and amounts(cdr.total_energy_cost) == cost(cdr)


def test_flat_start_fee_ocpi_example() -> None:
    # OCPI: start fee 0.50 (20% VAT) + 0.25/kWh (10%): 20 kWh cost 5.50 excl, 6.10 incl.
    cdr = rate_session(
        session(MONDAY, (120, 10)), tariff(element(flat(0.50, 20), energy(0.25, 10)))
    )
    assert cost(cdr) == ("5.50", "6.10")
    assert amounts(cdr.total_fixed_cost) == ("0.50", "0.60")


def test_charging_time_ocpi_example() -> None:
    # OCPI: 2.00 per hour charging, 10% VAT, per minute: 2.5 hours cost 5.00 / 5.50.
    plan = tariff(element(charging(2.00, 10, step=60)))
    assert cost(rate_session(session(MONDAY, (150, 7)), plan)) == ("5.00", "5.50")
    # 2h29m30s is billed as 2h30m.
    assert cost(rate_session(session(MONDAY, (149.5, 7)), plan)) == ("5.00", "5.50")


def test_charging_and_parking_time_ocpi_example() -> None:
    # OCPI: 3.00/h charging (10%, per minute) + 5.00/h parking (20%, per 5 minutes):
    # 150 min charging + 42 min parking cost 11.25 / 12.75 (45 min of parking billed).
    plan = tariff(element(charging(3.00, 10, step=60), parking(5.00, 20, step=300)))
    cdr = rate_session(session(MONDAY, (150, 11), (42, 0)), plan)
    assert cost(cdr) == ("11.25", "12.75")
    assert amounts(cdr.total_parking_cost) == ("3.75", "4.50")
    assert cdr.volumes.billed_parking_ms == 45 * 60_000
    assert cdr.total_time == Decimal("3.2") and cdr.total_parking_time == Decimal("0.7")


def test_parking_with_step_and_start_fee_ocpi_example() -> None:
    # OCPI: 0.50 start (20%), 0.25/kWh (10%), 2.00/h parking (20%) per 15 minutes:
    # 20 kWh then 40 minutes parked cost 7.00 / 7.90.
    plan = tariff(element(flat(0.50, 20), energy(0.25, 10), parking(2.00, 20, step=900)))
    assert cost(rate_session(session(MONDAY, (120, 10), (40, 0)), plan)) == ("7.00", "7.90")


def test_parking_grace_period_is_free_and_counts_all_idle_time() -> None:
    plan = tariff(element(parking(6.00, step=60)), parking_grace_period_s=900)
    after = rate_session(session(MONDAY, (30, 10), (40, 0)), plan)
    assert cost(after) == ("2.50", "2.50")  # 25 of 40 minutes
    assert after.total_parking_time == Decimal("0.666667")  # grace included
    assert cost(rate_session(session(MONDAY, (30, 10), (10, 0)), plan)) == ("0.00", "0.00")
    # Idle before charging uses the grace up too: 5 + 20 idle minutes, 10 billed.
    split = rate_session(session(MONDAY, (5, 0), (30, 10), (20, 0)), plan)
    assert cost(split) == ("1.00", "1.00")
    assert split.volumes.parking_ms == 25 * 60_000 and split.volumes.billed_parking_ms == 600_000


def test_low_power_counts_as_parking_and_its_energy_is_still_billed() -> None:
    plan = tariff(element(energy(0.50), charging(1.00), parking(2.00)))
    # 60 minutes at 50 W (below the 100 W threshold): 0.05 kWh and an hour of parking.
    cdr = rate_session(session(MONDAY, (60, 0.05)), plan)
    assert cdr.volumes.charging_ms == 0 and cdr.volumes.energy_mwh == 50_000
    assert cost(cdr) == ("2.03", "2.03")  # 0.025 -> 0.03, + 2.00
    assert cost(rate_session(session(MONDAY, (60, 0.05)), plan, idle_power_w=40)) == (
        "1.03",
        "1.03",
    )


# -- step sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize(("step", "expected"), [(1, "0.03"), (25, "0.03"), (500, "0.13")])
def test_energy_step_sizes_ocpi_example(step: int, expected: str) -> None:
    # OCPI: 115.2 Wh at 0.25/kWh is billed as 116 Wh (step 1), 125 Wh (25) or 500 Wh (500);
    # 0.125 rounds half up to 0.13.
    cdr = rate_session(session(MONDAY, (6, 1.152)), tariff(element(energy(0.25, step=step))))
    assert cdr.total_cost.excl_vat == Decimal(expected)
    assert cdr.volumes.billed_energy_mwh == -(-115_200 // (step * 1000)) * step * 1000


def test_step_size_of_the_last_element_on_the_whole_volume_ocpi_example_2() -> None:
    # OCPI: 1.20/h before 17:00 per 30 min, 2.40/h after per 15 min. Charging 16:35-17:10:
    # 25 min before (0.50) and the rest of 45 billed minutes after 17:00 (20 min: 0.80).
    plan = step_example()
    start = datetime(2026, 1, 5, 16, 35, tzinfo=UTC)
    cdr = rate_session(session(start, (35, 10)), plan)
    assert cost(cdr) == ("1.30", "1.30")
    assert cdr.volumes.billed_time_ms == 45 * 60_000


def test_step_sizes_per_dimension_ocpi_example_1() -> None:
    # OCPI: charging 16:55-17:05 then parked 2 min: 5 min before 17:00 (0.10) and 10 after
    # (15 billed - 5: 0.40). OCPI's text lets the extra charging minutes cover the parking; we
    # round each dimension on its own, so the 2 parked minutes are billed as 15 (0.25).
    start = datetime(2026, 1, 5, 16, 55, tzinfo=UTC)
    cdr = rate_session(session(start, (10, 10), (2, 0)), step_example())
    assert amounts(cdr.total_time_cost) == ("0.50", "0.50")
    assert amounts(cdr.total_parking_cost) == ("0.25", "0.25")


def step_example() -> Tariff:
    return tariff(
        element(charging(1.20, step=1800), end_time="17:00"),
        element(charging(2.40, step=900), start_time="17:00"),
        element(parking(1.00, step=900), end_time="20:00"),
    )


def test_step_rounding_uses_the_last_element_that_priced_the_dimension() -> None:
    # Parking is free after 20:00: the last paid parking (before 20:00) sets the step.
    plan = tariff(element(parking(1.00, step=900), end_time="20:00"))
    start = datetime(2026, 1, 5, 19, 50, tzinfo=UTC)
    cdr = rate_session(session(start, (5, 10), (10, 0)), plan)
    assert cdr.volumes.billed_parking_ms == 15 * 60_000  # 5 paid minutes rounded up
    assert cost(cdr) == ("0.25", "0.25")


# -- restrictions ------------------------------------------------------------------------------


def night_and_day() -> Tariff:
    return tariff(
        element(energy(0.20), start_time="22:00", end_time="06:00"),
        element(energy(0.40)),
    )


def local(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def test_time_of_day_window_crossing_midnight_in_local_time() -> None:
    evening = rate_session(session(local(2026, 1, 5, 21, 30), (60, 10)), night_and_day(), tz=BERLIN)
    assert cost(evening) == ("3.00", "3.00")  # 5 kWh day + 5 kWh night
    assert [p.start_date_time for p in evening.charging_periods] == [
        local(2026, 1, 5, 21, 30),
        local(2026, 1, 5, 22, 0),
    ]
    overnight = rate_session(
        session(local(2026, 1, 5, 23, 0), (120, 10)), night_and_day(), tz=BERLIN
    )
    assert cost(overnight) == ("4.00", "4.00")  # all inside the window, across midnight
    morning = rate_session(session(local(2026, 1, 6, 5, 0), (120, 10)), night_and_day(), tz=BERLIN)
    assert cost(morning) == ("6.00", "6.00")  # 10 kWh night + 10 kWh day
    # The same instants read in UTC fall elsewhere: the station's time zone matters.
    assert cost(rate_session(session(local(2026, 1, 6, 5, 0), (120, 10)), night_and_day())) == (
        "4.00",
        "4.00",
    )


def test_time_of_day_boundaries_start_inclusive_end_exclusive() -> None:
    at_22 = rate_session(session(local(2026, 1, 5, 22, 0), (30, 10)), night_and_day(), tz=BERLIN)
    at_6 = rate_session(session(local(2026, 1, 6, 6, 0), (30, 10)), night_and_day(), tz=BERLIN)
    assert cost(at_22) == ("1.00", "1.00")
    assert cost(at_6) == ("2.00", "2.00")


def test_time_window_on_the_days_clocks_change() -> None:
    plan = tariff(
        element(energy(0.10), start_time="01:00", end_time="03:00"),
        element(energy(0.40)),
    )
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST, so the window lasts one real hour.
    spring = rate_session(session(local(2026, 3, 29, 0, 0), (180, 10)), plan, tz=BERLIN)
    assert cost(spring) == ("9.00", "9.00")  # 10 kWh at 0.10 + 20 kWh at 0.40
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET, so 02:00-03:00 happens twice.
    plan = tariff(
        element(energy(0.10), start_time="02:00", end_time="03:00"),
        element(energy(0.40)),
    )
    autumn = rate_session(session(local(2026, 10, 25, 0, 0), (300, 10)), plan, tz=BERLIN)
    assert cost(autumn) == ("14.00", "14.00")  # 20 kWh at 0.10 + 30 kWh at 0.40


def test_day_of_week() -> None:
    plan = tariff(element(energy(0.30), day_of_week=["SATURDAY", "SUNDAY"]), element(energy(0.40)))
    friday_night = datetime(2026, 1, 2, 23, 0, tzinfo=UTC)
    cdr = rate_session(session(friday_night, (120, 10)), plan)
    assert cost(cdr) == ("7.00", "7.00")  # 10 kWh Friday + 10 kWh Saturday
    assert len(cdr.charging_periods) == 2


def test_date_range_end_date_is_exclusive() -> None:
    plan = tariff(
        element(energy(0.10), start_date="2026-01-02", end_date="2026-01-03"),
        element(energy(0.40)),
    )
    cdr = rate_session(session(datetime(2026, 1, 1, 23, 0, tzinfo=UTC), (26 * 60, 1)), plan)
    assert cost(cdr) == ("3.20", "3.20")  # 1 kWh + 24 kWh promo + 1 kWh


def test_kwh_tiers_split_energy_and_time_at_the_threshold() -> None:
    plan = tariff(
        element(energy(0), charging(6.00), max_kwh=5),
        element(energy(0.50, 20), charging(0)),
    )
    cdr = rate_session(session(MONDAY, (60, 10)), plan)
    # The first 5 kWh are free but their 30 minutes cost 3.00; then 5 kWh at 0.50.
    assert amounts(cdr.total_energy_cost) == ("2.50", "3.00")
    assert amounts(cdr.total_time_cost) == ("3.00", "3.00")
    # min_kwh is inclusive: from exactly 5 kWh on the second element applies.
    inclusive = tariff(element(energy(0.50), min_kwh=5), element(energy(0)))
    assert cost(rate_session(session(MONDAY, (30, 10), (30, 10)), inclusive)) == ("2.50", "2.50")


def test_power_restrictions_ocpi_example() -> None:
    # OCPI: 0.20/kWh below 16 kW, 0.35 from 16 to 32 kW, else 0.50: 1 kWh at 6 kW, 40 kWh at
    # 48 kW and 0.5 kWh at 4 kW cost 20.30.
    plan = tariff(
        element(energy(0.20), max_power=16),
        element(energy(0.35), max_power=32),
        element(energy(0.50)),
    )
    assert cost(rate_session(session(MONDAY, (10, 6), (50, 48), (7.5, 4)), plan)) == (
        "20.30",
        "20.30",
    )
    # max_power is exclusive: exactly 16 kW is the second element's.
    assert cost(rate_session(session(MONDAY, (60, 16)), plan)) == ("5.60", "5.60")


def test_current_restrictions_and_unknown_current() -> None:
    plan = tariff(element(energy(0.50), min_current=32), element(energy(0.30)))
    usage = session(MONDAY, (60, 7), (60, 22), (60, 22), currents=[30, 32, None])
    # 7 kWh at 30 A (0.30), 22 kWh at 32 A (min inclusive: 0.50), 22 kWh unknown (0.30).
    assert cost(rate_session(usage, plan)) == ("19.70", "19.70")


def test_duration_restrictions_ocpi_example() -> None:
    # OCPI: free for 30 minutes, 0.25/kWh after, 0.40/kWh after an hour. A 40-minute session
    # with 5 kWh in the first 30 minutes and 1.2 kWh after costs 0.30.
    plan = tariff(
        element(energy(0), max_duration=1800),
        element(energy(0.25), max_duration=3600),
        element(energy(0.40)),
    )
    assert cost(rate_session(session(MONDAY, (30, 10), (10, 7.2)), plan)) == ("0.30", "0.30")
    # min_duration: parking is billed only from the second hour of the session on.
    late = tariff(element(parking(2.00), min_duration=3600))
    assert cost(rate_session(session(MONDAY, (30, 10), (60, 0)), late)) == ("1.00", "1.00")


def test_reservation_elements_never_price_a_session() -> None:
    plan = tariff(
        element(flat(5.00), charging(9.00), reservation="RESERVATION"),
        element(charging(1.00)),
    )
    assert cost(rate_session(session(MONDAY, (60, 10)), plan)) == ("1.00", "1.00")


def test_flat_fee_is_decided_at_the_start_of_the_session() -> None:
    plan = tariff(element(flat(2.00), start_time="18:00"), element(energy(0.10)))
    before = rate_session(session(datetime(2026, 1, 5, 17, 50, tzinfo=UTC), (30, 10)), plan)
    after = rate_session(session(datetime(2026, 1, 5, 18, 10, tzinfo=UTC), (30, 10)), plan)
    assert cost(before) == ("0.50", "0.50")
    assert cost(after) == ("2.50", "2.50")
    flat_periods = [
        [d.type for d in p.dimensions if d.type is CdrDimensionType.FLAT]
        for p in after.charging_periods
    ]
    assert flat_periods[0] == [CdrDimensionType.FLAT]


# -- money -------------------------------------------------------------------------------------


def test_min_price_ocpi_example() -> None:
    # OCPI: 0.25/kWh (10%) with a minimum of 0.50 / 0.55: 20 kWh cost 5.00 / 5.50, 1 kWh the
    # minimum; the component cost stays what was consumed.
    plan = tariff(element(energy(0.25, 10)), min_price={"excl_vat": 0.50, "incl_vat": 0.55})
    assert cost(rate_session(session(MONDAY, (120, 10)), plan)) == ("5.00", "5.50")
    small = rate_session(session(MONDAY, (6, 10)), plan)
    assert cost(small) == ("0.50", "0.55")
    assert amounts(small.total_energy_cost) == ("0.25", "0.28")


def test_max_price_ocpi_example() -> None:
    # OCPI: 0.50 start (20%) + 0.25/kWh (10%), at most 10.00 / 11.00: 50 kWh cost the maximum,
    # 30 kWh cost 8.00 / 8.85.
    plan = tariff(
        element(flat(0.50, 20), energy(0.25, 10)), max_price={"excl_vat": 10, "incl_vat": 11}
    )
    assert cost(rate_session(session(MONDAY, (300, 10)), plan)) == ("10.00", "11.00")
    assert cost(rate_session(session(MONDAY, (180, 10)), plan)) == ("8.00", "8.85")


def test_bounds_without_incl_vat_keep_the_sessions_vat_share() -> None:
    plan = tariff(element(energy(0.25, 20)), min_price={"excl_vat": 2}, max_price={"excl_vat": 4})
    assert cost(rate_session(session(MONDAY, (30, 10)), plan)) == ("2.00", "2.40")
    assert cost(rate_session(session(MONDAY, (120, 10)), plan)) == ("4.00", "4.80")


def test_vat_per_component_rounded_once_per_component() -> None:
    plan = tariff(element(energy(0.30, 19), parking(1.00, 7), flat(1.00)))
    cdr = rate_session(session(MONDAY, (60, 10), (30, 0)), plan)
    assert amounts(cdr.total_energy_cost) == ("3.00", "3.57")
    assert amounts(cdr.total_parking_cost) == ("0.50", "0.54")  # 0.535 rounds half up
    assert amounts(cdr.total_fixed_cost) == ("1.00", "1.00")  # no VAT given: none applies
    assert cost(cdr) == ("4.50", "5.11")


def test_minor_units_follow_the_currency() -> None:
    plan = parse_tariff(
        {
            "id": "yen",
            "currency": "JPY",
            "last_updated": "2026-01-01T00:00:00Z",
            "elements": [element(energy(33))],
        }
    )
    cdr = rate_session(session(MONDAY, (9, 10)), plan)  # 1.5 kWh: 49.5 yen
    assert cost(cdr) == ("50", "50")


# -- meters, sessions, live cost ---------------------------------------------------------------


def readings(*points: tuple[int, float]) -> SessionUsage:
    samples = tuple(MeterPoint(MONDAY + timedelta(minutes=m), wh) for m, wh in points)
    return SessionUsage("s1", MONDAY, samples[-1].timestamp, samples)


@pytest.mark.parametrize(
    ("points", "wh", "flag"),
    [
        (((0, 1000), (30, 6000), (40, 5000), (60, 7000)), 7000, "register_backwards"),
        (((0, 1000), (30, 6000), (40, 10), (60, 2010)), 7000, "register_reset"),
        (((0, 1000), (1, 900_000_000), (60, 900_001_000)), 1000, "implausible_jump"),
        (((0, 9000), (30, 5000), (60, 1000)), 0, "register_backwards"),
    ],
)
def test_anomalous_registers_rate_the_valid_part_and_flag_it(
    points: tuple[tuple[int, float], ...], wh: int, flag: str
) -> None:
    cdr = rate_session(readings(*points), tariff(element(energy(0.30), charging(1.00))))
    assert cdr.volumes.energy_mwh == wh * 1000
    assert flag in cdr.flags
    assert cdr.total_cost.excl_vat >= 0 and cdr.total_energy_cost.excl_vat >= 0
    assert "meter anomalies" in str(cdr.to_ocpi().get("remark"))


def test_readings_outside_the_session_and_in_the_same_millisecond() -> None:
    base = session(MONDAY, (60, 10))
    extra = (
        MeterPoint(MONDAY - timedelta(minutes=5), 5.0),
        # Same millisecond as the stop: the highest register counts, in whatever order.
        MeterPoint(MONDAY + timedelta(minutes=60), 12_000.0),
        MeterPoint(MONDAY + timedelta(minutes=60), 11_000.0),
    )
    plan = tariff(element(energy(0.10)))
    for samples in ((*base.samples, *extra), (*extra, *reversed(base.samples))):
        usage = SessionUsage("s1", MONDAY, base.ended_at, samples, ("known",))
        cdr = rate_session(usage, plan)
        assert cdr.volumes.energy_mwh == 12_000_000
        assert cdr.flags == ("known", "sample_outside_session")


def test_no_readings_and_zero_length_sessions() -> None:
    plan = tariff(element(flat(1.00), parking(6.00)))
    empty = SessionUsage("s1", MONDAY, MONDAY + timedelta(minutes=30), ())
    assert cost(rate_session(empty, plan)) == ("4.00", "4.00")
    instant = rate_session(SessionUsage("s1", MONDAY, MONDAY, ()), plan)
    assert cost(instant) == ("1.00", "1.00")
    assert len(instant.charging_periods) == 1


def test_live_cost_grows_with_the_readings_and_meets_the_final_cost() -> None:
    plan = tariff(element(energy(0.30), parking(6.00)), parking_grace_period_s=600)
    full = session(MONDAY, (30, 10), (30, 10), (30, 0))
    running = SessionUsage("s1", MONDAY, None, full.samples[:2])
    half = rate_so_far(running, plan, MONDAY + timedelta(minutes=30))
    assert cost(half) == ("1.50", "1.50") and not half.final
    # Ten minutes after the last reading there is no energy yet: idle, within the grace.
    later = rate_so_far(running, plan, MONDAY + timedelta(minutes=40))
    assert cost(later) == ("1.50", "1.50")
    done = rate_so_far(SessionUsage("s1", MONDAY, None, full.samples), plan, full.ended_at)  # type: ignore[arg-type]
    final = rate_session(full, plan)
    assert cost(done) == cost(final) == ("5.00", "5.00") and final.final
    with pytest.raises(RatingError):
        rate_session(running, plan)


def test_bad_usage_is_refused() -> None:
    plan = tariff(element(energy(0.30)))
    with pytest.raises(RatingError):
        rate_session(SessionUsage("s", MONDAY, MONDAY - timedelta(seconds=1)), plan)
    with pytest.raises(RatingError):
        rate_session(SessionUsage("s", MONDAY.replace(tzinfo=None), MONDAY), plan)
    with pytest.raises(RatingError):
        rate_session(session(MONDAY, (10, 10)), plan, idle_power_w=0)
    bad = SessionUsage("s", MONDAY, MONDAY, (MeterPoint(MONDAY, float("nan")),))
    with pytest.raises(RatingError):
        rate_session(bad, plan)


def test_cdr_to_ocpi_is_json_with_periods_and_totals() -> None:
    plan = tariff(element(flat(0.50, 20), energy(0.25, 10), parking(2.00, 20, step=900)))
    cdr = rate_session(session(MONDAY, (120, 10), (40, 0)), plan)
    out = orjson.loads(orjson.dumps(cdr.to_ocpi(plan)))
    assert out["session_id"] == "s1" and out["currency"] == "EUR"
    assert out["start_date_time"] == "2026-01-05T09:00:00Z"
    assert out["end_date_time"] == "2026-01-05T11:40:00Z"
    assert out["total_cost"] == {"excl_vat": 7.0, "incl_vat": 7.9}
    assert out["total_energy"] == 20 and out["total_time"] == 2.666667
    assert out["total_parking_time"] == 0.666667
    assert out["total_parking_cost"] == {"excl_vat": 1.5, "incl_vat": 1.8}
    assert out["tariffs"] == [plan.to_ocpi()]
    assert out["charging_periods"] == [
        {
            "start_date_time": "2026-01-05T09:00:00Z",
            "dimensions": [
                {"type": "ENERGY", "volume": 20},
                {"type": "TIME", "volume": 2},
                {"type": "FLAT", "volume": 1},
            ],
            "tariff_id": "T",
        },
        {
            "start_date_time": "2026-01-05T11:00:00Z",
            "dimensions": [{"type": "PARKING_TIME", "volume": 0.666667}],
            "tariff_id": "T",
        },
    ]
    assert "remark" not in out
