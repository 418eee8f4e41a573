"""Charging physics: what an EV on a connector draws, how its battery fills, what the meter says.

This module owns the power and energy model of the simulator, and nothing else (no I/O, no
clock reads, no trio: time is passed in as seconds):

- `ChargingCurve`: the EV's maximum charging power as a fraction of its rated power, piecewise
  linear in state of charge (the taper of a lithium-ion battery near full);
- `Vehicle`: one EV; `charge()` advances time and returns the energy delivered;
- `EnergyRegister`: a meter's register, exact and monotone, reported in whole Wh;
- `FleetPhysics`: the same model vectorised with numpy across many connectors.

The power drawn is `min(offered, max_power * curve(soc))`, and the state of charge follows
`d(soc)/dt = power / (3600 * capacity_wh)`. Between breakpoints the power is either constant
(limited by what is offered, or on a flat part of the curve) or linear in soc, so the equation
has a closed-form solution (constant rate, or an exponential). `charge()` and
`FleetPhysics.advance()` step from breakpoint to breakpoint with that solution instead of
sub-stepping numerically: the result is exact up to float rounding for a step of any length,
and two steps of 450 s give the same energy as one of 900 s.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["ChargingCurve", "EnergyRegister", "FleetPhysics", "Vehicle"]

FloatArray = npt.NDArray[np.float64]

_FULL_EPS = 1e-9
"""A battery within this much soc of 1 counts as full and draws nothing."""

_SECONDS_PER_HOUR = 3600.0


# --------------------------------------------------------------------------- curve


@dataclass(frozen=True)
class ChargingCurve:
    """Max charging power as a fraction of the EV's rated max power, piecewise linear in SoC."""

    soc_points: tuple[float, ...]  # increasing, 0..1
    power_fractions: tuple[float, ...]  # same length, 0..1
    _xs: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _fs: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        xs = tuple(float(x) for x in self.soc_points)
        fs = tuple(float(f) for f in self.power_fractions)
        _check_curve(xs, fs)
        object.__setattr__(self, "soc_points", xs)
        object.__setattr__(self, "power_fractions", fs)
        ext_xs, ext_fs = _extend_to_unit_interval(xs, fs)
        object.__setattr__(self, "_xs", ext_xs)
        object.__setattr__(self, "_fs", ext_fs)

    def fraction(self, soc: float) -> float:
        """The power fraction at `soc`; constant beyond the first and last points."""
        s = min(max(float(soc), 0.0), 1.0)
        j = _segment(self._xs, s)
        x0, x1 = self._xs[j], self._xs[j + 1]
        f0, f1 = self._fs[j], self._fs[j + 1]
        return f0 + (f1 - f0) * (s - x0) / (x1 - x0)

    @classmethod
    def typical_ac(cls) -> ChargingCurve:
        """AC charging: the on-board charger is the limit until about 90 %, then a taper.

        A shape, not a measured curve: on AC the car's on-board charger (3.7-22 kW) is far
        below what the battery accepts, so power stays flat until the battery management
        system starts its constant-voltage phase near the top.
        """
        return cls(soc_points=(0.0, 0.9, 1.0), power_fractions=(1.0, 1.0, 0.25))

    @classmethod
    def typical_dc(cls) -> ChargingCurve:
        """DC fast charging: full power to about 55 %, a gentle taper, then a steep one after 80 %.

        A shape, not a measured curve: it follows the common pattern of published DC charging
        curves (near peak power in the lower half, about half of it at 80 %, a small fraction
        at the very top), which is why fast-charging sessions usually stop near 80 %.
        """
        return cls(
            soc_points=(0.0, 0.55, 0.8, 0.9, 1.0),
            power_fractions=(1.0, 1.0, 0.55, 0.3, 0.08),
        )


def _check_curve(xs: tuple[float, ...], fs: tuple[float, ...]) -> None:
    if not xs:
        raise ValueError("a charging curve needs at least one point")
    if len(xs) != len(fs):
        raise ValueError("soc_points and power_fractions must have the same length")
    for value in (*xs, *fs):
        if not 0.0 <= value <= 1.0:  # also rejects nan
            raise ValueError(f"charging curve values must be within 0..1, got {value!r}")
    if any(b <= a for a, b in itertools.pairwise(xs)):
        raise ValueError("soc_points must be strictly increasing")


def _extend_to_unit_interval(
    xs: tuple[float, ...], fs: tuple[float, ...]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The same curve with explicit points at soc 0 and 1 (constant extension), >= 2 points."""
    ext_xs, ext_fs = list(xs), list(fs)
    if ext_xs[0] > 0.0:
        ext_xs.insert(0, 0.0)
        ext_fs.insert(0, ext_fs[0])
    if ext_xs[-1] < 1.0:
        ext_xs.append(1.0)
        ext_fs.append(ext_fs[-1])
    return tuple(ext_xs), tuple(ext_fs)


def _segment(xs: tuple[float, ...], soc: float) -> int:
    """Index j of the segment [xs[j], xs[j+1]) that holds soc (the last one holds 1.0)."""
    return min(max(bisect.bisect_right(xs, soc) - 1, 0), len(xs) - 2)


# --------------------------------------------------------------------------- one vehicle


@dataclass(slots=True)
class Vehicle:
    """One EV on a connector: battery capacity, state of charge, rated max power, curve."""

    capacity_wh: float
    soc: float
    max_power_w: float
    curve: ChargingCurve

    def __post_init__(self) -> None:
        if not self.capacity_wh > 0 or not math.isfinite(self.capacity_wh):
            raise ValueError(f"capacity_wh must be positive, got {self.capacity_wh!r}")
        if not 0.0 <= self.soc <= 1.0:
            raise ValueError(f"soc must be within 0..1, got {self.soc!r}")
        if not self.max_power_w >= 0 or not math.isfinite(self.max_power_w):
            raise ValueError(f"max_power_w must be >= 0, got {self.max_power_w!r}")

    @property
    def full(self) -> bool:
        return self.soc >= 1.0 - _FULL_EPS

    def power_w(self, offered_w: float) -> float:
        """What the EV draws now: min(offered, max power x curve), 0 when full, never negative."""
        offered = _offered(offered_w)
        if self.full:
            return 0.0
        return max(0.0, min(offered, self.max_power_w * self.curve.fraction(self.soc)))

    def charge(self, seconds: float, offered_w: float) -> float:
        """Advance `seconds` at `offered_w`, update soc, return the Wh delivered; never overfill."""
        seconds = _duration(seconds)
        offered = _offered(offered_w)
        start = self.soc
        remaining = seconds
        xs, fs = self.curve._xs, self.curve._fs
        for _ in range(_max_pieces(len(xs))):
            if remaining <= 0.0 or self.full:
                break
            self.soc, remaining = _advance_piece(
                self.soc, remaining, offered, self.max_power_w, self.capacity_wh, xs, fs
            )
        return self.capacity_wh * (self.soc - start)


def _offered(offered_w: float) -> float:
    offered = float(offered_w)
    if math.isnan(offered):
        raise ValueError("offered power is NaN")
    return max(offered, 0.0)


def _duration(seconds: float) -> float:
    value = float(seconds)
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
    return value


def _max_pieces(points: int) -> int:
    """An upper bound on closed-form pieces per step: each segment splits at most once."""
    return 2 * points + 2


def _advance_piece(
    soc: float,
    remaining: float,
    offered: float,
    max_power: float,
    capacity: float,
    xs: tuple[float, ...],
    fs: tuple[float, ...],
) -> tuple[float, float]:
    """Follow one closed-form piece from soc: returns (new soc, seconds still to go)."""
    j = _segment(xs, soc)
    x0, x1, f0 = xs[j], xs[j + 1], fs[j]
    slope = (fs[j + 1] - f0) / (x1 - x0)
    if max_power <= 0.0 or offered <= 0.0:
        return soc, 0.0
    end = _piece_end(soc, x0, x1, f0, slope, offered / max_power)
    curve_limited = max_power * (f0 + slope * (0.5 * (soc + end) - x0)) < offered
    energy_scale = _SECONDS_PER_HOUR * capacity  # W*s per unit of soc
    start_power = max_power * (f0 + slope * (soc - x0))
    if curve_limited and slope != 0.0:
        beta = max_power * slope  # dP/dsoc in W
        rate = beta / energy_scale  # P(t) = P0 * exp(rate * t)
        end_power = max_power * (f0 + slope * (end - x0))
        if start_power <= 0.0:
            return soc, 0.0
        to_end = math.log1p(beta * (end - soc) / start_power) / rate if end_power > 0 else math.inf
        if to_end <= remaining:
            return end, remaining - to_end
        return min(soc + start_power * math.expm1(rate * remaining) / beta, end), 0.0
    power = start_power if curve_limited else offered
    if power <= 0.0:
        return soc, 0.0
    to_end = (end - soc) * energy_scale / power
    if to_end <= remaining:
        return end, remaining - to_end
    return min(soc + power * remaining / energy_scale, end), 0.0


def _piece_end(
    soc: float, x0: float, x1: float, f0: float, slope: float, offered_fraction: float
) -> float:
    """The end of the piece holding soc: the segment's end, or where curve power = offered."""
    if slope == 0.0:
        return x1
    crossing = x0 + (offered_fraction - f0) / slope
    if x0 < crossing < x1 and soc < crossing:
        return crossing
    return x1


# --------------------------------------------------------------------------- the meter


class EnergyRegister:
    """A meter's energy register: exact and monotone; keeps the float total, reports whole Wh.

    The total is a compensated (Neumaier) sum, so millions of small additions do not drift,
    and it never decreases; `wh` is its floor, the whole watt-hours a charger reports.
    """

    __slots__ = ("_compensation", "_reported", "_sum")

    def __init__(self, start_wh: int = 0) -> None:
        if start_wh < 0:
            raise ValueError(f"start_wh must be >= 0, got {start_wh!r}")
        self._sum = float(start_wh)
        self._compensation = 0.0
        self._reported = float(start_wh)

    def add(self, wh: float) -> None:
        """Add delivered energy; `wh` must be finite and >= 0."""
        value = float(wh)
        if not value >= 0 or not math.isfinite(value):
            raise ValueError(f"energy added to a register must be finite and >= 0, got {wh!r}")
        total = self._sum + value
        if abs(self._sum) >= abs(value):
            self._compensation += (self._sum - total) + value
        else:
            self._compensation += (value - total) + self._sum
        self._sum = total
        self._reported = max(self._reported, self._sum + self._compensation)

    @property
    def total_wh(self) -> float:
        return self._reported

    @property
    def wh(self) -> int:
        return math.floor(self._reported)

    def __repr__(self) -> str:
        return f"EnergyRegister(total_wh={self._reported!r})"


# --------------------------------------------------------------------------- the fleet


class FleetPhysics:
    """The same physics vectorised with numpy across many connectors (one row each).

    A connector's limit (`set_limit`) stays when vehicles come and go; until it is set it is
    unlimited, so the vehicle's own maximum applies.
    """

    def __init__(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        self._n = n
        self._vehicles: list[Vehicle | None] = [None] * n
        self._occupied = np.zeros(n, dtype=bool)
        self._soc = np.zeros(n)
        self._capacity = np.ones(n)
        self._max_power = np.zeros(n)
        self._limit = np.full(n, np.inf)
        self._xs = np.tile(np.array([0.0, 1.0]), (n, 1))
        self._fs = np.zeros((n, 2))

    def plug(self, i: int, vehicle: Vehicle) -> None:
        self._check_index(i)
        if self._vehicles[i] is not None:
            raise ValueError(f"connector row {i} already has a vehicle")
        xs, fs = vehicle.curve._xs, vehicle.curve._fs
        self._widen(len(xs))
        self._vehicles[i] = vehicle
        self._occupied[i] = True
        self._soc[i] = vehicle.soc
        self._capacity[i] = vehicle.capacity_wh
        self._max_power[i] = vehicle.max_power_w
        self._xs[i], self._fs[i] = _padded(xs, fs, self._xs.shape[1])

    def unplug(self, i: int) -> Vehicle | None:
        """Take the vehicle off row i, with its soc updated; None if the row is empty."""
        self._check_index(i)
        vehicle = self._vehicles[i]
        if vehicle is None:
            return None
        vehicle.soc = float(self._soc[i])
        self._vehicles[i] = None
        self._occupied[i] = False
        self._soc[i] = 0.0
        self._capacity[i] = 1.0
        self._max_power[i] = 0.0
        return vehicle

    def set_limit(self, i: int, offered_w: float) -> None:
        """What the connector offers: its max power or a charging-profile limit (W)."""
        self._check_index(i)
        self._limit[i] = _offered(offered_w)

    def advance(self, seconds: float) -> FloatArray:
        """Advance every row; returns the Wh delivered per row in this step."""
        seconds = _duration(seconds)
        before = self._soc.copy()
        remaining = np.where(self._charging(), seconds, 0.0)
        for _ in range(_max_pieces(self._xs.shape[1])):
            rows = np.flatnonzero(remaining > 0.0)
            if rows.size == 0:
                break
            soc, left = _advance_rows(
                self._soc[rows],
                remaining[rows],
                self._limit[rows],
                self._max_power[rows],
                self._capacity[rows],
                self._xs[rows],
                self._fs[rows],
            )
            self._soc[rows] = soc
            remaining[rows] = np.where(soc >= 1.0 - _FULL_EPS, 0.0, left)
        delivered: FloatArray = self._capacity * (self._soc - before)
        return delivered

    def power_w(self) -> FloatArray:
        """The present draw per row (0 for an empty row or a full battery)."""
        fraction = _fractions(self._soc, self._xs, self._fs)
        power = np.minimum(self._limit, self._max_power * fraction)
        result: FloatArray = np.where(self._charging(), np.maximum(power, 0.0), 0.0)
        return result

    def _charging(self) -> npt.NDArray[np.bool_]:
        full = self._soc >= 1.0 - _FULL_EPS
        return self._occupied & ~full & (self._limit > 0) & (self._max_power > 0)

    def _check_index(self, i: int) -> None:
        if not 0 <= i < self._n:
            raise IndexError(f"connector row {i} out of range 0..{self._n - 1}")

    def _widen(self, points: int) -> None:
        """Make room for a curve with `points` points (rows are padded beyond soc 1)."""
        width = self._xs.shape[1]
        if points <= width:
            return
        extra = points - width
        pad_x = self._xs[:, -1:] + np.arange(1, extra + 1)
        self._xs = np.hstack([self._xs, pad_x])
        self._fs = np.hstack([self._fs, np.repeat(self._fs[:, -1:], extra, axis=1)])


def _padded(
    xs: tuple[float, ...], fs: tuple[float, ...], width: int
) -> tuple[FloatArray, FloatArray]:
    """A curve as a row of `width` points: extra points beyond soc 1, same last fraction."""
    extra = width - len(xs)
    row_x = np.concatenate([np.array(xs), xs[-1] + np.arange(1, extra + 1, dtype=float)])
    row_f = np.concatenate([np.array(fs), np.full(extra, fs[-1])])
    return row_x, row_f


def _segments(soc: FloatArray, xs: FloatArray) -> npt.NDArray[np.intp]:
    """Per row, the segment index j with xs[j] <= soc < xs[j+1] (as `_segment`)."""
    index: npt.NDArray[np.intp] = np.sum(xs[:, 1:-1] <= soc[:, None], axis=1)
    return index


def _fractions(soc: FloatArray, xs: FloatArray, fs: FloatArray) -> FloatArray:
    s = np.clip(soc, 0.0, 1.0)
    rows = np.arange(s.size)
    j = _segments(s, xs)
    x0, x1, f0, f1 = xs[rows, j], xs[rows, j + 1], fs[rows, j], fs[rows, j + 1]
    result: FloatArray = f0 + (f1 - f0) * (s - x0) / (x1 - x0)
    return result


def _advance_rows(
    soc: FloatArray,
    remaining: FloatArray,
    offered: FloatArray,
    max_power: FloatArray,
    capacity: FloatArray,
    xs: FloatArray,
    fs: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """`_advance_piece` for many rows at once: (new soc, seconds still to go) per row."""
    rows = np.arange(soc.size)
    j = _segments(soc, xs)
    x0, x1, f0 = xs[rows, j], xs[rows, j + 1], fs[rows, j]
    slope = (fs[rows, j + 1] - f0) / (x1 - x0)
    with np.errstate(all="ignore"):
        crossing = x0 + (offered / max_power - f0) / slope
        split = (slope != 0.0) & (crossing > x0) & (crossing < x1) & (soc < crossing)
        end = np.where(split, crossing, x1)
        curve_limited = max_power * (f0 + slope * (0.5 * (soc + end) - x0)) < offered
        energy_scale = _SECONDS_PER_HOUR * capacity
        start_power = max_power * (f0 + slope * (soc - x0))
        exponential = curve_limited & (slope != 0.0)
        # constant power: the offered power, or a flat stretch of the curve
        power = np.where(curve_limited, start_power, offered)
        to_end_const = np.where(power > 0.0, (end - soc) * energy_scale / power, np.inf)
        # power linear in soc: it grows or decays exponentially in time
        beta = max_power * slope
        rate = beta / energy_scale
        end_power = max_power * (f0 + slope * (end - x0))
        to_end_exp = np.where(
            (end_power > 0.0) & (start_power > 0.0),
            np.log1p(beta * (end - soc) / start_power) / rate,
            np.inf,
        )
        to_end = np.where(exponential, to_end_exp, to_end_const)
        step = np.minimum(remaining, to_end)
        partial = np.where(
            exponential,
            soc + start_power * np.expm1(rate * step) / beta,
            soc + power * step / energy_scale,
        )
    reached = to_end <= remaining
    stuck = np.where(exponential, start_power <= 0.0, power <= 0.0)
    new_soc = np.where(reached, end, np.minimum(partial, end))
    new_soc = np.where(stuck, soc, new_soc)
    left = np.where(reached & ~stuck, remaining - to_end, 0.0)
    return new_soc, left
