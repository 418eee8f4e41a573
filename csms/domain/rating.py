"""The exact rater: one session's meter readings and a tariff in, an OCPI-shaped CDR out.

Owns `SessionUsage`/`MeterPoint` (the input), `rate_session` and `rate_so_far` (the live cost of
a session still going on), and the pieces the bulk rater (`csms.domain.rerating`) shares so that
both agree to the cent: the compiled tariff (`compile_tariff`), the local-calendar table
(`calendar_table`), the money rule (`component_minor`) and the min/max clamp (`clamp_total`).

How a session is rated:

1. Readings. Feed the meter start as the first reading and the meter stop as the last, in any
   order. Readings outside [started_at, ended_at] are ignored (flag `sample_outside_session`);
   of readings in the same millisecond the highest register counts. Between consecutive
   readings the energy is the register's rise; a fall (`register_reset`/`register_backwards`,
   named as `metering` names them) or a rise faster than `metering.MAX_PLAUSIBLE_POWER_W`
   (`implausible_jump`) counts as no energy, so the valid part is rated, the CDR is flagged and
   nothing is ever negative. Time before the first and after the last reading has no measured
   energy.
2. Charging or not. A meter interval is charging when its average power is at least
   `idle_power_w`; otherwise its time is parking time (OCPI's PARKING_TIME, "time not
   charging"), and the tariff's `parking_grace_period_s` of it is free.
3. Pieces. Intervals are cut wherever an element could switch: at local time-of-day, midnight
   and daylight-saving changes (time, day and date restrictions, in `tz`), at the session ages of
   min/max_duration, where the energy reaches min/max_kwh and where the grace period ends.
4. Elements. Per piece and per dimension the first element with a component of that dimension
   whose restrictions all hold at the piece's start is used (OCPI). Power is the interval's
   average power; current is what the reading that closes the interval reported (unknown current
   fails any current restriction); kWh and duration count from the session start; mins are
   inclusive and maxes exclusive. Elements with a `reservation` restriction never price a session.
   FLAT is charged once, by the element chosen for FLAT at the session's first piece.
5. Step sizes (OCPI): per dimension the billed volume is rounded up to whole steps of the last
   element that priced it, on the session's total priced volume of that dimension, and the
   extra is billed at that element's price. ENERGY, TIME and PARKING_TIME are rounded separately.
6. Money, min/max: see the rounding rules.

Rounding rules (the bulk rater follows the same, with integers):

- Registers are taken to the mWh (`round(wh * 1000)`, half to even); times to the ms (truncated).
  An interval's energy is shared among its pieces in proportion to time, floored to the mWh
  cumulatively, so the pieces add up to the interval exactly.
- Tariff prices have at most 4 decimals, so each component's cost is an exact rational: the sum
  over its elements of volume x price (x (100 + VAT) / 100 for the amount including VAT). Each
  component's excl and incl amounts are rounded once, to the currency's minor unit, half up.
- `total_cost` is the sum of the rounded components, then min_price/max_price apply. Where the
  bound gives both amounts each applies on its own (OCPI); where it gives only `excl_vat`, the
  amount including VAT is scaled with the clamped one (rounded half up), keeping the session's
  VAT share. Component costs are reported before the clamp.
- CDR hours are rounded to 6 decimals (half up) for display; billing uses milliseconds.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from itertools import pairwise
from math import isfinite, isnan

from csms.domain.cdr import (
    Cdr,
    CdrDimension,
    CdrDimensionType,
    ChargingPeriod,
    Volumes,
)
from csms.domain.metering import MAX_PLAUSIBLE_POWER_W, RESET_SHARE
from csms.domain.tariffs import Price, Tariff, TariffDimension

#: Below this average power (W) a meter interval counts as not charging.
DEFAULT_IDLE_POWER_W = 100
ENERGY, TIME, PARKING, FLAT = (
    TariffDimension.ENERGY,
    TariffDimension.TIME,
    TariffDimension.PARKING_TIME,
    TariffDimension.FLAT,
)
#: The dimensions billed by volume, in the order costs are reported.
METERED = (ENERGY, TIME, PARKING)
#: Base units per billing unit: mWh per kWh, ms per hour, one flat fee.
UNIT = {ENERGY: 1_000_000, TIME: 3_600_000, PARKING: 3_600_000, FLAT: 1}
#: Step-size units in base units: 1 Wh, 1 s.
STEP_UNIT = {ENERGY: 1_000, TIME: 1_000, PARKING: 1_000, FLAT: 1}
PRICE_SCALE = 10**4
VAT_SCALE = 10**6
MAX_POWER_W = int(MAX_PLAUSIBLE_POWER_W)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOURS = Decimal("0.000001")
_DST_PROBE_MS = 6 * 3_600_000


class RatingError(ValueError):
    """The usage cannot be rated as given (naive times, an end before the start, ...)."""


@dataclass(frozen=True, slots=True)
class MeterPoint:
    """One reading of the session's energy import register."""

    timestamp: datetime
    register_wh: float
    #: Sum over phases (A) reported with this reading; it describes the interval it closes.
    current_a: float | None = None


@dataclass(frozen=True, slots=True)
class SessionUsage:
    session_id: str
    started_at: datetime
    #: None while the session goes on (see `rate_so_far`).
    ended_at: datetime | None
    samples: Sequence[MeterPoint] = ()
    #: Anomalies the ledger already flagged; they are carried into the CDR's flags.
    anomalies: tuple[str, ...] = ()


# -- the compiled tariff -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Component:
    price_e4: int
    #: 10**6 + VAT percent * 10**4; 10**6 when no VAT applies.
    factor_e6: int
    #: In base units (mWh, ms); 1 for FLAT.
    step: int


@dataclass(frozen=True, slots=True)
class CompiledElement:
    """A tariff element with its numbers scaled to integers in the rater's units."""

    components: Mapping[TariffDimension, Component]
    never: bool
    calendar: bool
    min_mwh: int | None
    max_mwh: int | None
    min_kw_e4: int | None
    max_kw_e4: int | None
    min_a_e4: int | None
    max_a_e4: int | None
    min_ms: int | None
    max_ms: int | None

    @property
    def restricted(self) -> bool:
        limits = (
            self.min_mwh,
            self.max_mwh,
            self.min_kw_e4,
            self.max_kw_e4,
            self.min_a_e4,
            self.max_a_e4,
            self.min_ms,
            self.max_ms,
        )
        return self.calendar or any(limit is not None for limit in limits)


@dataclass(frozen=True, slots=True)
class RatingTable:
    tariff: Tariff
    exponent: int
    elements: tuple[CompiledElement, ...]
    #: Per dimension, the elements that price it and can apply, in tariff order.
    candidates: Mapping[TariffDimension, tuple[int, ...]]
    grace_ms: int
    min_excl: int | None
    min_incl: int | None
    max_excl: int | None
    max_incl: int | None
    duration_cuts_ms: tuple[int, ...]
    kwh_cuts_mwh: tuple[int, ...]
    has_calendar: bool
    #: Some element that can apply has a restriction.
    restricted: bool


@lru_cache(maxsize=64)
def compile_tariff(tariff: Tariff) -> RatingTable:
    """The tariff in the rater's integer units (cached: tariffs are immutable)."""
    exponent = tariff.minor_unit
    elements: list[CompiledElement] = []
    for element in tariff.elements:
        components = {
            c.type: Component(
                price_e4=_scaled(c.price, 4),
                factor_e6=VAT_SCALE + (0 if c.vat is None else _scaled(c.vat, 4)),
                step=c.step_size * STEP_UNIT[c.type],
            )
            for c in element.price_components
        }
        r = element.restrictions
        if r is None:
            elements.append(CompiledElement(components, False, False, *([None] * 8)))
            continue
        elements.append(
            CompiledElement(
                components=components,
                never=r.reservation is not None,
                calendar=r.has_calendar,
                min_mwh=_opt_scaled(r.min_kwh, 6),
                max_mwh=_opt_scaled(r.max_kwh, 6),
                min_kw_e4=_opt_scaled(r.min_power, 4),
                max_kw_e4=_opt_scaled(r.max_power, 4),
                min_a_e4=_opt_scaled(r.min_current, 4),
                max_a_e4=_opt_scaled(r.max_current, 4),
                min_ms=None if r.min_duration is None else r.min_duration * 1000,
                max_ms=None if r.max_duration is None else r.max_duration * 1000,
            )
        )
    live = [e for e in elements if not e.never]
    bounds = (tariff.min_price, tariff.max_price)
    minor = [
        (_opt_scaled(p.excl_vat, exponent), _opt_scaled(p.incl_vat, exponent))
        if p is not None
        else (None, None)
        for p in bounds
    ]
    return RatingTable(
        tariff=tariff,
        exponent=exponent,
        elements=tuple(elements),
        candidates={
            dim: tuple(i for i, e in enumerate(elements) if dim in e.components and not e.never)
            for dim in TariffDimension
        },
        grace_ms=tariff.parking_grace_period_s * 1000,
        min_excl=minor[0][0],
        min_incl=minor[0][1],
        max_excl=minor[1][0],
        max_incl=minor[1][1],
        duration_cuts_ms=tuple(
            sorted({c for e in live for c in (e.min_ms, e.max_ms) if c is not None and c > 0})
        ),
        kwh_cuts_mwh=tuple(
            sorted({c for e in live for c in (e.min_mwh, e.max_mwh) if c is not None and c > 0})
        ),
        has_calendar=any(e.calendar for e in live),
        restricted=any(e.restricted for e in live),
    )


def _scaled(value: Decimal, digits: int) -> int:
    scaled = value.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {digits} decimal places")
    return int(scaled)


def _opt_scaled(value: Decimal | None, digits: int) -> int | None:
    return None if value is None else _scaled(value, digits)


# -- money -------------------------------------------------------------------------------------


def half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up (both not negative)."""
    return (2 * numerator + denominator) // (2 * denominator)


def component_minor(
    table: RatingTable, dim: TariffDimension, volumes: Mapping[int, int]
) -> tuple[int, int]:
    """The cost excl and incl VAT, in minor units, of billed volumes (base units) per element."""
    excl = incl = 0
    for index, volume in volumes.items():
        component = table.elements[index].components[dim]
        excl += volume * component.price_e4
        incl += volume * component.price_e4 * component.factor_e6
    scale = 10**table.exponent
    denominator = UNIT[dim] * PRICE_SCALE
    return half_up(excl * scale, denominator), half_up(incl * scale, denominator * VAT_SCALE)


def clamp_total(table: RatingTable, excl: int, incl: int) -> tuple[int, int]:
    """The session total (minor units) after min_price and max_price."""
    if table.min_excl is not None and excl < table.min_excl:
        if table.min_incl is None:
            incl = _rescaled(incl, excl, table.min_excl)
        excl = table.min_excl
    if table.min_incl is not None:
        incl = max(incl, table.min_incl)
    if table.max_excl is not None and excl > table.max_excl:
        if table.max_incl is None:
            incl = _rescaled(incl, excl, table.max_excl)
        excl = table.max_excl
    if table.max_incl is not None:
        incl = min(incl, table.max_incl)
    return excl, incl


def _rescaled(incl: int, excl: int, new_excl: int) -> int:
    return new_excl if excl == 0 else half_up(incl * new_excl, excl)


def minor_to_decimal(amount: int, exponent: int) -> Decimal:
    return Decimal(amount).scaleb(-exponent)


# -- the local calendar ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CalendarTable:
    """Where time, day and date restrictions can switch (UTC ms, sorted) and, for each stretch
    between them, which elements' calendar restrictions hold there (`masks[i]` holds before
    `boundaries[i]`, the last one after the last boundary)."""

    boundaries: tuple[int, ...]
    masks: tuple[tuple[bool, ...], ...]

    def mask_at(self, ms: int) -> tuple[bool, ...]:
        return self.masks[bisect_right(self.boundaries, ms)]


def calendar_table(tariff: Tariff, tz: tzinfo, start_ms: int, end_ms: int) -> CalendarTable:
    """The calendar over [start_ms, end_ms]: boundaries at every local start/end time and
    midnight (both occurrences on a day the clocks go back) and at every UTC-offset change."""
    restrictions = [
        e.restrictions if e.restrictions is not None and e.restrictions.has_calendar else None
        for e in tariff.elements
    ]
    if all(r is None for r in restrictions):
        return CalendarTable((), (tuple(True for _ in restrictions),))
    edges = {time(0)}
    for r in restrictions:
        if r is not None:
            edges.update(t for t in (r.start_time, r.end_time) if t is not None)
    cuts = _offset_changes(tz, start_ms, end_ms)
    day = from_ms(start_ms).astimezone(tz).date() - timedelta(days=1)
    last_day = from_ms(end_ms).astimezone(tz).date() + timedelta(days=1)
    while day <= last_day:
        for edge in edges:
            for fold in (0, 1):
                local = datetime.combine(day, edge, tzinfo=tz).replace(fold=fold)
                utc = local.astimezone(UTC)
                if utc.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
                    continue  # a wall-clock time skipped by a daylight-saving change
                ms = to_ms(utc)
                if start_ms < ms < end_ms:
                    cuts.add(ms)
        day += timedelta(days=1)
    boundaries = tuple(sorted(cuts))
    masks = tuple(
        tuple(r is None or r.calendar_allows(from_ms(at).astimezone(tz)) for r in restrictions)
        for at in (start_ms, *boundaries)
    )
    return CalendarTable(boundaries, masks)


def _offset_changes(tz: tzinfo, start_ms: int, end_ms: int) -> set[int]:
    changes: set[int] = set()
    at, offset = start_ms, _offset(tz, start_ms)
    while at < end_ms:
        probe = min(at + _DST_PROBE_MS, end_ms)
        probe_offset = _offset(tz, probe)
        if probe_offset != offset:
            low, high = at, probe
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(tz, middle) == offset:
                    low = middle
                else:
                    high = middle
            if start_ms < high < end_ms:
                changes.add(high)
        at, offset = probe, probe_offset
    return changes


def _offset(tz: tzinfo, ms: int) -> timedelta | None:
    return from_ms(ms).astimezone(tz).utcoffset()


def to_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


# -- rating ------------------------------------------------------------------------------------


def rate_session(
    usage: SessionUsage,
    tariff: Tariff,
    *,
    tz: tzinfo = UTC,
    idle_power_w: int = DEFAULT_IDLE_POWER_W,
) -> Cdr:
    """The CDR of a finished session. `tz` is the station's time zone (for time, day and date
    restrictions); `idle_power_w` the average power below which the EV is not charging."""
    if usage.ended_at is None:
        raise RatingError("the session has not ended: use rate_so_far for a running cost")
    return _rate(usage, usage.ended_at, tariff, tz, idle_power_w, final=True)


def rate_so_far(
    usage: SessionUsage,
    tariff: Tariff,
    now: datetime,
    *,
    tz: tzinfo = UTC,
    idle_power_w: int = DEFAULT_IDLE_POWER_W,
) -> Cdr:
    """The running cost of a session at `now` from the readings so far (a CDR with
    `final=False`). Time since the last reading has no measured energy, so it counts as not
    charging until the next reading shows otherwise."""
    return _rate(replace(usage, ended_at=now), now, tariff, tz, idle_power_w, final=False)


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    energy: int
    charging: bool
    #: Session energy (mWh), age (ms) and parking time (ms) at the piece's start.
    energy_before: int
    age: int
    parked_before: int
    #: The meter interval's energy (mWh) and length (ms), for its average power.
    interval_mwh: int
    interval_ms: int
    current_e4: int | None


def _rate(
    usage: SessionUsage,
    end: datetime,
    tariff: Tariff,
    tz: tzinfo,
    idle_power_w: int,
    *,
    final: bool,
) -> Cdr:
    for name, moment in (("started_at", usage.started_at), ("ended_at", end)):
        if moment.tzinfo is None:
            raise RatingError(f"{name} must be timezone-aware")
    if idle_power_w <= 0:
        raise RatingError("idle_power_w must be positive")
    start_ms, end_ms = to_ms(usage.started_at), to_ms(end)
    if end_ms < start_ms:
        raise RatingError("the session ends before it starts")
    table = compile_tariff(tariff)
    intervals, flags = _intervals(usage.samples, start_ms, end_ms)
    pieces = _pieces(table, tariff, tz, intervals, start_ms, end_ms, idle_power_w)
    chosen = [_choose(table, piece, mask) for piece, mask in pieces]
    volumes: dict[TariffDimension, dict[int, int]] = {dim: {} for dim in TariffDimension}
    last: dict[TariffDimension, int] = {}
    for (piece, _), choice in zip(pieces, chosen, strict=True):
        for dim, volume in zip(METERED, _piece_volumes(piece, table.grace_ms), strict=True):
            index = choice[dim]
            if volume > 0 and index >= 0:
                volumes[dim][index] = volumes[dim].get(index, 0) + volume
                last[dim] = index
    for dim, index in last.items():
        total = sum(volumes[dim].values())
        step = table.elements[index].components[dim].step
        volumes[dim][index] += -(-total // step) * step - total
    flat = chosen[0][FLAT]
    if flat >= 0:
        volumes[FLAT][flat] = 1
    costs = {dim: component_minor(table, dim, volumes[dim]) for dim in TariffDimension}
    excl, incl = clamp_total(
        table, sum(c[0] for c in costs.values()), sum(c[1] for c in costs.values())
    )

    def price(amounts: tuple[int, int]) -> Price:
        return Price(
            minor_to_decimal(amounts[0], table.exponent),
            minor_to_decimal(amounts[1], table.exponent),
        )

    charging_ms = sum(p.end - p.start for p, _ in pieces if p.charging)
    energy_mwh = sum(p.energy for p, _ in pieces)
    return Cdr(
        session_id=usage.session_id,
        tariff_id=tariff.id,
        currency=tariff.currency,
        start_date_time=usage.started_at,
        end_date_time=end,
        charging_periods=_periods(tariff, pieces, chosen, flat >= 0, table.grace_ms),
        total_energy=Decimal(energy_mwh).scaleb(-6),
        total_time=_hours(end_ms - start_ms),
        total_parking_time=_hours(end_ms - start_ms - charging_ms),
        total_cost=price((excl, incl)),
        total_energy_cost=price(costs[ENERGY]),
        total_time_cost=price(costs[TIME]),
        total_parking_cost=price(costs[PARKING]),
        total_fixed_cost=price(costs[FLAT]),
        volumes=Volumes(
            energy_mwh=energy_mwh,
            charging_ms=charging_ms,
            parking_ms=end_ms - start_ms - charging_ms,
            billed_energy_mwh=sum(volumes[ENERGY].values()),
            billed_time_ms=sum(volumes[TIME].values()),
            billed_parking_ms=sum(volumes[PARKING].values()),
        ),
        flags=tuple(dict.fromkeys((*usage.anomalies, *flags))),
        final=final,
    )


_Interval = tuple[int, int, int, int | None]


def _intervals(
    samples: Sequence[MeterPoint], start_ms: int, end_ms: int
) -> tuple[list[_Interval], list[str]]:
    """Meter intervals (start ms, end ms, valid energy mWh, current e4) covering the session."""
    flags: list[str] = []
    readings: list[tuple[int, int, int | None]] = []
    for point in samples:
        if not isfinite(point.register_wh):
            raise RatingError(f"register value {point.register_wh} at {point.timestamp}")
        ms = to_ms(point.timestamp)
        if ms < start_ms or ms > end_ms:
            flags.append("sample_outside_session")
            continue
        current = point.current_a
        amps = None if current is None or isnan(current) else round(current * 10_000)
        readings.append((ms, round(point.register_wh * 1000), amps))
    # Of readings in the same millisecond the highest register (then current) counts, whatever
    # order they came in.
    readings.sort(key=lambda r: (r[0], r[1], r[2] is not None, r[2] or 0))
    points: list[tuple[int, int, int | None]] = []
    for reading in readings:
        if points and points[-1][0] == reading[0]:
            points[-1] = reading
        else:
            points.append(reading)
    intervals: list[_Interval] = []
    if points and points[0][0] > start_ms:
        intervals.append((start_ms, points[0][0], 0, None))
    for (t0, m0, _), (t1, m1, current) in pairwise(points):
        energy = m1 - m0
        if energy < 0:
            flags.append("register_reset" if m1 <= m0 * RESET_SHARE else "register_backwards")
            energy = 0
        elif energy * 3600 > MAX_POWER_W * (t1 - t0):
            flags.append("implausible_jump")
            energy = 0
        intervals.append((t0, t1, energy, current))
    if points and points[-1][0] < end_ms:
        intervals.append((points[-1][0], end_ms, 0, None))
    if not intervals:
        intervals.append((start_ms, end_ms, 0, None))
    return intervals, flags


def _pieces(
    table: RatingTable,
    tariff: Tariff,
    tz: tzinfo,
    intervals: list[_Interval],
    start_ms: int,
    end_ms: int,
    idle_power_w: int,
) -> list[tuple[_Piece, tuple[bool, ...]]]:
    """The intervals cut wherever an element could switch, each with its calendar mask."""
    calendar = calendar_table(tariff, tz, start_ms, end_ms)
    grace = table.grace_ms
    age_cuts = [start_ms + age for age in table.duration_cuts_ms]
    pieces: list[tuple[_Piece, tuple[bool, ...]]] = []
    energy_before = parked_before = 0
    for s, e, energy, current in intervals:
        length = e - s
        charging = length > 0 and energy * 3600 >= idle_power_w * length
        bounds = calendar.boundaries
        cuts = set(bounds[bisect_right(bounds, s) : bisect_left(bounds, e)])
        cuts.update(c for c in age_cuts if s < c < e)
        for threshold in table.kwh_cuts_mwh:
            if energy_before < threshold <= energy_before + energy:
                cut = s + -(-(threshold - energy_before) * length // energy)
                if cut < e:
                    cuts.add(cut)
        if not charging and parked_before < grace < parked_before + length:
            cuts.add(s + grace - parked_before)
        for a, b in pairwise([s, *sorted(cuts), e]):
            done_a = energy * (a - s) // length if length else 0
            done_b = energy * (b - s) // length if length else 0
            piece = _Piece(
                start=a,
                end=b,
                energy=done_b - done_a,
                charging=charging,
                energy_before=energy_before + done_a,
                age=a - start_ms,
                parked_before=parked_before + (0 if charging else a - s),
                interval_mwh=energy,
                interval_ms=length,
                current_e4=current,
            )
            pieces.append((piece, calendar.mask_at(a)))
        energy_before += energy
        if not charging:
            parked_before += length
    return pieces


def _choose(
    table: RatingTable, piece: _Piece, mask: tuple[bool, ...]
) -> dict[TariffDimension, int]:
    """Per dimension, the element that prices the piece (-1: none)."""
    matches = [_holds(element, piece, mask[i]) for i, element in enumerate(table.elements)]
    return {
        dim: next((i for i in table.candidates[dim] if matches[i]), -1) for dim in TariffDimension
    }


def _holds(element: CompiledElement, piece: _Piece, calendar_ok: bool) -> bool:
    if element.never or not calendar_ok:
        return False
    if not _within(piece.energy_before, element.min_mwh, element.max_mwh):
        return False
    if not _within(piece.age, element.min_ms, element.max_ms):
        return False
    # Power in kW * 10**4 is interval_mwh * 36000 / interval_ms: compare cross-multiplied.
    length = piece.interval_ms or 1
    power = piece.interval_mwh * 36_000
    if element.min_kw_e4 is not None and power < element.min_kw_e4 * length:
        return False
    if element.max_kw_e4 is not None and power >= element.max_kw_e4 * length:
        return False
    if element.min_a_e4 is not None or element.max_a_e4 is not None:
        if piece.current_e4 is None:
            return False
        return _within(piece.current_e4, element.min_a_e4, element.max_a_e4)
    return True


def _within(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value < high)


def _piece_volumes(piece: _Piece, grace_ms: int) -> tuple[int, int, int]:
    """ENERGY (mWh), TIME and PARKING_TIME (ms) the piece may be billed for."""
    length = piece.end - piece.start
    if piece.charging:
        return piece.energy, length, 0
    return piece.energy, 0, length if piece.parked_before >= grace_ms else 0


def _periods(
    tariff: Tariff,
    pieces: list[tuple[_Piece, tuple[bool, ...]]],
    chosen: list[dict[TariffDimension, int]],
    flat: bool,
    grace_ms: int,
) -> tuple[ChargingPeriod, ...]:
    """Consecutive pieces with the same state and elements, merged into charging periods."""
    groups: list[tuple[int, int, int, bool]] = []  # start ms, energy, ms, charging
    previous: object = None
    for (piece, _), choice in zip(pieces, chosen, strict=True):
        in_grace = not piece.charging and piece.parked_before < grace_ms
        key = (piece.charging, in_grace, *(choice[d] for d in METERED))
        if key != previous or not groups:
            groups.append((piece.start, 0, 0, piece.charging))
            previous = key
        start, energy, length, charging = groups[-1]
        groups[-1] = (start, energy + piece.energy, length + piece.end - piece.start, charging)
    periods: list[ChargingPeriod] = []
    for i, (start, energy, length, charging) in enumerate(groups):
        dims: list[CdrDimension] = []
        if energy > 0 or charging:
            dims.append(CdrDimension(CdrDimensionType.ENERGY, Decimal(energy).scaleb(-6)))
        if length > 0:
            kind = CdrDimensionType.TIME if charging else CdrDimensionType.PARKING_TIME
            dims.append(CdrDimension(kind, _hours(length)))
        if i == 0 and flat:
            dims.append(CdrDimension(CdrDimensionType.FLAT, Decimal(1)))
        if not dims:
            dims.append(CdrDimension(CdrDimensionType.ENERGY, Decimal(0)))
        periods.append(ChargingPeriod(from_ms(start), tuple(dims), tariff.id))
    return tuple(periods)


def _hours(ms: int) -> Decimal:
    return (Decimal(ms) / UNIT[TIME]).quantize(_HOURS, rounding=ROUND_HALF_UP)
