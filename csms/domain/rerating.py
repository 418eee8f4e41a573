"""Bulk re-rating with numpy: many sessions against one tariff, to the cent of the exact rater.

Owns two vectorised entry points and their column contracts:

- `rerate_samples(samples, sessions, tariff, tz=, idle_power_w=)` rates from the ledger's meter
  readings and is exact for everything the exact rater (`csms.domain.rating`) supports: time,
  day and date restrictions, kWh, power, current and duration restrictions, grace period, step
  sizes, flat fees, min/max price, VAT and anomalous registers. It runs the same pipeline on
  arrays: meter intervals, pieces cut at the same boundaries, the same integer units, and the
  shared `calendar_table`, `component_minor` and `clamp_total`.
    `samples`: session_id, timestamp (UTC, aware or naive-as-UTC), register_wh (float) and
    optionally current_a (float, NaN when unknown) - one row per meter_samples row.
    `sessions`: session_id (unique), started_at, ended_at (UTC; finished sessions only).
    Readings of sessions not in `sessions` are ignored.
- `rerate_totals(totals, tariff)` rates from one row per session: session_id, energy_wh,
  charging_s, parking_s (for example a CDR's `volumes`). Those totals decide the cost only when
  no element that can apply has a restriction, so for any other tariff it raises `RerateError`
  (use `rerate_samples`).

Both return a DataFrame indexed by session_id with int64 amounts in the currency's minor unit
(exact; `df.attrs` holds `currency` and `minor_unit`): energy_excl, energy_incl, time_excl,
time_incl, parking_excl, parking_incl, fixed_excl, fixed_incl, total_excl, total_incl.

Money uses the exact rater's integer rationals in int64, rounded half up. Where a numerator
could leave int64 (very large volumes or prices) it is summed in float64 instead, and every row
whose float lies within 1e-6 of a half minor unit is recomputed with Python integers
(`component_minor`), so the result is always the exact rater's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, tzinfo
from math import gcd

import numpy as np
import numpy.typing as npt
import pandas as pd

from csms.domain.rating import (
    DEFAULT_IDLE_POWER_W,
    ENERGY,
    FLAT,
    MAX_POWER_W,
    METERED,
    PARKING,
    PRICE_SCALE,
    TIME,
    UNIT,
    VAT_SCALE,
    RatingTable,
    calendar_table,
    clamp_total,
    compile_tariff,
    component_minor,
)
from csms.domain.tariffs import Tariff, TariffDimension

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

COST_COLUMNS = (
    "energy_excl",
    "energy_incl",
    "time_excl",
    "time_incl",
    "parking_excl",
    "parking_incl",
    "fixed_excl",
    "fixed_incl",
    "total_excl",
    "total_incl",
)
_PREFIX = {ENERGY: "energy", TIME: "time", PARKING: "parking", FLAT: "fixed"}
#: Products above this go through Python integers instead of int64.
_INT64_SAFE = 2**62


class RerateError(ValueError):
    """The frames or the tariff cannot be re-rated as asked; the message says why."""


def rerate_totals(totals: pd.DataFrame, tariff: Tariff) -> pd.DataFrame:
    """Costs per session from its totals; only for tariffs without restrictions."""
    table = compile_tariff(tariff)
    if table.restricted:
        raise RerateError(
            f"tariff {tariff.id} has restrictions: its cost depends on when and how the energy "
            "flowed, not only on the totals; use rerate_samples"
        )
    _require(totals, ("session_id", "energy_wh", "charging_s", "parking_s"), "totals")
    energy = _to_int(totals["energy_wh"], 1000, "energy_wh")
    charging = _to_int(totals["charging_s"], 1000, "charging_s")
    parking = np.maximum(_to_int(totals["parking_s"], 1000, "parking_s") - table.grace_ms, 0)
    sessions = len(totals)
    volumes: dict[TariffDimension, Ints] = {}
    for dim, volume in zip(METERED, (energy, charging, parking), strict=True):
        candidates = table.candidates[dim]
        matrix = np.zeros((sessions, len(candidates)), dtype=np.int64)
        if candidates:
            step = table.elements[candidates[0]].components[dim].step
            matrix[:, 0] = -(-volume // step) * step
        volumes[dim] = matrix
    flat = np.full(sessions, table.candidates[FLAT][0] if table.candidates[FLAT] else -1)
    return _costs(table, totals["session_id"].to_numpy(), volumes, flat)


def rerate_samples(
    samples: pd.DataFrame,
    sessions: pd.DataFrame,
    tariff: Tariff,
    *,
    tz: tzinfo = UTC,
    idle_power_w: int = DEFAULT_IDLE_POWER_W,
) -> pd.DataFrame:
    """Costs per session from the meter readings, as `rate_session` would give them."""
    if idle_power_w <= 0:
        raise RerateError("idle_power_w must be positive")
    _require(samples, ("session_id", "timestamp", "register_wh"), "samples")
    _require(sessions, ("session_id", "started_at", "ended_at"), "sessions")
    table = compile_tariff(tariff)
    ids = pd.Index(sessions["session_id"])
    if not ids.is_unique:
        raise RerateError("sessions: session_id must be unique")
    start = _epoch_ms(sessions["started_at"], "started_at")
    end = _epoch_ms(sessions["ended_at"], "ended_at")
    if (end < start).any():
        raise RerateError("sessions: a session ends before it starts")
    iv = _intervals(samples, ids, start, end)
    pieces = _pieces(table, tariff, tz, iv, start, end, idle_power_w)
    volumes, flat = _volumes(table, pieces, len(ids))
    return _costs(table, ids.to_numpy(), volumes, flat)


# -- intervals ---------------------------------------------------------------------------------


class _Intervals:
    """Meter intervals sorted by session and start."""

    def __init__(
        self, session: Ints, start: Ints, end: Ints, energy: Ints, current: Ints, known: Bools
    ) -> None:
        # The parts come as runs sorted by session and, within one, by start (heads, then
        # readings in time order, then tails): a stable sort by session merges them in order.
        order = np.argsort(session, kind="stable")
        self.session = session[order]
        self.start = start[order]
        self.end = end[order]
        self.energy = energy[order]
        self.current = current[order]
        self.known = known[order]
        self.length = self.end - self.start


def _intervals(samples: pd.DataFrame, ids: pd.Index, start: Ints, end: Ints) -> _Intervals:
    rank = ids.get_indexer(samples["session_id"]).astype(np.int64)
    at = _epoch_ms(samples["timestamp"], "timestamp")
    wh = samples["register_wh"].to_numpy(dtype=np.float64)
    if not np.isfinite(wh).all():
        raise RerateError("samples: register_wh must be finite")
    amps = (
        samples["current_a"].to_numpy(dtype=np.float64)
        if "current_a" in samples
        else np.full(len(samples), np.nan)
    )
    keep = rank >= 0
    keep[keep] = (at[keep] >= start[rank[keep]]) & (at[keep] <= end[rank[keep]])
    rank, at, wh, amps = rank[keep], at[keep], wh[keep], amps[keep]
    mwh = np.rint(wh * 1000).astype(np.int64)
    known = ~np.isnan(amps)
    current = np.where(known, np.rint(np.where(known, amps, 0) * 10_000), 0).astype(np.int64)
    # Of readings in the same millisecond the highest register (then current) counts: sort by
    # all of that, or, when the rows already come by session and time, only the ties.
    columns = (rank, at, mwh, known, current)
    same = (rank[1:] == rank[:-1]) & (at[1:] == at[:-1])
    if not ((rank[1:] > rank[:-1]) | (rank[1:] == rank[:-1]) & (at[1:] >= at[:-1])).all():
        order = np.lexsort(columns[::-1])
        rank, at, mwh, known, current = (a[order] for a in columns)
    elif same.any():
        tied = np.zeros(len(rank), dtype=bool)
        tied[:-1] |= same
        tied[1:] |= same
        rows = np.flatnonzero(tied)
        order = rows[np.lexsort(tuple(a[rows] for a in columns[::-1]))]
        for a in columns:
            a[rows] = a[order]
    last = np.ones(len(rank), dtype=bool)
    last[:-1] = (rank[1:] != rank[:-1]) | (at[1:] != at[:-1])
    rank, at, mwh, known, current = (a[last] for a in (rank, at, mwh, known, current))

    pair = np.flatnonzero(rank[1:] == rank[:-1])
    rise = mwh[pair + 1] - mwh[pair]
    seconds = at[pair + 1] - at[pair]
    valid = (rise >= 0) & (rise * 3600 <= MAX_POWER_W * seconds)
    first = np.ones(len(rank), dtype=bool)
    first[1:] = rank[1:] != rank[:-1]
    final = np.ones(len(rank), dtype=bool)
    final[:-1] = rank[1:] != rank[:-1]
    head = np.flatnonzero(first & (at > start[rank]))
    tail = np.flatnonzero(final & (at < end[rank]))

    def part(rows: Ints, begin: Ints, until: Ints) -> tuple[Ints, ...]:
        blank = np.zeros(len(rows), np.int64)
        return rows, begin, until, blank, blank, blank

    parts = [
        part(rank[head], start[rank[head]], at[head]),
        (
            rank[pair],
            at[pair],
            at[pair + 1],
            np.where(valid, rise, 0),
            current[pair + 1],
            known[pair + 1].astype(np.int64),
        ),
        part(rank[tail], at[tail], end[rank[tail]]),
    ]
    covered = np.zeros(len(start), dtype=bool)
    for rows, *_ in parts:
        covered[rows] = True
    bare = np.flatnonzero(~covered)
    parts.append(part(bare, start[bare], end[bare]))
    session, begin, until, energy, amps_e4, measured = (
        np.concatenate([p[i] for p in parts]) for i in range(6)
    )
    return _Intervals(session, begin, until, energy, amps_e4, measured.astype(bool))


# -- pieces ------------------------------------------------------------------------------------


class _Pieces:
    """The intervals cut at every boundary, with what the restrictions look at."""

    session: Ints
    start: Ints
    length: Ints
    energy: Ints
    charging: Bools
    energy_before: Ints
    age: Ints
    parked_before: Ints
    interval_mwh: Ints
    interval_ms: Ints
    current: Ints
    known: Bools
    calendar: Bools


def _pieces(
    table: RatingTable,
    tariff: Tariff,
    tz: tzinfo,
    iv: _Intervals,
    start: Ints,
    end: Ints,
    idle_power_w: int,
) -> _Pieces:
    count = len(iv.start)
    charging = (iv.length > 0) & (iv.energy * 3600 >= idle_power_w * iv.length)
    energy_before = _exclusive_running_sum(iv.energy, iv.session)
    parked_before = _exclusive_running_sum(np.where(charging, 0, iv.length), iv.session)

    cut_at: list[Ints] = [iv.start]
    cut_iv: list[Ints] = [np.arange(count)]
    first, last = (int(start.min()), int(end.max())) if len(start) else (0, 0)
    calendar = calendar_table(tariff, tz, first, last)
    bounds = np.asarray(calendar.boundaries, dtype=np.int64)
    if len(bounds):
        low = np.searchsorted(bounds, iv.start, side="right")
        many = np.maximum(np.searchsorted(bounds, iv.end, side="left") - low, 0)
        owner = np.repeat(np.arange(count), many)
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(many) - many, many)
        cut_iv.append(owner)
        cut_at.append(bounds[low[owner] + offset])
    for age in table.duration_cuts_ms:
        at = start[iv.session] + age
        inside = (iv.start < at) & (at < iv.end)
        cut_iv.append(np.flatnonzero(inside))
        cut_at.append(at[inside])
    for threshold in table.kwh_cuts_mwh:
        crossing = (energy_before < threshold) & (threshold <= energy_before + iv.energy)
        rows = np.flatnonzero(crossing)
        need = threshold - energy_before[rows]
        at = iv.start[rows] + _ceil_mul_div(need, iv.length[rows], iv.energy[rows])
        inside = at < iv.end[rows]
        cut_iv.append(rows[inside])
        cut_at.append(at[inside])
    if table.grace_ms:
        grace = table.grace_ms
        rows = np.flatnonzero(
            ~charging & (parked_before < grace) & (grace < parked_before + iv.length)
        )
        cut_iv.append(rows)
        cut_at.append(iv.start[rows] + grace - parked_before[rows])

    # Cuts lie strictly inside their interval: sort and dedupe them, then a stable sort by
    # interval puts each interval's start before its cuts.
    owner = np.concatenate(cut_iv[1:]) if len(cut_iv) > 1 else np.zeros(0, np.int64)
    at = np.concatenate(cut_at[1:]) if len(cut_at) > 1 else np.zeros(0, np.int64)
    order = np.lexsort((at, owner))
    owner, at = owner[order], at[order]
    distinct = np.ones(len(at), dtype=bool)
    distinct[1:] = (owner[1:] != owner[:-1]) | (at[1:] != at[:-1])
    owner = np.concatenate([cut_iv[0], owner[distinct]])
    at = np.concatenate([cut_at[0], at[distinct]])
    order = np.argsort(owner, kind="stable")
    owner, at = owner[order], at[order]
    until = np.empty_like(at)
    until[:-1] = at[1:]
    last_of_interval = np.ones(len(at), dtype=bool)
    last_of_interval[:-1] = owner[1:] != owner[:-1]
    until[last_of_interval] = iv.end[owner[last_of_interval]]

    s, length, energy = iv.start[owner], iv.length[owner], iv.energy[owner]
    done_from = _floor_mul_div(energy, at - s, length)
    done_until = _floor_mul_div(energy, until - s, length)
    pieces = _Pieces()
    pieces.session = iv.session[owner]
    pieces.start = at
    pieces.length = until - at
    pieces.energy = done_until - done_from
    pieces.charging = charging[owner]
    pieces.energy_before = energy_before[owner] + done_from
    pieces.age = at - start[pieces.session]
    pieces.parked_before = parked_before[owner] + np.where(pieces.charging, 0, at - s)
    pieces.interval_mwh = energy
    pieces.interval_ms = length
    pieces.current = iv.current[owner]
    pieces.known = iv.known[owner]
    masks = np.asarray(calendar.masks, dtype=bool).reshape(len(calendar.masks), -1)
    pieces.calendar = masks[np.searchsorted(bounds, at, side="right")]
    return pieces


def _exclusive_running_sum(values: Ints, session: Ints) -> Ints:
    """Per row, the sum of the earlier rows of the same session (rows sorted by session)."""
    running = np.cumsum(values) - values
    starts = np.ones(len(session), dtype=bool)
    starts[1:] = session[1:] != session[:-1]
    first = np.flatnonzero(starts)
    result: Ints = running - np.repeat(running[first], np.diff(np.append(first, len(session))))
    return result


def _floor_mul_div(a: Ints, b: Ints, c: Ints) -> Ints:
    """a * b // c per row (0 where c is 0), exact even where a * b leaves int64."""
    divisor = np.where(c == 0, 1, c)
    big = np.abs(a.astype(np.float64) * b.astype(np.float64)) >= _INT64_SAFE
    out = np.where(c == 0, 0, np.where(big, 0, a) * np.where(big, 0, b) // divisor)
    for row in np.flatnonzero(big & (c != 0)):
        out[row] = int(a[row]) * int(b[row]) // int(c[row])
    return out.astype(np.int64)


def _ceil_mul_div(a: Ints, b: Ints, c: Ints) -> Ints:
    return -_floor_mul_div(-a, b, c)


# -- elements, volumes, steps ------------------------------------------------------------------


def _volumes(
    table: RatingTable, pieces: _Pieces, sessions: int
) -> tuple[dict[TariffDimension, Ints], Ints]:
    """Billed volumes per session and candidate element (after steps), and the flat element."""
    matches = [_holds(table, i, pieces) for i in range(len(table.elements))]
    chosen = {dim: _first_match(table.candidates[dim], matches) for dim in TariffDimension}
    parking = ~pieces.charging & (pieces.parked_before >= table.grace_ms)
    billable = {
        ENERGY: pieces.energy,
        TIME: np.where(pieces.charging, pieces.length, 0),
        PARKING: np.where(parking, pieces.length, 0),
    }
    volumes: dict[TariffDimension, Ints] = {}
    for dim in METERED:
        candidates = table.candidates[dim]
        position = np.full(len(table.elements) + 1, -1, dtype=np.int64)
        position[list(candidates)] = np.arange(len(candidates))
        column = position[chosen[dim]]
        used = (billable[dim] > 0) & (column >= 0)
        width = max(len(candidates), 1)
        key = pieces.session[used] * width + column[used]
        sums = np.bincount(key, weights=billable[dim][used], minlength=sessions * width)
        matrix = np.rint(sums).astype(np.int64).reshape(sessions, width)[:, : len(candidates)]
        rows = np.flatnonzero(used)
        if len(rows):
            ends = np.ones(len(rows), dtype=bool)
            ends[:-1] = pieces.session[rows[1:]] != pieces.session[rows[:-1]]
            who, where = pieces.session[rows[ends]], column[rows[ends]]
            steps = np.asarray([table.elements[i].components[dim].step for i in candidates])
            total = matrix[who].sum(axis=1)
            step = steps[where]
            matrix[who, where] += -(-total // step) * step - total
        volumes[dim] = matrix
    first = np.searchsorted(pieces.session, np.arange(sessions), side="left")
    return volumes, chosen[FLAT][first]


def _holds(table: RatingTable, index: int, p: _Pieces) -> Bools:
    element = table.elements[index]
    if element.never:
        return np.zeros(len(p.start), dtype=bool)
    ok = p.calendar[:, index].copy()
    for value, low, high in (
        (p.energy_before, element.min_mwh, element.max_mwh),
        (p.age, element.min_ms, element.max_ms),
    ):
        ok &= _within(value, low, high)
    length = np.where(p.interval_ms == 0, 1, p.interval_ms)
    power = p.interval_mwh * 36_000
    if element.min_kw_e4 is not None:
        ok &= power >= element.min_kw_e4 * length
    if element.max_kw_e4 is not None:
        ok &= power < element.max_kw_e4 * length
    if element.min_a_e4 is not None or element.max_a_e4 is not None:
        ok &= p.known & _within(p.current, element.min_a_e4, element.max_a_e4)
    return ok


def _within(values: Ints, low: int | None, high: int | None) -> Bools:
    ok = np.ones(len(values), dtype=bool)
    if low is not None:
        ok &= values >= low
    if high is not None:
        ok &= values < high
    return ok


def _first_match(candidates: Iterable[int], matches: list[Bools]) -> Ints:
    """Per piece, the first candidate element that holds (-1: none); -1 indexes the sentinel."""
    size = len(matches[0]) if matches else 0
    chosen = np.full(size, -1, dtype=np.int64)
    for index in reversed(tuple(candidates)):
        chosen = np.where(matches[index], index, chosen)
    return chosen


# -- money -------------------------------------------------------------------------------------


def _costs(
    table: RatingTable,
    session_ids: npt.NDArray[np.generic],
    volumes: dict[TariffDimension, Ints],
    flat: Ints,
) -> pd.DataFrame:
    columns: dict[str, Ints] = {}
    for dim in METERED:
        excl, incl = _component(table, dim, volumes[dim])
        columns[f"{_PREFIX[dim]}_excl"], columns[f"{_PREFIX[dim]}_incl"] = excl, incl
    fees = [
        component_minor(table, FLAT, {i: 1}) if FLAT in element.components else (0, 0)
        for i, element in enumerate(table.elements)
    ]
    fees.append((0, 0))  # index -1: no flat fee
    fee_table = np.asarray(fees, dtype=np.int64)
    columns["fixed_excl"], columns["fixed_incl"] = fee_table[flat, 0], fee_table[flat, 1]
    excl = np.sum([columns[f"{_PREFIX[d]}_excl"] for d in TariffDimension], axis=0)
    incl = np.sum([columns[f"{_PREFIX[d]}_incl"] for d in TariffDimension], axis=0)
    columns["total_excl"], columns["total_incl"] = _clamp(table, np.asarray(excl), np.asarray(incl))
    frame = pd.DataFrame(
        np.column_stack([columns[name] for name in COST_COLUMNS]).astype(np.int64),
        columns=list(COST_COLUMNS),
        index=pd.Index(session_ids, name="session_id"),
    )
    frame.attrs["currency"] = table.tariff.currency
    frame.attrs["minor_unit"] = table.exponent
    return frame


def _component(table: RatingTable, dim: TariffDimension, matrix: Ints) -> tuple[Ints, Ints]:
    """Excl and incl VAT (minor units) per session of a dimension's volume matrix."""
    candidates = table.candidates[dim]
    parts = [table.elements[i].components[dim] for i in candidates]
    # The same rationals as `component_minor`, with the VAT factors' common divisor taken out
    # so that the numerators usually stay within int64.
    common = gcd(VAT_SCALE, *(c.factor_e6 for c in parts))
    scale = 10**table.exponent
    denominator = UNIT[dim] * PRICE_SCALE
    rules = (
        ([c.price_e4 * scale for c in parts], denominator),
        (
            [c.price_e4 * (c.factor_e6 // common) * scale for c in parts],
            denominator * VAT_SCALE // common,
        ),
    )
    largest = int(matrix.max(initial=0))
    out: list[Ints] = []
    for coefficients, divisor in rules:
        if largest * sum(coefficients) < _INT64_SAFE // 4 and divisor < _INT64_SAFE // 4:
            numerator = (matrix * np.asarray(coefficients, dtype=np.int64)).sum(axis=1)
            out.append((2 * numerator + divisor) // (2 * divisor))
        else:
            out.append(_rounded_in_float(matrix, coefficients, divisor))
    excl, incl = out
    unsure = (excl < 0) | (incl < 0)
    for row in np.flatnonzero(unsure):
        volumes = {i: int(v) for i, v in zip(candidates, matrix[row], strict=True) if v}
        excl[row], incl[row] = component_minor(table, dim, volumes)
    return excl, incl


def _rounded_in_float(matrix: Ints, coefficients: list[int], divisor: int) -> Ints:
    """Half-up rounding of matrix @ coefficients / divisor via float64; -1 marks the rows within
    1e-6 of a half, which the caller recomputes exactly."""
    estimate = matrix.astype(np.float64) @ (np.asarray(coefficients, dtype=np.float64) / divisor)
    rounded = np.floor(estimate + 0.5).astype(np.int64)
    tolerance = 1e-6 + np.abs(estimate) * 1e-12
    rounded[np.abs(estimate - np.floor(estimate) - 0.5) < tolerance] = -1
    return rounded


def _clamp(table: RatingTable, excl: Ints, incl: Ints) -> tuple[Ints, Ints]:
    bounds = (table.min_excl, table.min_incl, table.max_excl, table.max_incl)
    if all(bound is None for bound in bounds):
        return excl, incl
    largest = int(max(excl.max(initial=0), incl.max(initial=0)))
    if largest * max(b or 0 for b in bounds) * 2 >= _INT64_SAFE:
        pairs = [clamp_total(table, int(e), int(i)) for e, i in zip(excl, incl, strict=True)]
        clamped = np.asarray(pairs, dtype=np.int64).reshape(len(pairs), 2)
        return clamped[:, 0], clamped[:, 1]
    excl, incl = excl.copy(), incl.copy()
    if table.min_excl is not None:
        low = excl < table.min_excl
        if table.min_incl is None:
            incl = np.where(low, _rescaled(incl, excl, table.min_excl), incl)
        excl = np.where(low, table.min_excl, excl)
    if table.min_incl is not None:
        incl = np.maximum(incl, table.min_incl)
    if table.max_excl is not None:
        high = excl > table.max_excl
        if table.max_incl is None:
            incl = np.where(high, _rescaled(incl, excl, table.max_excl), incl)
        excl = np.where(high, table.max_excl, excl)
    if table.max_incl is not None:
        incl = np.minimum(incl, table.max_incl)
    return excl, incl


def _rescaled(incl: Ints, excl: Ints, new_excl: int) -> Ints:
    divisor = np.maximum(excl, 1)
    scaled: Ints = (2 * incl * new_excl + divisor) // (2 * divisor)
    return np.where(excl == 0, new_excl, scaled)


# -- columns -----------------------------------------------------------------------------------


def _require(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise RerateError(f"{name}: missing columns {', '.join(missing)}")


def _epoch_ms(values: pd.Series, name: str) -> Ints:
    try:
        stamps = pd.to_datetime(values, utc=True)
    except (TypeError, ValueError) as exc:
        raise RerateError(f"{name}: not date-times ({exc})") from None
    if stamps.isna().any():
        raise RerateError(f"{name}: missing date-times")
    naive = stamps.dt.tz_localize(None).to_numpy()
    ms: Ints = naive.astype("datetime64[ms]").view(np.int64)
    return ms


def _to_int(values: pd.Series, factor: int, name: str) -> Ints:
    numbers = values.to_numpy(dtype=np.float64)
    if not np.isfinite(numbers).all() or (numbers < 0).any():
        raise RerateError(f"totals: {name} must be finite and not negative")
    scaled: Ints = np.rint(numbers * factor).astype(np.int64)
    return scaled
