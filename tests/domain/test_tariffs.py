"""Tariffs: parsing OCPI 2.2.1 Tariff objects, the round trip, every refusal naming its field,
and the version in force."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import orjson
import pytest
from hypothesis import given, settings

from csms.domain.tariffs import (
    DayOfWeek,
    Price,
    ReservationRestriction,
    Tariff,
    TariffDimension,
    TariffError,
    TariffType,
    TariffVersion,
    parse_tariff,
    tariff_in_force,
)

FULL: dict[str, Any] = {
    "country_code": "DE",
    "party_id": "CSM",
    "id": "tariff-1",
    "currency": "EUR",
    "type": "REGULAR",
    "tariff_alt_text": [{"language": "en", "text": "Night energy is cheaper."}],
    "tariff_alt_url": "https://example.org/tariffs/1",
    "min_price": {"excl_vat": 0.5, "incl_vat": 0.6},
    "max_price": {"excl_vat": 50, "incl_vat": 60},
    "elements": [
        {
            "price_components": [
                {"type": "ENERGY", "price": 0.2941, "vat": 19, "step_size": 1},
                {"type": "PARKING_TIME", "price": 3.5, "vat": 19, "step_size": 300},
            ],
            "restrictions": {
                "start_time": "22:00",
                "end_time": "06:00",
                "start_date": "2026-01-01",
                "end_date": "2027-01-01",
                "min_kwh": 0.5,
                "max_kwh": 80,
                "min_current": 6,
                "max_current": 32,
                "min_power": 1.5,
                "max_power": 22,
                "min_duration": 60,
                "max_duration": 86400,
                "day_of_week": ["MONDAY", "FRIDAY"],
            },
        },
        {
            "price_components": [{"type": "TIME", "price": 5, "vat": 19, "step_size": 60}],
            "restrictions": {"reservation": "RESERVATION"},
        },
        {
            "price_components": [
                {"type": "FLAT", "price": 0.35, "vat": 19, "step_size": 1},
                {"type": "ENERGY", "price": 0.39, "step_size": 100},
                {"type": "TIME", "price": 0.6, "vat": 7.7, "step_size": 60},
            ]
        },
    ],
    "start_date_time": "2026-01-01T00:00:00Z",
    "end_date_time": "2027-01-01T00:00:00.250Z",
    "energy_mix": {"is_green_energy": True, "supplier_name": "Wind & Co"},
    "parking_grace_period_s": 900,
    "last_updated": "2025-12-20T10:11:12Z",
}


def full() -> dict[str, Any]:
    return copy.deepcopy(FULL)


def test_parses_every_field_into_typed_values() -> None:
    tariff = parse_tariff(json.dumps(FULL))
    assert (tariff.id, tariff.currency, tariff.country_code, tariff.party_id) == (
        "tariff-1",
        "EUR",
        "DE",
        "CSM",
    )
    assert tariff.type is TariffType.REGULAR
    assert tariff.min_price == Price(Decimal("0.5"), Decimal("0.6"))
    night = tariff.elements[0]
    energy = night.price_components[0]
    assert energy.type is TariffDimension.ENERGY
    assert energy.price == Decimal("0.2941") and isinstance(energy.price, Decimal)
    assert energy.vat == Decimal(19)
    restrictions = night.restrictions
    assert restrictions is not None
    assert (restrictions.start_time, restrictions.end_time) == (time(22), time(6))
    assert (restrictions.start_date, restrictions.end_date) == (date(2026, 1, 1), date(2027, 1, 1))
    assert restrictions.min_kwh == Decimal("0.5") and restrictions.max_duration == 86400
    assert restrictions.day_of_week == (DayOfWeek.MONDAY, DayOfWeek.FRIDAY)
    assert tariff.elements[1].restrictions is not None
    assert tariff.elements[1].restrictions.reservation is ReservationRestriction.RESERVATION
    assert tariff.elements[2].price_components[1].vat is None
    assert tariff.end_date_time == datetime(2027, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    assert tariff.parking_grace_period_s == 900
    assert tariff.last_updated == datetime(2025, 12, 20, 10, 11, 12, tzinfo=UTC)
    assert tariff.minor_unit == 2


def test_text_keeps_decimal_prices_exact() -> None:
    text = json.dumps(FULL).replace("0.2941", "0.1000")
    tariff = parse_tariff(text)
    assert tariff.elements[0].price_components[0].price * 3 == Decimal("0.3")


def test_round_trip_through_json_gives_the_same_tariff() -> None:
    tariff = parse_tariff(FULL)
    out = tariff.to_ocpi()
    assert parse_tariff(orjson.dumps(out)) == tariff
    assert parse_tariff(json.dumps(out)) == tariff
    assert json.loads(orjson.dumps(out)) == json.loads(json.dumps(FULL))


def test_round_trip_of_a_minimal_tariff_omits_what_is_absent() -> None:
    minimal = {
        "id": "t",
        "currency": "JPY",
        "elements": [{"price_components": [{"type": "FLAT", "price": 100, "step_size": 1}]}],
        "last_updated": "2026-01-01T00:00:00Z",
    }
    tariff = parse_tariff(minimal)
    assert tariff.to_ocpi() == minimal
    assert tariff.parking_grace_period_s == 0 and tariff.minor_unit == 0


def test_null_is_the_same_as_absent_and_naive_or_zero_offset_times_are_utc() -> None:
    data = full()
    data["type"] = None
    data["last_updated"] = "2025-12-20T10:11:12"
    data["start_date_time"] = "2026-01-01T01:00:00+00:00"
    tariff = parse_tariff(data)
    assert tariff.type is None
    assert tariff.last_updated.tzinfo is UTC
    assert tariff.start_date_time == datetime(2026, 1, 1, 1, tzinfo=UTC)


def test_tariffs_are_frozen_and_hashable() -> None:
    tariff = parse_tariff(FULL)
    with pytest.raises(AttributeError):
        tariff.id = "other"  # type: ignore[misc]
    assert hash(tariff) == hash(parse_tariff(tariff.to_ocpi()))


def mutate(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    data = full()
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


DELETE = object()
E0 = ("elements", 0)
C0 = (*E0, "price_components", 0)
R0 = (*E0, "restrictions")

INVALID = [
    # missing required fields
    (("id",), DELETE, "id", "is required"),
    (("currency",), None, "currency", "is required"),
    (("elements",), DELETE, "elements", "is required"),
    (("last_updated",), DELETE, "last_updated", "is required"),
    ((*C0, "type"), DELETE, "elements[0].price_components[0].type", "is required"),
    ((*C0, "price"), DELETE, "elements[0].price_components[0].price", "is required"),
    ((*C0, "step_size"), DELETE, "elements[0].price_components[0].step_size", "is required"),
    ((*E0, "price_components"), DELETE, "elements[0].price_components", "is required"),
    # wrong types
    (("id",), 12, "id", "must be a string"),
    (("elements",), {"a": 1}, "elements", "must be a list"),
    ((*E0,), "x", "elements[0]", "must be an object"),
    ((*C0, "price"), "0.25", "elements[0].price_components[0].price", "must be a number"),
    ((*C0, "price"), True, "elements[0].price_components[0].price", "must be a number"),
    ((*C0, "step_size"), 1.5, "elements[0].price_components[0].step_size", "integer"),
    ((*C0, "step_size"), 0, "elements[0].price_components[0].step_size", ">= 1"),
    ((*R0, "min_duration"), 1.0, "elements[0].restrictions.min_duration", "integer"),
    (("min_price",), 3, "min_price", "must be an object"),
    (("tariff_alt_text",), "hello", "tariff_alt_text", "must be a list"),
    (("last_updated",), "yesterday", "last_updated", "RFC 3339"),
    (("last_updated",), "2026-01-01T00:00:00+02:00", "last_updated", "UTC"),
    # negative amounts
    ((*C0, "price"), -0.01, "elements[0].price_components[0].price", "must not be negative"),
    ((*C0, "vat"), -1, "elements[0].price_components[0].vat", "must not be negative"),
    ((*C0, "vat"), 101, "elements[0].price_components[0].vat", "at most 100"),
    (("min_price", "excl_vat"), -1, "min_price.excl_vat", "must not be negative"),
    (("parking_grace_period_s",), -5, "parking_grace_period_s", "must not be negative"),
    ((*R0, "min_kwh"), -1, "elements[0].restrictions.min_kwh", "must not be negative"),
    # number format
    ((*C0, "price"), 0.12345, "elements[0].price_components[0].price", "4 decimal places"),
    ((*C0, "price"), 1e12, "elements[0].price_components[0].price", "at most"),
    (("min_price", "excl_vat"), 0.505, "min_price.excl_vat", "2 decimal places for EUR"),
    # currency
    (("currency",), "eur", "currency", "upper-case"),
    (("currency",), "EURO", "currency", "upper-case"),
    (("currency",), "ZZZ", "currency", "not an ISO 4217 currency"),
    (("currency",), "XAU", "currency", "minor unit"),
    # enums
    ((*C0, "type"), "KWH", "elements[0].price_components[0].type", "unknown value 'KWH'"),
    (
        (*R0, "day_of_week"),
        ["MONDAY", "FUNDAY"],
        "elements[0].restrictions.day_of_week[1]",
        "FUNDAY",
    ),
    ((*R0, "reservation"), "MAYBE", "elements[0].restrictions.reservation", "unknown value"),
    (("type",), "CHEAP", "type", "unknown value"),
    # restrictions that can never apply
    ((*R0, "min_kwh"), 80, "elements[0].restrictions.max_kwh", "greater than min_kwh"),
    ((*R0, "max_kwh"), 0, "elements[0].restrictions.max_kwh", "greater than 0"),
    ((*R0, "min_current"), 40, "elements[0].restrictions.max_current", "greater than min_current"),
    ((*R0, "min_power"), 22, "elements[0].restrictions.max_power", "greater than min_power"),
    ((*R0, "max_duration"), 60, "elements[0].restrictions.max_duration", "min_duration"),
    ((*R0, "end_date"), "2026-01-01", "elements[0].restrictions.end_date", "later than start_date"),
    ((*R0, "end_time"), "22:00", "elements[0].restrictions.end_time", "must differ"),
    ((*R0, "day_of_week"), [], "elements[0].restrictions.day_of_week", "must not be empty"),
    (
        (*R0, "day_of_week"),
        ["MONDAY", "MONDAY"],
        "elements[0].restrictions.day_of_week[1]",
        "twice",
    ),
    ((*R0, "start_time"), "24:00", "elements[0].restrictions.start_time", "HH:MM"),
    ((*R0, "start_time"), "7:00", "elements[0].restrictions.start_time", "HH:MM"),
    ((*R0, "start_date"), "2026-02-30", "elements[0].restrictions.start_date", "calendar date"),
    (("elements",), [], "elements", "must not be empty"),
    ((*E0, "price_components"), [], "elements[0].price_components", "must not be empty"),
    (
        (*E0, "price_components", 1, "type"),
        "ENERGY",
        "elements[0].price_components[1].type",
        "second ENERGY",
    ),
    (
        ("elements", 1, "price_components", 0, "type"),
        "ENERGY",
        "elements[1].price_components[0].type",
        "reservation",
    ),
    (("end_date_time",), "2025-01-01T00:00:00Z", "end_date_time", "later than start_date_time"),
    (("max_price", "excl_vat"), 0.4, "max_price.excl_vat", "lower than min_price"),
    (("min_price", "incl_vat"), 61, "max_price.incl_vat", "lower than min_price"),
    (("min_price", "incl_vat"), 0.4, "min_price.incl_vat", "lower than excl_vat"),
    # unknown fields and odd strings
    ((*R0, "max_kwH"), 5, "elements[0].restrictions.max_kwH", "unknown field"),
    (("priority",), 1, "priority", "unknown field"),
    (("id",), "x" * 37, "id", "at most 36"),
    (("country_code",), "DEU", "country_code", "at most 2"),
    (("party_id",), "C-M", "party_id", "letters or digits"),
    (("tariff_alt_url",), "ftp://example.org", "tariff_alt_url", "http(s) URL"),
    (("tariff_alt_text", 0, "language"), "eng", "tariff_alt_text[0].language", "at most 2"),
]


@pytest.mark.parametrize(("path", "value", "field", "reason"), INVALID)
def test_each_invalid_value_is_refused_naming_its_field(
    path: tuple[str | int, ...], value: object, field: str, reason: str
) -> None:
    with pytest.raises(TariffError) as caught:
        parse_tariff(mutate(path, value))
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{field}: ")
    # The same refusal from JSON text.
    with pytest.raises(TariffError) as again:
        parse_tariff(json.dumps(mutate(path, value)))
    assert again.value.field == field


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "malformed JSON"),
        ("[1, 2]", "must be an object"),
        ('{"id": NaN}', "not a number"),
        ('{"id": "a", "id": "b"}', "duplicate field"),
        ("", "malformed JSON"),
    ],
)
def test_bad_json_text_is_refused(text: str, reason: str) -> None:
    with pytest.raises(TariffError, match=reason):
        parse_tariff(text)


def test_end_time_midnight_means_until_midnight_but_alone_never_applies() -> None:
    data = mutate((*R0, "end_time"), "00:00")
    restrictions = parse_tariff(data).elements[0].restrictions
    assert restrictions is not None and restrictions.end_time == time(0)
    del data["elements"][0]["restrictions"]["start_time"]
    with pytest.raises(TariffError) as caught:
        parse_tariff(data)
    assert caught.value.field == "elements[0].restrictions.end_time"


def test_minor_units_come_from_the_currency() -> None:
    minimal = {
        "id": "t",
        "elements": [{"price_components": [{"type": "FLAT", "price": 1, "step_size": 1}]}],
        "last_updated": "2026-01-01T00:00:00Z",
    }
    units = [parse_tariff({**minimal, "currency": c}).minor_unit for c in ("EUR", "JPY", "BHD")]
    assert units == [2, 0, 3]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out: list[tuple[str | int, ...]] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


PATHS = _paths(FULL)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATHS), JSON_VALUES)
def test_any_value_anywhere_is_either_valid_or_a_tariff_error(
    path: tuple[str | int, ...], value: object
) -> None:
    data = mutate(path, value)
    try:
        tariff = parse_tariff(data)
    except TariffError as exc:
        assert exc.field
        return
    # Whatever was accepted survives its own round trip.
    assert parse_tariff(orjson.dumps(tariff.to_ocpi())) == tariff


def version(effective: datetime, name: str, **fields: Any) -> TariffVersion:
    data = full()
    data.pop("start_date_time")
    data.pop("end_date_time")
    data.update(id=name, **fields)
    return TariffVersion(effective, parse_tariff(data))


def test_tariff_in_force_is_the_latest_version_effective_by_then() -> None:
    jan = datetime(2026, 1, 1, tzinfo=UTC)
    versions = [
        version(jan + timedelta(days=31), "feb"),
        version(jan, "jan"),
        version(jan + timedelta(days=59), "mar"),
    ]
    assert tariff_in_force(versions, jan - timedelta(seconds=1)) is None
    assert tariff_in_force(versions, jan).id == "jan"  # type: ignore[union-attr]
    assert tariff_in_force(versions, jan + timedelta(days=40)).id == "feb"  # type: ignore[union-attr]
    assert tariff_in_force(versions, jan + timedelta(days=400)).id == "mar"  # type: ignore[union-attr]


def test_tariff_in_force_prefers_the_later_update_and_honours_the_ocpi_window() -> None:
    jan = datetime(2026, 1, 1, tzinfo=UTC)
    old = version(jan, "old", last_updated="2025-12-01T00:00:00Z")
    new = version(jan, "new", last_updated="2025-12-02T00:00:00Z")
    assert tariff_in_force([new, old], jan).id == "new"  # type: ignore[union-attr]
    ending = version(jan, "ending", end_date_time="2026-02-01T00:00:00Z")
    assert tariff_in_force([ending], datetime(2026, 1, 31, tzinfo=UTC)) is not None
    assert tariff_in_force([ending], datetime(2026, 2, 1, tzinfo=UTC)) is None
    with pytest.raises(ValueError):
        tariff_in_force([old], datetime(2026, 1, 2))


def test_tariff_dataclass_defaults_match_ocpi_optionals() -> None:
    tariff = Tariff(
        id="t",
        currency="EUR",
        elements=parse_tariff(FULL).elements,
        last_updated=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert tariff.min_price is None and tariff.tariff_alt_text == ()
    assert parse_tariff(tariff.to_ocpi()) == tariff
