"""Scenarios: the TOML description of a simulated fleet, its drivers, faults and run.

```toml
name = "city"
seed = 42
start = "2026-03-02T00:00:00+01:00"   # local time of the site, with its offset
duration = "1d"                       # 30s, 90m, 6h, 2d, 1w
[[stations]]
prefix = "CITY-AC"                    # ids are PREFIX-0001, PREFIX-0002, ...
count = 40
connectors = 2
max_power_w = 11000
kind = "ac"                           # ac | dc: which charging curve the cars follow
ocpp_version = "ocpp1.6"              # ocpp1.6 | ocpp2.0.1: groups mix versions in a fleet
[drivers]
model = "public_ac"                   # public_ac | depot | highway_dc
scale = 1.0                           # arrival rate multiplier
[charger]
meter_interval_s = 300
clock_aligned_interval_s = 900
[faults]                              # rates per charger per day
connection_drops = 0.5
timezone = "Europe/Berlin"            # (top level) local time of tariffs' restrictions
[tariff]                              # an OCPI 2.2.1 Tariff object: the default tariff
id = "CITY-AC"
currency = "EUR"
# ... country_code, party_id, last_updated, [[tariff.elements]] with price_components
```
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from csms.domain.tariffs import Tariff, TariffError, parse_tariff

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class ScenarioError(Exception):
    """A scenario that cannot be used, with a message naming the field."""


def parse_duration(text: str | float | int) -> float:
    """Seconds of a duration written as a number of seconds or `30s`, `90m`, `6h`, `2d`, `1w`."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if match is None:
            raise ValueError(f"not a duration: {text!r} (use e.g. 90m, 6h, 1d)")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationGroup(_Strict):
    prefix: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    count: int = Field(ge=1, le=100_000)
    connectors: int = Field(1, ge=1, le=8)
    max_power_w: float = Field(11_000, gt=0, le=1_000_000)
    kind: Literal["ac", "dc"] = "ac"
    #: The version the group's chargers speak: a scenario mixes versions by group.
    ocpp_version: Literal["ocpp1.6", "ocpp2.0.1"] = "ocpp1.6"

    def station_ids(self) -> list[str]:
        return [f"{self.prefix}-{n:04d}" for n in range(1, self.count + 1)]


class Drivers(_Strict):
    model: Literal["public_ac", "depot", "highway_dc"] = "public_ac"
    scale: float = Field(1.0, gt=0, le=1000)
    id_tags: int = Field(500, ge=1, le=1_000_000)


class ChargerSettings(_Strict):
    meter_interval_s: float = Field(300, gt=0)
    clock_aligned_interval_s: float = Field(0, ge=0)
    heartbeat_interval_s: float | None = Field(None, gt=0)
    #: The chargers come up evenly over this many seconds (0: all at once), as a real fleet
    #: does; it spreads their heartbeats and meter values over the interval.
    connect_spread_s: float = Field(0, ge=0)


class Faults(_Strict):
    """Rates per charger per simulated day (a Poisson process each)."""

    connection_drops: float = Field(0, ge=0)
    reboots: float = Field(0, ge=0)
    offline_periods: float = Field(0, ge=0)
    offline_duration_s: float = Field(1800, gt=0)
    clock_skew_s: float = 0
    meter_resets: float = Field(0, ge=0)
    malformed_frames: float = Field(0, ge=0)
    lost_replies: float = Field(0, ge=0)


class Scenario(_Strict):
    name: str = "scenario"
    seed: int = 0
    start: datetime = datetime.fromisoformat("2026-03-02T00:00:00+00:00")
    duration_s: float = Field(86_400, gt=0)
    stations: tuple[StationGroup, ...] = Field(min_length=1)
    drivers: Drivers = Drivers()
    charger: ChargerSettings = ChargerSettings()
    faults: Faults = Faults()
    #: The stations' IANA time zone: tariffs' time-of-day restrictions are in local time.
    timezone: str = "UTC"
    #: The network's default tariff, an OCPI 2.2.1 Tariff object; sessions are priced with it.
    tariff: dict[str, Any] | None = None
    #: Average power (W) below which a plugged-in car counts as parked (idle fees).
    idle_power_w: int = Field(100, ge=0)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("tariff")
    @classmethod
    def _tariff(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                parse_tariff(value)
            except TariffError as exc:
                raise ValueError(f"tariff.{exc}") from None
        return value

    @property
    def parsed_tariff(self) -> Tariff | None:
        return parse_tariff(self.tariff) if self.tariff is not None else None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("start needs a UTC offset, e.g. 2026-03-02T00:00:00+01:00")
        return value

    @field_validator("stations")
    @classmethod
    def _unique_prefixes(cls, value: tuple[StationGroup, ...]) -> tuple[StationGroup, ...]:
        prefixes = [group.prefix for group in value]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError("station prefixes must be unique")
        return value

    @property
    def charger_count(self) -> int:
        return sum(group.count for group in self.stations)

    def with_overrides(
        self,
        *,
        chargers: int | None = None,
        duration_s: float | None = None,
        seed: int | None = None,
    ) -> Scenario:
        """The scenario with the CLI's overrides; `chargers` scales every group in proportion."""
        update: dict[str, object] = {}
        if duration_s is not None:
            update["duration_s"] = duration_s
        if seed is not None:
            update["seed"] = seed
        if chargers is not None:
            total = self.charger_count
            groups, left = [], chargers
            for index, group in enumerate(self.stations):
                last = index == len(self.stations) - 1
                count = left if last else max(1, round(group.count * chargers / total))
                count = max(1, min(count, left - (len(self.stations) - index - 1)))
                left -= count
                groups.append(group.model_copy(update={"count": count}))
            update["stations"] = tuple(groups)
        return self.model_copy(update=update)


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; ScenarioError names what is wrong."""
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return scenario_from_dict(document, str(path))


def scenario_from_dict(document: dict[str, object], origin: str = "scenario") -> Scenario:
    values = dict(document)
    if "duration" in values:
        try:
            values["duration_s"] = parse_duration(values.pop("duration"))  # type: ignore[arg-type]
        except ValueError as exc:
            raise ScenarioError(f"{origin}: duration: {exc}") from None
    try:
        return Scenario.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ScenarioError(f"{origin}: {problems}") from None


SHIPPED = Path(__file__).parent / "scenarios"


def shipped_scenario(name: str) -> Path:
    """The path of a scenario shipped with the simulator (city, depot, highway, faulty)."""
    path = SHIPPED / f"{name}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SHIPPED.glob("*.toml")))
        raise ScenarioError(f"no shipped scenario {name!r}; shipped: {known}")
    return path
