"""Drivers: when EVs arrive at a connector, how long they stay, how much energy they want.

This module owns the demand side of the simulator, and nothing else (no I/O, no clock reads,
no trio): time is a start datetime plus seconds, randomness a seeded `numpy.random.Generator`.

- `DriverModel`: arrival rates per hour of day (weekday and weekend), lognormal dwell time and
  energy need, the shares of app starts, invalid and blocked tokens, and of drivers who leave
  early or overstay; three calibrated presets (`public_ac`, `depot`, `highway_dc`).
- `arrivals()`: one connector's arrivals over a period, a non-homogeneous Poisson process with
  a piecewise-constant rate per local clock hour (exact: a Poisson count per hour, placed
  uniformly within it), each with its EV, token and behaviour.
- `ev_fleet_mix()`: the EVs that arrive (battery capacity, max AC and DC power).

Sources of the calibration (figures quoted are the publications'; everything marked
"assumption" is a modelling choice, not a measurement):

[EVnetNL 2016]  EVnetNL (now ElaadNL), "Het laadjaar 2015 in cijfers" (the 2015 charging year
    in figures), press release on its Dutch public AC charge points, 2016: on weekdays most
    sessions began around 08:51 and most ended around 17:12; on weekends most began around
    13:45; mean energy 8.4 kWh per session; mean occupancy (a car connected) 13.7 % of the time.
[Lucas 2018]  A. Lucas et al. (JRC), "Indicator-Based Methodology for Assessing EV Charging
    Infrastructure Using Exploratory Data Analysis", Energies 11(7):1869, 2018, on ElaadNL
    data: use-time ratio 11.21 % (time connected over time available).
[JRC/ElaadNL idle]  JRC with ElaadNL, study of 1.8 million Dutch public charging sessions over
    6 years (JRC news "Electric vehicles: a new model to reduce time wasted at charging
    points"): 61.4 % of the time connected is idle (the car is full but still plugged in).
[NAL]  Nationale Agenda Laadinfrastructuur, monitoring "Definities en methode": at workplace
    charge points employees usually plug in between 8:00 and 9:00 and stay 8 to 10 hours.
[EV Project]  Idaho National Laboratory, "Plugged In: How Americans Charge Their Electric
    Vehicles" (2015), and ECOtality's EV Project figures (EV Roadmap 6, 2013): a DC fast
    charger was used about 4 times a day, a commercial AC Level 2 unit about 7 times a month.
[Mahlberg 2023]  J. A. Mahlberg, J. Desai, D. M. Bullock, "Evaluation of Electric Vehicle
    Charging Usage and Driver Activity", World Electric Vehicle Journal 14(11):308, 2023:
    over 4000 sessions at 50/150/350 kW DC stations, median charge time 28 to 36 minutes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "Arrival",
    "Behaviour",
    "DriverModel",
    "EvClass",
    "TokenKind",
    "TokenValidity",
    "arrivals",
    "depot_van_mix",
    "ev_fleet_mix",
    "expected_arrivals",
]

FloatArray = npt.NDArray[np.float64]
TokenValidity = Literal["valid", "invalid", "blocked"]

_HOURS = 24


class TokenKind(StrEnum):
    RFID = "rfid"  # presented at the charger
    APP = "app"  # remote start through the CSMS


class Behaviour(StrEnum):
    NORMAL = "normal"
    LEAVES_EARLY = "leaves_early"  # unplugs before the energy need can have been delivered
    OVERSTAYS = "overstays"  # stays on after the normal dwell: the idle time billing prices


# --------------------------------------------------------------------------- the EVs


@dataclass(frozen=True)
class EvClass:
    """A kind of EV and its share of arrivals; `max_dc_w` is 0 for a car that cannot DC-charge."""

    name: str
    share: float
    capacity_wh: float
    max_ac_w: float
    max_dc_w: float

    def __post_init__(self) -> None:
        _require(self.share >= 0, f"{self.name}: share must be >= 0")
        _require(self.capacity_wh > 0, f"{self.name}: capacity_wh must be positive")
        _require(self.max_ac_w > 0, f"{self.name}: max_ac_w must be positive")
        _require(self.max_dc_w >= 0, f"{self.name}: max_dc_w must be >= 0")


def ev_fleet_mix() -> tuple[EvClass, ...]:
    """Passenger EVs at public chargers.

    Per class, capacity and powers are approximately the manufacturers' published figures
    for a typical model, rounded: Nissan Leaf 40 kWh (6.6 kW AC, 50 kW CHAdeMO), Renault Zoe
    ZE50 about 52 kWh (22 kW AC, 50 kW DC), VW ID.3 about 58 kWh net (11 kW AC, 120 kW DC),
    Tesla Model 3/Y long range about 75 kWh (11 kW AC, about 250 kW DC), a plug-in hybrid
    with about 13 kWh (3.7 kW single-phase AC, no DC). The shares are an assumption, not a
    registration statistic.
    """
    return (
        EvClass("compact_bev", 0.15, 40_000.0, 6_600.0, 50_000.0),
        EvClass("city_bev_22kw", 0.10, 52_000.0, 22_000.0, 50_000.0),
        EvClass("mid_bev", 0.35, 58_000.0, 11_000.0, 120_000.0),
        EvClass("large_bev", 0.30, 75_000.0, 11_000.0, 250_000.0),
        EvClass("phev", 0.10, 13_000.0, 3_700.0, 0.0),
    )


def depot_van_mix() -> tuple[EvClass, ...]:
    """Electric vans of a delivery fleet.

    Approximately the published figures of a large van (Ford E-Transit: about 68 kWh usable,
    11 kW AC, about 115 kW DC) and a small one (Renault Kangoo E-Tech: about 45 kWh, 11 kW
    AC, about 80 kW DC). The 60/40 split is an assumption.
    """
    return (
        EvClass("large_van", 0.6, 68_000.0, 11_000.0, 115_000.0),
        EvClass("small_van", 0.4, 45_000.0, 11_000.0, 80_000.0),
    )


# --------------------------------------------------------------------------- the model


def _daily_profile(weights: tuple[float, ...], per_day: float) -> tuple[float, ...]:
    """Hourly rates with the shape of `weights` that add up to `per_day` arrivals a day."""
    total = sum(weights)
    return tuple(per_day * w / total for w in weights)


# Public AC, hour 0..23. Hand-drawn shapes (assumption) placed on the cited peaks: weekdays
# peak at 8-9 h [EVnetNL 2016; NAL] with a second peak at 17-18 h when residents come home;
# weekends have one broad peak in the early afternoon (most sessions began about 13:45).
_PUBLIC_AC_WEEKDAY = (
    *(0.3, 0.2, 0.1, 0.1, 0.1, 0.3, 0.8, 2.5, 4.0, 3.0, 2.0, 1.8),
    *(1.8, 1.8, 1.7, 1.8, 2.2, 3.0, 2.8, 2.2, 1.6, 1.1, 0.7, 0.4),
)
_PUBLIC_AC_WEEKEND = (
    *(0.4, 0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.6, 2.2, 2.6),
    *(2.8, 3.0, 2.8, 2.5, 2.3, 2.2, 2.0, 1.7, 1.3, 0.9, 0.6, 0.4),
)
# Depot (assumption: a single-shift fleet back between 16 and 20 h, few moves at weekends).
_DEPOT_WEEKDAY = (
    *(0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2),
    *(0.3, 0.3, 0.5, 1.0, 3.0, 6.0, 5.0, 3.0, 1.5, 0.8, 0.4, 0.2),
)
_DEPOT_WEEKEND = (
    *(0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.2, 0.3, 0.5, 0.6),
    *(0.8, 1.0, 1.0, 1.0, 1.0, 0.9, 0.7, 0.5, 0.3, 0.2, 0.1, 0.1),
)
# Highway DC (assumption: daytime travel with late-morning and late-afternoon peaks; at
# weekends one broad midday peak).
_HIGHWAY_WEEKDAY = (
    *(0.2, 0.1, 0.1, 0.1, 0.1, 0.3, 0.8, 1.5, 2.0, 2.3, 2.6, 2.8),
    *(2.8, 2.6, 2.5, 2.7, 3.0, 3.0, 2.5, 2.0, 1.4, 0.9, 0.6, 0.3),
)
_HIGHWAY_WEEKEND = (
    *(0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.9, 1.6, 2.4, 3.0, 3.4),
    *(3.5, 3.4, 3.2, 3.0, 2.8, 2.5, 2.0, 1.6, 1.1, 0.7, 0.4, 0.3),
)


@dataclass(frozen=True)
class DriverModel:
    """Who arrives at one connector, when, for how long, wanting how much energy.

    Rates are expected arrivals per hour at one connector, per local clock hour. Dwell time
    and energy need are lognormal (median and log-space sigma); the energy need is capped by
    the room in the arriving car's battery. Shares are probabilities per arrival.
    """

    weekday_hourly_rate: tuple[float, ...]  # 24 arrivals/hour per connector on Mon-Fri
    weekend_hourly_rate: tuple[float, ...]  # 24 values for Sat-Sun
    dwell_median_s: float
    dwell_sigma: float
    energy_median_wh: float
    energy_sigma: float
    app_share: float  # share of app remote starts (the rest present an RFID card)
    invalid_token_share: float
    blocked_token_share: float
    leaves_early_share: float
    overstays_share: float
    # Beyond the brief's fields (all with defaults):
    ev_mix: tuple[EvClass, ...] = field(default_factory=ev_fleet_mix)
    fast_charging: bool = False  # the EV's max power is its DC power, not its AC power
    arrival_soc_alpha: float = 2.5  # initial state of charge ~ Beta(alpha, beta)
    arrival_soc_beta: float = 2.5
    overstay_median_s: float = 3 * 3600.0  # extra idle time of an overstaying driver

    def __post_init__(self) -> None:
        for name in ("weekday_hourly_rate", "weekend_hourly_rate"):
            rates = tuple(float(r) for r in getattr(self, name))
            if len(rates) != _HOURS or not all(math.isfinite(r) and r >= 0 for r in rates):
                raise ValueError(f"{name} needs 24 finite rates >= 0")
            object.__setattr__(self, name, rates)
        object.__setattr__(self, "ev_mix", tuple(self.ev_mix))
        self._check_distributions()
        self._check_shares()
        if not self._usable_classes():
            raise ValueError("ev_mix needs a class with a positive share (and DC power if fast)")

    def _check_distributions(self) -> None:
        for name in ("dwell_median_s", "energy_median_wh", "overstay_median_s"):
            _require(getattr(self, name) > 0, f"{name} must be positive")
        for name in ("dwell_sigma", "energy_sigma"):
            _require(getattr(self, name) >= 0, f"{name} must be >= 0")
        _require(self.arrival_soc_alpha > 0 and self.arrival_soc_beta > 0, "Beta needs > 0")

    def _check_shares(self) -> None:
        for name in (
            "app_share",
            "invalid_token_share",
            "blocked_token_share",
            "leaves_early_share",
            "overstays_share",
        ):
            _require(0.0 <= getattr(self, name) <= 1.0, f"{name} must be within 0..1")
        _require(self.invalid_token_share + self.blocked_token_share <= 1.0, "token shares > 1")
        _require(self.leaves_early_share + self.overstays_share <= 1.0, "behaviour shares > 1")

    def _usable_classes(self) -> tuple[EvClass, ...]:
        """The EV classes that can arrive: positive share, and DC-capable for a fast charger."""
        return tuple(
            c for c in self.ev_mix if c.share > 0 and (c.max_dc_w > 0 or not self.fast_charging)
        )

    def daily_rate(self, weekend: bool) -> float:
        """Expected arrivals per connector over a whole weekday (or weekend day)."""
        return sum(self.weekend_hourly_rate if weekend else self.weekday_hourly_rate)

    def scaled(self, factor: float) -> DriverModel:
        """The same drivers with every arrival rate multiplied by `factor`."""
        if not factor >= 0 or not math.isfinite(factor):
            raise ValueError(f"scale factor must be finite and >= 0, got {factor!r}")
        return replace(
            self,
            weekday_hourly_rate=tuple(r * factor for r in self.weekday_hourly_rate),
            weekend_hourly_rate=tuple(r * factor for r in self.weekend_hourly_rate),
        )

    @classmethod
    def public_ac(cls) -> DriverModel:
        """Dutch-style public AC street charging, calibrated on ElaadNL/EVnetNL figures.

        - Arrivals: 0.6 a day per connector on weekdays, 0.45 at weekends. With the mean
          dwell below (about 6 h) that keeps a connector occupied about 14 % of the time, as
          the 13.7 % occupancy of [EVnetNL 2016] and 11.21 % use time of [Lucas 2018].
        - Dwell: median 4 h, sigma 0.9, so a mean of about 6 h ("several hours"): the long
          connections of [JRC/ElaadNL idle], where 61.4 % of connected time is idle.
        - Energy: median 9 kWh, sigma 0.7, before the cap by the room in the battery (which
          binds for plug-in hybrids); after it the median is about 8 kWh and the mean about
          10 kWh, a little above the 8.4 kWh mean of 2015 [EVnetNL 2016] as batteries have
          grown since. Approximately, not a fitted value.
        - Shares: 10 % app starts, 2 % invalid and 1 % blocked tokens, 5 % leave early, 10 %
          overstay by a further ~3 h: assumptions, for exercising the CSMS.
        """
        return cls(
            weekday_hourly_rate=_daily_profile(_PUBLIC_AC_WEEKDAY, 0.6),
            weekend_hourly_rate=_daily_profile(_PUBLIC_AC_WEEKEND, 0.45),
            dwell_median_s=4 * 3600.0,
            dwell_sigma=0.9,
            energy_median_wh=9_000.0,
            energy_sigma=0.7,
            app_share=0.10,
            invalid_token_share=0.02,
            blocked_token_share=0.01,
            leaves_early_share=0.05,
            overstays_share=0.10,
        )

    @classmethod
    def depot(cls) -> DriverModel:
        """A delivery-van depot: evening arrivals, overnight dwell, fleet cards.

        All figures are assumptions for a single-shift fleet (no public statistic is used):
        one return a weekday per connector, mostly 16-20 h, and 0.2 a day at weekends; dwell
        median 13 h (back about 18 h, out about 7 h), sigma 0.2; energy median 30 kWh (a day's
        round of roughly 120 km at roughly 0.25 kWh/km), sigma 0.4; vans come back fairly
        empty, arrival SoC ~ Beta(2, 5) (mean 29 %); no app starts; an overstay is a van
        left standing for another ~12 h.
        """
        return cls(
            weekday_hourly_rate=_daily_profile(_DEPOT_WEEKDAY, 1.0),
            weekend_hourly_rate=_daily_profile(_DEPOT_WEEKEND, 0.2),
            dwell_median_s=13 * 3600.0,
            dwell_sigma=0.2,
            energy_median_wh=30_000.0,
            energy_sigma=0.4,
            app_share=0.0,
            invalid_token_share=0.005,
            blocked_token_share=0.005,
            leaves_early_share=0.02,
            overstays_share=0.05,
            ev_mix=depot_van_mix(),
            arrival_soc_alpha=2.0,
            arrival_soc_beta=5.0,
            overstay_median_s=12 * 3600.0,
        )

    @classmethod
    def highway_dc(cls) -> DriverModel:
        """A highway DC fast-charging site: short stops, more energy per session.

        - Arrivals: about 4 a day per connector on weekdays, the EV Project's DC figure
          [EV Project]; 5 at weekends (assumption: more long-distance leisure trips).
        - Dwell: median 30 min, sigma 0.35, within the 28-36 min medians of [Mahlberg 2023].
        - Energy: median 25 kWh, sigma 0.45: assumption, about 30 min at an average 50 kW.
        - Arrival SoC ~ Beta(2, 6), mean 25 % (assumption); plug-in hybrids (no DC) excluded.
        - Shares: 20 % app starts, 2 % invalid, 0.5 % blocked, 3 % leave early, 3 % overstay
          by ~20 min: assumptions.
        """
        return cls(
            weekday_hourly_rate=_daily_profile(_HIGHWAY_WEEKDAY, 4.0),
            weekend_hourly_rate=_daily_profile(_HIGHWAY_WEEKEND, 5.0),
            dwell_median_s=30 * 60.0,
            dwell_sigma=0.35,
            energy_median_wh=25_000.0,
            energy_sigma=0.45,
            app_share=0.20,
            invalid_token_share=0.02,
            blocked_token_share=0.005,
            leaves_early_share=0.03,
            overstays_share=0.03,
            fast_charging=True,
            arrival_soc_alpha=2.0,
            arrival_soc_beta=6.0,
            overstay_median_s=20 * 60.0,
        )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


# --------------------------------------------------------------------------- arrivals


@dataclass(frozen=True, slots=True)
class Arrival:
    """One EV arriving at a connector."""

    at_s: float  # seconds after the simulation start
    dwell_s: float  # how long the car stays plugged (already adjusted for behaviour)
    energy_need_wh: float  # never more than the room in its battery
    token_kind: TokenKind
    token_validity: TokenValidity
    behaviour: Behaviour
    capacity_wh: float
    initial_soc: float
    max_power_w: float  # AC or DC, as the model's `fast_charging` says


_Slots = tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.intp]]


def _hour_slots(start: datetime, duration_s: float) -> _Slots:
    """The period cut at local clock hours: (offset s, length s, weekend?, hour) per slot.

    Walks in absolute time, so a DST change gives a 23- or 25-hour day, as on the site.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware (the site's local time)")
    # Aware datetimes at the same instant compare (and hash) equal whatever their zone, and
    # `fold` is ignored within a zone: both go into the cache key.
    return _cached_hour_slots(start, start.tzinfo, start.fold, duration_s)


@functools.lru_cache(maxsize=64)
def _cached_hour_slots(start: datetime, tz: tzinfo, fold: int, duration_s: float) -> _Slots:
    origin = start.astimezone(UTC)
    offsets: list[float] = []
    hours: list[int] = []
    weekend: list[bool] = []
    t = 0.0
    while t < duration_s:
        local = (origin + timedelta(seconds=t)).astimezone(tz)
        into_hour = local.minute * 60 + local.second + local.microsecond / 1e6
        offsets.append(t)
        hours.append(local.hour)
        weekend.append(local.weekday() >= 5)
        t += 3600.0 - into_hour
    starts = np.array(offsets, dtype=float)
    lengths = np.diff(np.append(starts, duration_s))
    arrays = (starts, lengths, np.array(weekend, dtype=bool), np.array(hours, dtype=np.intp))
    for array in arrays:
        array.flags.writeable = False
    return arrays


def _slot_rates(
    model: DriverModel, weekend: npt.NDArray[np.bool_], hour: npt.NDArray[np.intp]
) -> FloatArray:
    """Arrivals per hour in each slot."""
    weekday_rates = np.array(model.weekday_hourly_rate)[hour]
    weekend_rates = np.array(model.weekend_hourly_rate)[hour]
    rates: FloatArray = np.where(weekend, weekend_rates, weekday_rates)
    return rates


def expected_arrivals(model: DriverModel, start: datetime, duration_s: float) -> float:
    """The integral of the arrival rate over the period: the mean of `len(arrivals(...))`."""
    _, lengths, weekend, hour = _hour_slots(start, _period(duration_s))
    return float(np.sum(_slot_rates(model, weekend, hour) * lengths) / 3600.0)


def arrivals(
    model: DriverModel, start: datetime, duration_s: float, rng: np.random.Generator
) -> list[Arrival]:
    """One connector's arrivals in [0, duration_s), sorted by `at_s`.

    Hour of day and weekday are those of `start + at_s` in `start`'s time zone (the site's
    local time). The draws are made in a fixed order, so a seed gives the same arrivals.
    """
    times = _arrival_times(model, start, _period(duration_s), rng)
    n = times.size
    capacity, soc, max_power = _draw_evs(model, n, rng)
    need = np.minimum(
        _lognormal(rng, model.energy_median_wh, model.energy_sigma, n), capacity * (1.0 - soc)
    )
    kinds = np.where(rng.random(n) < model.app_share, TokenKind.APP, TokenKind.RFID)
    validity = _token_validity(model, rng.random(n))
    behaviour = _behaviour(model, rng.random(n))
    dwell = _dwell(model, behaviour, need, max_power, rng)
    return [
        Arrival(
            at_s=at,
            dwell_s=stay,
            energy_need_wh=wh,
            token_kind=TokenKind(kind),
            token_validity=valid,
            behaviour=Behaviour(how),
            capacity_wh=cap,
            initial_soc=s0,
            max_power_w=power,
        )
        for at, stay, wh, kind, valid, how, cap, s0, power in zip(
            times.tolist(),
            dwell.tolist(),
            need.tolist(),
            kinds.tolist(),
            validity,
            behaviour.tolist(),
            capacity.tolist(),
            soc.tolist(),
            max_power.tolist(),
            strict=True,
        )
    ]


_MIN_ARRIVAL_SOC = 0.02
_MAX_ARRIVAL_SOC = 0.95
_EARLY_FRACTION = (0.2, 0.8)  # of the time the need takes at full power (assumption)
_OVERSTAY_SIGMA = 0.5


def _period(duration_s: float) -> float:
    value = float(duration_s)
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"duration_s must be finite and >= 0, got {duration_s!r}")
    return value


def _arrival_times(
    model: DriverModel, start: datetime, duration_s: float, rng: np.random.Generator
) -> FloatArray:
    """A Poisson count per local clock hour, each arrival uniform within its hour."""
    starts, lengths, weekend, hour = _hour_slots(start, duration_s)
    counts = rng.poisson(_slot_rates(model, weekend, hour) * lengths / 3600.0)
    slot = np.repeat(np.arange(starts.size), counts)
    times = starts[slot] + rng.random(slot.size) * lengths[slot]
    latest = np.nextafter(duration_s, 0.0)
    result: FloatArray = np.sort(np.minimum(times, latest))
    return result


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> FloatArray:
    result: FloatArray = rng.lognormal(math.log(median), sigma, size=n)
    return result


def _draw_evs(
    model: DriverModel, n: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per arrival: battery capacity (Wh), initial soc, max charging power (W)."""
    classes = model._usable_classes()
    shares = np.array([c.share for c in classes])
    index = rng.choice(len(classes), size=n, p=shares / shares.sum())
    capacity = np.array([c.capacity_wh for c in classes])[index]
    powers = [c.max_dc_w if model.fast_charging else c.max_ac_w for c in classes]
    max_power = np.array(powers)[index]
    soc = rng.beta(model.arrival_soc_alpha, model.arrival_soc_beta, size=n)
    return capacity, np.clip(soc, _MIN_ARRIVAL_SOC, _MAX_ARRIVAL_SOC), max_power


def _token_validity(model: DriverModel, u: FloatArray) -> list[TokenValidity]:
    invalid = model.invalid_token_share
    blocked = invalid + model.blocked_token_share
    return ["invalid" if x < invalid else "blocked" if x < blocked else "valid" for x in u]


def _behaviour(model: DriverModel, u: FloatArray) -> npt.NDArray[np.str_]:
    early = model.leaves_early_share
    over = early + model.overstays_share
    result: npt.NDArray[np.str_] = np.where(
        u < early,
        Behaviour.LEAVES_EARLY.value,
        np.where(u < over, Behaviour.OVERSTAYS.value, Behaviour.NORMAL.value),
    )
    return result


def _dwell(
    model: DriverModel,
    behaviour: npt.NDArray[np.str_],
    need_wh: FloatArray,
    max_power_w: FloatArray,
    rng: np.random.Generator,
) -> FloatArray:
    """Dwell per arrival: the lognormal draw, cut short or extended by the behaviour.

    A driver who leaves early stays a fraction of the time the energy need takes even at the
    car's full power, so the need cannot be met; one who overstays adds idle time.
    """
    n = behaviour.size
    base = _lognormal(rng, model.dwell_median_s, model.dwell_sigma, n)
    fraction = rng.uniform(*_EARLY_FRACTION, size=n)
    extra = _lognormal(rng, model.overstay_median_s, _OVERSTAY_SIGMA, n)
    full_power_s = need_wh * 3600.0 / max_power_w
    early = fraction * np.minimum(base, full_power_s)
    dwell: FloatArray = np.where(
        behaviour == Behaviour.LEAVES_EARLY.value,
        early,
        np.where(behaviour == Behaviour.OVERSTAYS.value, base + extra, base),
    )
    return dwell
