"""Tariffs as OCPI 2.2.1 Tariff objects: the model, its validation and the version in force.

Owns `Tariff` and its parts (frozen dataclasses, every amount a `Decimal`), `parse_tariff` from
JSON text or an already decoded object, `Tariff.to_ocpi()` back to a JSON-ready dict, the one
error `TariffError` (its `field` is the path of the offending value, for example
`elements[0].price_components[1].price`), and `tariff_in_force` over stored versions.

What is refused, and the decisions taken where OCPI is silent or loose:

- Malformed JSON, duplicate keys, NaN/Infinity, wrong types, missing required fields and unknown
  fields (a typo such as `max_kwH` would otherwise silently drop a restriction). `null` is the
  same as an absent field. Required: `id`, `currency`, `elements`, `last_updated`;
  `country_code` and `party_id` are optional here (OCPI needs them only towards a roaming
  partner; the layer that publishes a tariff fills them in).
- Numbers must be finite, not negative, at most 10^9 and have at most 4 decimal places (OCPI's
  number format); `min_price`/`max_price` amounts at most the currency's minor-unit decimals,
  `incl_vat` not below `excl_vat`, `min_price` not above `max_price`. VAT is a percentage
  (0..100); an absent VAT means "no VAT applies" (the amount including VAT equals the amount
  excluding it).
- `currency` must be an ISO 4217 code that has a minor unit (funds and metals such as XAU have
  none and cannot be billed), as `csms.domain.money` knows them.
- Restrictions that can never apply: min >= max for kWh, current, power or duration (the max is
  exclusive), a max of 0, `start_date` >= `end_date` (the end date is exclusive),
  `start_time` == `end_time` (empty or ambiguous: omit both for all day), an `end_time` of 00:00
  without a `start_time`, an empty or repeating `day_of_week`. A window with `end_time` earlier
  than `start_time` wraps midnight; `end_time` 00:00 means "until midnight".
- Within one element a dimension may appear once (a second one could never be used); an element
  with a `reservation` restriction may only price FLAT and TIME (OCPI). `step_size` is an int >= 1
  for every component and is ignored for FLAT.
- Extension (not in OCPI): `parking_grace_period_s` at tariff level, int seconds >= 0, default 0:
  the first that many seconds of not charging in a session are not billed as PARKING_TIME.
  `to_ocpi()` writes it only when it is not 0.
- `energy_mix` is kept verbatim (as canonical JSON text) and not used for rating.
- DateTimes are RFC 3339 in UTC ("Z", "+00:00" or no designator) and become aware UTC datetimes;
  `to_ocpi()` writes them with "Z".

`to_ocpi()` writes numbers as JSON numbers (an int when integral, else a float). Every accepted
number has at most 4 decimals and at most 10 integer digits, so the float's shortest repr is the
exact decimal and `parse_tariff(to_ocpi(t)) == t`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlsplit

from csms.domain.money import minor_unit

MAX_NUMBER = Decimal(10**9)
#: OCPI's number format: "numbers use 4 decimals".
NUMBER_DECIMALS = 4
GRACE_FIELD = "parking_grace_period_s"

_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_DATE = re.compile(r"[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
_CURRENCY = re.compile(r"[A-Z]{3}")
_E = TypeVar("_E", bound=StrEnum)


class TariffError(ValueError):
    """A tariff is invalid; `field` is the path of the offending value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class TariffDimension(StrEnum):
    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class DayOfWeek(StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"

    @property
    def weekday(self) -> int:
        """Monday is 0, as `datetime.weekday()` counts."""
        return list(DayOfWeek).index(self)


class ReservationRestriction(StrEnum):
    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class TariffType(StrEnum):
    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


@dataclass(frozen=True, slots=True)
class Price:
    """OCPI Price: an amount excluding VAT and, when known, including it."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None


@dataclass(frozen=True, slots=True)
class DisplayText:
    language: str
    text: str


@dataclass(frozen=True, slots=True)
class PriceComponent:
    type: TariffDimension
    #: Per unit, excluding VAT: per kWh, per hour, or once (FLAT).
    price: Decimal
    #: Percentage; None means no VAT applies.
    vat: Decimal | None
    #: In Wh for ENERGY, in seconds for TIME and PARKING_TIME; ignored for FLAT.
    step_size: int


@dataclass(frozen=True, slots=True)
class TariffRestrictions:
    start_time: time | None = None
    end_time: time | None = None
    start_date: date | None = None
    end_date: date | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None
    max_power: Decimal | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    day_of_week: tuple[DayOfWeek, ...] | None = None
    reservation: ReservationRestriction | None = None

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in _RESTRICTION_FIELDS)

    @property
    def has_calendar(self) -> bool:
        """Restricted by local time of day, day of week or date."""
        return any(
            value is not None
            for value in (
                self.start_time,
                self.end_time,
                self.start_date,
                self.end_date,
                self.day_of_week,
            )
        )

    def calendar_allows(self, local: datetime) -> bool:
        """The time, day and date restrictions hold at this local wall-clock time."""
        if self.day_of_week is not None and local.weekday() not in {
            day.weekday for day in self.day_of_week
        }:
            return False
        day = local.date()
        if self.start_date is not None and day < self.start_date:
            return False
        if self.end_date is not None and day >= self.end_date:
            return False
        clock = local.time().replace(tzinfo=None, fold=0)
        start, end = self.start_time, self.end_time
        if start is not None and end is not None and end < start:
            return clock >= start or clock < end
        return (start is None or clock >= start) and (end is None or clock < end)


_RESTRICTION_FIELDS = TariffRestrictions.__slots__


@dataclass(frozen=True, slots=True)
class TariffElement:
    price_components: tuple[PriceComponent, ...]
    restrictions: TariffRestrictions | None = None


@dataclass(frozen=True, slots=True)
class Tariff:
    id: str
    currency: str
    elements: tuple[TariffElement, ...]
    last_updated: datetime
    country_code: str | None = None
    party_id: str | None = None
    type: TariffType | None = None
    tariff_alt_text: tuple[DisplayText, ...] = ()
    tariff_alt_url: str | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    #: OCPI EnergyMix, kept verbatim as canonical JSON text.
    energy_mix: str | None = None
    #: Extension: seconds of not charging per session that are not billed as PARKING_TIME.
    parking_grace_period_s: int = 0

    @property
    def minor_unit(self) -> int:
        """Decimal places of the currency's minor unit (2 for EUR, 0 for JPY, 3 for BHD)."""
        return minor_unit(self.currency)

    def to_ocpi(self) -> dict[str, object]:
        """This tariff as an OCPI 2.2.1 Tariff object, ready for a JSON encoder."""
        out: dict[str, object] = {}
        if self.country_code is not None:
            out["country_code"] = self.country_code
        if self.party_id is not None:
            out["party_id"] = self.party_id
        out["id"] = self.id
        out["currency"] = self.currency
        if self.type is not None:
            out["type"] = self.type.value
        if self.tariff_alt_text:
            out["tariff_alt_text"] = [
                {"language": t.language, "text": t.text} for t in self.tariff_alt_text
            ]
        if self.tariff_alt_url is not None:
            out["tariff_alt_url"] = self.tariff_alt_url
        if self.min_price is not None:
            out["min_price"] = price_to_ocpi(self.min_price)
        if self.max_price is not None:
            out["max_price"] = price_to_ocpi(self.max_price)
        out["elements"] = [_element_to_ocpi(element) for element in self.elements]
        if self.start_date_time is not None:
            out["start_date_time"] = datetime_to_ocpi(self.start_date_time)
        if self.end_date_time is not None:
            out["end_date_time"] = datetime_to_ocpi(self.end_date_time)
        if self.energy_mix is not None:
            out["energy_mix"] = json.loads(self.energy_mix)
        if self.parking_grace_period_s:
            out[GRACE_FIELD] = self.parking_grace_period_s
        out["last_updated"] = datetime_to_ocpi(self.last_updated)
        return out


@dataclass(frozen=True, slots=True)
class TariffVersion:
    """One stored version of a tariff and the instant from which it applies."""

    effective_from: datetime
    tariff: Tariff


def tariff_in_force(versions: Iterable[TariffVersion], at: datetime) -> Tariff | None:
    """The version with the latest `effective_from` <= `at` (the later `last_updated` on a tie),
    or None when there is none or when that version's own OCPI window (`start_date_time`
    inclusive, `end_date_time` exclusive) does not contain `at`. Rate a session with the tariff
    in force at its start: the driver accepted that one (OCPI's note on changing tariffs)."""
    if at.tzinfo is None:
        raise ValueError("tariff_in_force needs an aware datetime")
    chosen: TariffVersion | None = None
    for version in versions:
        if version.effective_from.tzinfo is None:
            raise ValueError("effective_from must be an aware datetime")
        if version.effective_from > at:
            continue
        if chosen is None or (version.effective_from, version.tariff.last_updated) >= (
            chosen.effective_from,
            chosen.tariff.last_updated,
        ):
            chosen = version
    if chosen is None:
        return None
    tariff = chosen.tariff
    if tariff.start_date_time is not None and at < tariff.start_date_time:
        return None
    if tariff.end_date_time is not None and at >= tariff.end_date_time:
        return None
    return tariff


# -- parsing -----------------------------------------------------------------------------------


def parse_tariff(source: str | bytes | Mapping[str, object]) -> Tariff:
    """A validated `Tariff` from OCPI JSON text or an already decoded JSON object."""
    if isinstance(source, str | bytes):
        try:
            decoded = json.loads(
                source,
                parse_float=Decimal,
                parse_constant=_reject_constant,
                object_pairs_hook=_no_duplicates,
            )
        except TariffError:
            raise
        except ValueError as exc:
            raise TariffError("tariff", f"malformed JSON: {exc}") from None
    else:
        decoded = source
    return _tariff(_Object(decoded, ""))


def _reject_constant(name: str) -> object:
    raise TariffError("tariff", f"malformed JSON: {name} is not a number")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise TariffError(key, "duplicate field")
        out[key] = value
    return out


class _Object:
    """The fields of one JSON object, each read once; what is left over is unknown."""

    def __init__(self, value: object, path: str) -> None:
        if not isinstance(value, Mapping):
            raise TariffError(path or "tariff", "must be an object")
        self._value = value
        self._path = path
        self._seen: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def get(self, key: str) -> object | None:
        self._seen.add(key)
        return self._value.get(key)

    def required(self, key: str) -> object:
        value = self.get(key)
        if value is None:
            raise TariffError(self.path(key), "is required")
        return value

    def finish(self) -> None:
        for key in self._value:
            if key not in self._seen:
                raise TariffError(self.path(str(key)), "unknown field")


def _tariff(obj: _Object) -> Tariff:
    currency = _currency(obj.required("currency"), obj.path("currency"))
    min_price = _optional(obj, "min_price", lambda v, p: _price(v, p, currency))
    max_price = _optional(obj, "max_price", lambda v, p: _price(v, p, currency))
    if min_price is not None and max_price is not None:
        _check_price_order(min_price, max_price)
    start = _optional(obj, "start_date_time", _datetime)
    end = _optional(obj, "end_date_time", _datetime)
    if start is not None and end is not None and start >= end:
        raise TariffError("end_date_time", "must be later than start_date_time")
    grace = obj.get(GRACE_FIELD)
    energy_mix = obj.get("energy_mix")
    tariff = Tariff(
        id=_string(obj.required("id"), obj.path("id"), max_length=36),
        currency=currency,
        elements=_elements(obj.required("elements"), obj.path("elements")),
        last_updated=_datetime(obj.required("last_updated"), obj.path("last_updated")),
        country_code=_optional(obj, "country_code", _country_code),
        party_id=_optional(obj, "party_id", _party_id),
        type=_optional(obj, "type", lambda v, p: _enum(TariffType, v, p)),
        tariff_alt_text=_display_texts(obj.get("tariff_alt_text"), obj.path("tariff_alt_text")),
        tariff_alt_url=_optional(obj, "tariff_alt_url", _url),
        min_price=min_price,
        max_price=max_price,
        start_date_time=start,
        end_date_time=end,
        energy_mix=None if energy_mix is None else _energy_mix(energy_mix),
        parking_grace_period_s=0 if grace is None else _int(grace, GRACE_FIELD),
    )
    obj.finish()
    return tariff


_T = TypeVar("_T")


def _optional(obj: _Object, key: str, read: Callable[[object, str], _T]) -> _T | None:
    value = obj.get(key)
    return None if value is None else read(value, obj.path(key))


def _list(value: object, path: str) -> list[object]:
    if not isinstance(value, list | tuple):
        raise TariffError(path, "must be a list")
    return list(value)


def _elements(value: object, path: str) -> tuple[TariffElement, ...]:
    items = _list(value, path)
    if not items:
        raise TariffError(path, "must not be empty")
    return tuple(_element(_Object(item, f"{path}[{i}]")) for i, item in enumerate(items))


def _element(obj: _Object) -> TariffElement:
    path = obj.path("price_components")
    items = _list(obj.required("price_components"), path)
    if not items:
        raise TariffError(path, "must not be empty")
    components: list[PriceComponent] = []
    for i, item in enumerate(items):
        component = _component(_Object(item, f"{path}[{i}]"))
        if any(c.type is component.type for c in components):
            raise TariffError(
                f"{path}[{i}].type", f"a second {component.type} component can never be used"
            )
        components.append(component)
    restrictions = _optional(obj, "restrictions", lambda v, p: _restrictions(_Object(v, p)))
    obj.finish()
    if restrictions is not None and restrictions.reservation is not None:
        for i, component in enumerate(components):
            if component.type not in (TariffDimension.FLAT, TariffDimension.TIME):
                raise TariffError(
                    f"{path}[{i}].type", "a reservation element may only price FLAT and TIME"
                )
    return TariffElement(tuple(components), restrictions)


def _component(obj: _Object) -> PriceComponent:
    component = PriceComponent(
        type=_enum(TariffDimension, obj.required("type"), obj.path("type")),
        price=_number(obj.required("price"), obj.path("price")),
        vat=_optional(obj, "vat", _vat),
        step_size=_int(obj.required("step_size"), obj.path("step_size"), minimum=1),
    )
    obj.finish()
    return component


def _vat(value: object, path: str) -> Decimal:
    vat = _number(value, path)
    if vat > 100:
        raise TariffError(path, "must be at most 100 (a percentage)")
    return vat


def _restrictions(obj: _Object) -> TariffRestrictions:
    kwh = _range(obj, "kwh", _number)
    current = _range(obj, "current", _number)
    power = _range(obj, "power", _number)
    duration = _range(obj, "duration", _int)
    start_time = _optional(obj, "start_time", _time)
    end_time = _optional(obj, "end_time", _time)
    if start_time is not None and start_time == end_time:
        raise TariffError(
            obj.path("end_time"), "must differ from start_time (omit both for all day)"
        )
    if start_time is None and end_time == time(0):
        raise TariffError(obj.path("end_time"), "00:00 without a start_time never applies")
    start_date = _optional(obj, "start_date", _date)
    end_date = _optional(obj, "end_date", _date)
    if start_date is not None and end_date is not None and start_date >= end_date:
        raise TariffError(obj.path("end_date"), "must be later than start_date (it is exclusive)")
    days = obj.get("day_of_week")
    restrictions = TariffRestrictions(
        start_time=start_time,
        end_time=end_time,
        start_date=start_date,
        end_date=end_date,
        min_kwh=kwh[0],
        max_kwh=kwh[1],
        min_current=current[0],
        max_current=current[1],
        min_power=power[0],
        max_power=power[1],
        min_duration=duration[0],
        max_duration=duration[1],
        day_of_week=None if days is None else _days(days, obj.path("day_of_week")),
        reservation=_optional(obj, "reservation", lambda v, p: _enum(ReservationRestriction, v, p)),
    )
    obj.finish()
    return restrictions


_N = TypeVar("_N", int, Decimal)


def _range(
    obj: _Object, name: str, read: Callable[[object, str], _N]
) -> tuple[_N | None, _N | None]:
    low = _optional(obj, f"min_{name}", read)
    high = _optional(obj, f"max_{name}", read)
    if high is not None and high == 0:
        raise TariffError(obj.path(f"max_{name}"), "must be greater than 0 (it is exclusive)")
    if low is not None and high is not None and low >= high:
        raise TariffError(
            obj.path(f"max_{name}"), f"must be greater than min_{name} (it is exclusive)"
        )
    return low, high


def _days(value: object, path: str) -> tuple[DayOfWeek, ...]:
    items = _list(value, path)
    if not items:
        raise TariffError(path, "must not be empty (it would never apply)")
    days: list[DayOfWeek] = []
    for i, item in enumerate(items):
        day = _enum(DayOfWeek, item, f"{path}[{i}]")
        if day in days:
            raise TariffError(f"{path}[{i}]", f"{day} is listed twice")
        days.append(day)
    return tuple(days)


def _price(value: object, path: str, currency: str) -> Price:
    obj = _Object(value, path)
    digits = minor_unit(currency)
    excl = _money(obj.required("excl_vat"), obj.path("excl_vat"), currency, digits)
    incl = _optional(obj, "incl_vat", lambda v, p: _money(v, p, currency, digits))
    obj.finish()
    if incl is not None and incl < excl:
        raise TariffError(obj.path("incl_vat"), "must not be lower than excl_vat")
    return Price(excl, incl)


def _money(value: object, path: str, currency: str, digits: int) -> Decimal:
    amount = _number(value, path)
    if _decimals(amount) > digits:
        raise TariffError(path, f"at most {digits} decimal places for {currency}")
    return amount


def _check_price_order(low: Price, high: Price) -> None:
    if low.excl_vat > high.excl_vat:
        raise TariffError("max_price.excl_vat", "must not be lower than min_price.excl_vat")
    if low.incl_vat is not None and high.incl_vat is not None and low.incl_vat > high.incl_vat:
        raise TariffError("max_price.incl_vat", "must not be lower than min_price.incl_vat")


def _display_texts(value: object, path: str) -> tuple[DisplayText, ...]:
    if value is None:
        return ()
    texts: list[DisplayText] = []
    for i, item in enumerate(_list(value, path)):
        obj = _Object(item, f"{path}[{i}]")
        language = _string(obj.required("language"), obj.path("language"), max_length=2)
        if not re.fullmatch(r"[a-zA-Z]{2}", language):
            raise TariffError(obj.path("language"), "must be a two-letter ISO 639-1 code")
        text = _string(obj.required("text"), obj.path("text"), max_length=512)
        obj.finish()
        texts.append(DisplayText(language, text))
    return tuple(texts)


# -- scalars -----------------------------------------------------------------------------------


def _string(value: object, path: str, *, max_length: int) -> str:
    if not isinstance(value, str):
        raise TariffError(path, "must be a string")
    if not value:
        raise TariffError(path, "must not be empty")
    if len(value) > max_length:
        raise TariffError(path, f"must be at most {max_length} characters")
    return value


def _ci_string(value: object, path: str, max_length: int) -> str:
    text = _string(value, path, max_length=max_length)
    if not all(" " <= ch <= "~" for ch in text):
        raise TariffError(path, "must be printable ASCII")
    return text


def _country_code(value: object, path: str) -> str:
    code = _ci_string(value, path, 2)
    if not re.fullmatch(r"[A-Za-z]{2}", code):
        raise TariffError(path, "must be an ISO 3166 alpha-2 code")
    return code


def _party_id(value: object, path: str) -> str:
    party = _ci_string(value, path, 3)
    if not re.fullmatch(r"[A-Za-z0-9]{3}", party):
        raise TariffError(path, "must be 3 letters or digits")
    return party


def _url(value: object, path: str) -> str:
    url = _string(value, path, max_length=255)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TariffError(path, "must be an http(s) URL")
    return url


def _currency(value: object, path: str) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise TariffError(path, "must be a three-letter upper-case ISO 4217 code")
    try:
        minor_unit(value)
    except ValueError as exc:
        raise TariffError(path, str(exc)) from None
    return value


def _enum(kind: type[_E], value: object, path: str) -> _E:
    if not isinstance(value, str):
        raise TariffError(path, "must be a string")
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise TariffError(path, f"unknown value {value!r} (one of {allowed})") from None


def _int(value: object, path: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TariffError(path, "must be an integer")
    if value < minimum:
        raise TariffError(path, "must not be negative" if minimum == 0 else f"must be >= {minimum}")
    if value > MAX_NUMBER:
        raise TariffError(path, f"must be at most {MAX_NUMBER}")
    return value


def _number(value: object, path: str) -> Decimal:
    if isinstance(value, bool):
        raise TariffError(path, "must be a number")
    try:
        if isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, Decimal):
            number = value
        else:
            raise TariffError(path, "must be a number")
    except InvalidOperation:
        raise TariffError(path, "must be a finite number") from None
    if not number.is_finite():
        raise TariffError(path, "must be a finite number")
    if number < 0:
        raise TariffError(path, "must not be negative")
    if number > MAX_NUMBER:
        raise TariffError(path, f"must be at most {MAX_NUMBER}")
    if _decimals(number) > NUMBER_DECIMALS:
        raise TariffError(path, f"at most {NUMBER_DECIMALS} decimal places (OCPI number format)")
    return number


def _decimals(number: Decimal) -> int:
    exponent = number.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _time(value: object, path: str) -> time:
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise TariffError(path, "must be a time of day HH:MM (00:00 to 23:59)")
    return time(int(value[:2]), int(value[3:]))


def _date(value: object, path: str) -> date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise TariffError(path, "must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise TariffError(path, f"{value} is not a calendar date") from None


def _datetime(value: object, path: str) -> datetime:
    if not isinstance(value, str):
        raise TariffError(path, "must be an RFC 3339 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise TariffError(path, "must be an RFC 3339 date-time string") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    if parsed.utcoffset() != timedelta(0):
        raise TariffError(path, "must be in UTC (OCPI)")
    return parsed.astimezone(UTC)


def _energy_mix(value: object) -> str:
    _Object(value, "energy_mix")
    return json.dumps(_canonical(value, "energy_mix"), sort_keys=True)


def _canonical(value: object, path: str) -> object:
    """Opaque JSON with its numbers spelled one way, so that equal content compares equal."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | Decimal):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if not number.is_finite():
            raise TariffError(path, "must be a finite number")
        integral = number == number.to_integral_value() and abs(number) < 2**53
        return int(number) if integral else float(number)
    if isinstance(value, list | tuple):
        return [_canonical(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): _canonical(v, f"{path}.{k}") for k, v in value.items()}
    raise TariffError(path, f"{type(value).__name__} is not JSON")


# -- writing -----------------------------------------------------------------------------------


def json_number(value: Decimal) -> int | float:
    """A Decimal as a JSON number: an int when integral, else the float with the same digits."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def price_to_ocpi(price: Price) -> dict[str, object]:
    out: dict[str, object] = {"excl_vat": json_number(price.excl_vat)}
    if price.incl_vat is not None:
        out["incl_vat"] = json_number(price.incl_vat)
    return out


def datetime_to_ocpi(moment: datetime) -> str:
    """RFC 3339 in UTC with "Z", with as many fractional digits as the value needs (0, 3, 6)."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    micros = utc.microsecond
    spec = "seconds" if micros == 0 else "milliseconds" if micros % 1000 == 0 else "microseconds"
    return utc.isoformat(timespec=spec) + "Z"


def _element_to_ocpi(element: TariffElement) -> dict[str, object]:
    components: list[dict[str, object]] = []
    for component in element.price_components:
        item: dict[str, object] = {
            "type": component.type.value,
            "price": json_number(component.price),
        }
        if component.vat is not None:
            item["vat"] = json_number(component.vat)
        item["step_size"] = component.step_size
        components.append(item)
    out: dict[str, object] = {"price_components": components}
    if element.restrictions is not None:
        out["restrictions"] = _restrictions_to_ocpi(element.restrictions)
    return out


def _restrictions_to_ocpi(restrictions: TariffRestrictions) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in _RESTRICTION_FIELDS:
        value = getattr(restrictions, name)
        if value is None:
            continue
        if isinstance(value, time):
            out[name] = value.strftime("%H:%M")
        elif isinstance(value, date):
            out[name] = value.isoformat()
        elif isinstance(value, Decimal):
            out[name] = json_number(value)
        elif isinstance(value, tuple):
            out[name] = [day.value for day in value]
        elif isinstance(value, StrEnum):
            out[name] = value.value
        else:
            out[name] = value
    return out
