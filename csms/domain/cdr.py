"""Charge detail records as the rater produces them, in the shape of OCPI 2.2.1 CDRs.

Owns `Cdr`, its `ChargingPeriod`s and `CdrDimension`s, the exact integer `Volumes` behind them,
and `Cdr.to_ocpi()`. The rater (`csms.domain.rating`) builds them; nothing here computes a price.

`to_ocpi()` gives the fields the rater knows: session and tariff ids, times, currency, charging
periods, totals and costs. The party, location, token and CDR id fields belong to whoever
publishes the CDR and are merged in there. Numbers are JSON numbers (OCPI's `number`): money is
already rounded to the currency's minor unit, kWh are exact to the Wh/1000 and hours are rounded
to 6 decimals, so each float's shortest repr is the exact decimal. Two documented departures:
OCPI 2.2.1 has no FLAT CdrDimensionType (2.1.1 had), yet the period that carries a flat fee gets
`{"type": "FLAT", "volume": 1}`; and the meter anomalies go to `remark`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from csms.domain.tariffs import Price, Tariff, datetime_to_ocpi, json_number, price_to_ocpi


class CdrDimensionType(StrEnum):
    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


@dataclass(frozen=True, slots=True)
class CdrDimension:
    type: CdrDimensionType
    #: kWh for ENERGY, hours for TIME and PARKING_TIME, 1 for FLAT.
    volume: Decimal


@dataclass(frozen=True, slots=True)
class ChargingPeriod:
    """A stretch of the session with one state (charging or not) and one set of elements."""

    start_date_time: datetime
    dimensions: tuple[CdrDimension, ...]
    tariff_id: str


@dataclass(frozen=True, slots=True)
class Volumes:
    """The session's quantities as exact integers (mWh, ms): what was measured and, after the
    parking grace period and the step sizes, what was billed."""

    energy_mwh: int
    charging_ms: int
    parking_ms: int
    billed_energy_mwh: int
    billed_time_ms: int
    billed_parking_ms: int


@dataclass(frozen=True, slots=True)
class Cdr:
    session_id: str
    tariff_id: str
    currency: str
    start_date_time: datetime
    end_date_time: datetime
    charging_periods: tuple[ChargingPeriod, ...]
    #: kWh, exact.
    total_energy: Decimal
    #: Hours, the whole session (charging and not), 6 decimals.
    total_time: Decimal
    #: Hours not charging (grace included), 6 decimals.
    total_parking_time: Decimal
    #: After min_price/max_price; the component costs below are before them.
    total_cost: Price
    total_energy_cost: Price
    total_time_cost: Price
    total_parking_cost: Price
    total_fixed_cost: Price
    volumes: Volumes
    #: Meter anomalies met while rating (the part with valid data was rated).
    flags: tuple[str, ...] = ()
    #: False for a running cost of a session still going on (`rate_so_far`).
    final: bool = True

    def to_ocpi(self, tariff: Tariff | None = None) -> dict[str, object]:
        """The rater's part of an OCPI 2.2.1 CDR object, ready for a JSON encoder; with the
        tariff it was rated with, that goes in as OCPI's `tariffs`."""
        out: dict[str, object] = {
            "start_date_time": datetime_to_ocpi(self.start_date_time),
            "end_date_time": datetime_to_ocpi(self.end_date_time),
            "session_id": self.session_id,
            "currency": self.currency,
            "charging_periods": [_period_to_ocpi(period) for period in self.charging_periods],
            "total_cost": price_to_ocpi(self.total_cost),
            "total_fixed_cost": price_to_ocpi(self.total_fixed_cost),
            "total_energy": json_number(self.total_energy),
            "total_energy_cost": price_to_ocpi(self.total_energy_cost),
            "total_time": json_number(self.total_time),
            "total_time_cost": price_to_ocpi(self.total_time_cost),
            "total_parking_time": json_number(self.total_parking_time),
            "total_parking_cost": price_to_ocpi(self.total_parking_cost),
        }
        if tariff is not None:
            out["tariffs"] = [tariff.to_ocpi()]
        if self.flags:
            out["remark"] = ("meter anomalies: " + ", ".join(self.flags))[:255]
        return out


def _period_to_ocpi(period: ChargingPeriod) -> dict[str, object]:
    return {
        "start_date_time": datetime_to_ocpi(period.start_date_time),
        "dimensions": [
            {"type": dim.type.value, "volume": json_number(dim.volume)} for dim in period.dimensions
        ],
        "tariff_id": period.tariff_id,
    }
