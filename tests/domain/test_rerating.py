"""The bulk rater agrees with the exact rater to the cent, on a generated set of a few thousand
sessions (anomalous meters, currents, readings outside the session, daylight-saving days) and
several tariffs; and it refuses what it cannot do."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from csms.domain.cdr import Cdr
from csms.domain.rating import MeterPoint, SessionUsage, rate_session
from csms.domain.rerating import COST_COLUMNS, RerateError, rerate_samples, rerate_totals
from csms.domain.tariffs import Tariff, parse_tariff

BERLIN = ZoneInfo("Europe/Berlin")
SESSIONS = 2500


def tariff(currency: str = "EUR", **fields: Any) -> Tariff:
    return parse_tariff(
        {"id": "R", "currency": currency, "last_updated": "2026-01-01T00:00:00Z", **fields}
    )


def c(kind: str, price: float, vat: float | None = None, step: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "price": price, "step_size": step}
    if vat is not None:
        out["vat"] = vat
    return out


PLAIN = tariff(
    elements=[
        {
            "price_components": [
                c("FLAT", 0.35, 19),
                c("ENERGY", 0.3925, 19, 100),
                c("TIME", 0.6, 7, 60),
                c("PARKING_TIME", 6, 19, 300),
            ]
        }
    ],
    parking_grace_period_s=900,
    min_price={"excl_vat": 1.5},
    max_price={"excl_vat": 45},
)
CALENDAR = tariff(
    elements=[
        {
            "price_components": [c("ENERGY", 0.21, 19, 10), c("PARKING_TIME", 1.5, 19, 60)],
            "restrictions": {"start_time": "22:00", "end_time": "06:30"},
        },
        {
            "price_components": [c("ENERGY", 0.31, 19, 1), c("FLAT", 1, 19)],
            "restrictions": {"day_of_week": ["SATURDAY", "SUNDAY"], "start_time": "09:00"},
        },
        {
            "price_components": [c("TIME", 2.4, 19, 900)],
            "restrictions": {"start_date": "2026-03-28", "end_date": "2026-04-02"},
        },
        {
            "price_components": [
                c("ENERGY", 0.45, 19, 500),
                c("TIME", 0.9, 19, 60),
                c("PARKING_TIME", 4.8, 19, 600),
            ]
        },
    ],
    parking_grace_period_s=600,
)
METERED = tariff(
    elements=[
        {"price_components": [c("ENERGY", 0, None, 1)], "restrictions": {"max_kwh": 2.5}},
        {
            "price_components": [c("ENERGY", 0.59, 20, 1), c("TIME", 1.2, 20, 1)],
            "restrictions": {"min_power": 22, "max_duration": 5400},
        },
        {
            "price_components": [c("ENERGY", 0.39, 20, 1000), c("TIME", 0.3, 20, 30)],
            "restrictions": {"min_current": 16, "max_current": 32},
        },
        {
            "price_components": [c("ENERGY", 0.35, 20, 1), c("PARKING_TIME", 0.5, 10, 1)],
            "restrictions": {"min_duration": 3600, "min_kwh": 10, "max_kwh": 40.5},
        },
        {"price_components": [c("TIME", 99, 20)], "restrictions": {"reservation": "RESERVATION"}},
        {
            "price_components": [
                c("ENERGY", 0.49, 20, 1),
                c("PARKING_TIME", 3, 10, 120),
                c("FLAT", 0.99, 20),
            ]
        },
    ],
    min_price={"excl_vat": 2, "incl_vat": 2.4},
    max_price={"excl_vat": 50, "incl_vat": 60},
)
YEN = tariff(
    "JPY",
    elements=[
        {
            "price_components": [c("ENERGY", 33.5, 10, 1), c("PARKING_TIME", 600, 10, 60)],
            "restrictions": {"end_time": "18:00"},
        },
        {"price_components": [c("ENERGY", 41, 10, 1), c("FLAT", 110, 10)]},
    ],
    min_price={"excl_vat": 100},
)
#: Prices this large take the float path with its exact fallback near half units.
HUGE = tariff(
    elements=[
        {
            "price_components": [
                c("ENERGY", 500000.0005, 19, 1000),
                c("TIME", 123456.7891, 7.5, 1),
                c("PARKING_TIME", 987654.3215, None, 1),
            ]
        }
    ],
)
CASES = [
    pytest.param(PLAIN, UTC, id="plain"),
    pytest.param(CALENDAR, BERLIN, id="calendar"),
    pytest.param(METERED, UTC, id="metered"),
    pytest.param(YEN, ZoneInfo("Asia/Tokyo"), id="yen"),
    pytest.param(HUGE, UTC, id="huge"),
]


def generate(count: int, seed: int) -> list[SessionUsage]:
    """Sessions from late March to early November 2026 (both clock changes in Europe)."""
    rng = random.Random(seed)
    base = datetime(2026, 3, 26, tzinfo=UTC)
    out = []
    for i in range(count):
        start = base + timedelta(milliseconds=rng.randrange(0, 225 * 86_400_000))
        at, wh = start, round(rng.uniform(0, 80_000), rng.choice([0, 1, 3]))
        points = []
        if rng.random() < 0.9:
            points.append(MeterPoint(at, wh, None))
        for _ in range(rng.randrange(0, 9)):
            gap = rng.choice([rng.randrange(1, 600_000), rng.randrange(600_000, 7_200_000)])
            at += timedelta(milliseconds=gap)
            roll = rng.random()
            if roll < 0.6:
                kw = rng.choice([rng.uniform(0.01, 0.2), rng.uniform(1, 150), 22.0, 11.0])
                wh += kw * gap / 3600
            elif roll < 0.65:
                wh -= rng.uniform(0, 300)
            elif roll < 0.67:
                wh = rng.uniform(0, 5)
            elif roll < 0.68:
                wh += 5e6
            current = rng.choice([None, rng.uniform(0, 64), 16.0, 32.0])
            points.append(MeterPoint(at, max(round(wh, rng.choice([0, 1, 3])), 0.0), current))
            if rng.random() < 0.03:
                points.append(MeterPoint(at, wh + 10, None))  # a second reading, same instant
        end = at + timedelta(milliseconds=rng.choice([0, rng.randrange(0, 5_400_000)]))
        if rng.random() < 0.03:
            points.append(MeterPoint(end + timedelta(seconds=5), wh + 100))  # after the stop
        if rng.random() < 0.01:
            end, points = start, [MeterPoint(start, wh)]
        out.append(SessionUsage(f"s{i}", start, end, tuple(points)))
    return out


def frames(usages: list[SessionUsage]) -> tuple[pd.DataFrame, pd.DataFrame]:
    samples = pd.DataFrame(
        [
            (
                u.session_id,
                p.timestamp,
                p.register_wh,
                np.nan if p.current_a is None else p.current_a,
            )
            for u in usages
            for p in u.samples
        ],
        columns=["session_id", "timestamp", "register_wh", "current_a"],
    )
    sessions = pd.DataFrame(
        [(u.session_id, u.started_at, u.ended_at) for u in usages],
        columns=["session_id", "started_at", "ended_at"],
    )
    return samples, sessions


def expected(cdrs: list[Cdr], exponent: int) -> pd.DataFrame:
    def minor(price: Any) -> list[int]:
        return [int(price.excl_vat.scaleb(exponent)), int(price.incl_vat.scaleb(exponent))]

    rows = [
        minor(cdr.total_energy_cost)
        + minor(cdr.total_time_cost)
        + minor(cdr.total_parking_cost)
        + minor(cdr.total_fixed_cost)
        + minor(cdr.total_cost)
        for cdr in cdrs
    ]
    index = pd.Index([cdr.session_id for cdr in cdrs], name="session_id")
    return pd.DataFrame(rows, columns=list(COST_COLUMNS), index=index, dtype=np.int64)


@pytest.fixture(scope="module")
def usages() -> list[SessionUsage]:
    return generate(SESSIONS, seed=20260101)


@pytest.mark.parametrize(("plan", "tz"), CASES)
def test_rerate_samples_agrees_with_the_exact_rater_to_the_cent(
    usages: list[SessionUsage], plan: Tariff, tz: tzinfo
) -> None:
    samples, sessions = frames(usages)
    # The ledger may hand the readings in any order.
    samples = samples.sample(frac=1.0, random_state=3)
    got = rerate_samples(samples, sessions, plan, tz=tz)
    want = expected([rate_session(u, plan, tz=tz) for u in usages], plan.minor_unit)
    pd.testing.assert_frame_equal(got, want, check_like=False)
    assert got.attrs == {"currency": plan.currency, "minor_unit": plan.minor_unit}
    assert (got.to_numpy() >= 0).all()


def test_rerate_samples_in_ledger_order_with_readings_in_the_same_millisecond(
    usages: list[SessionUsage],
) -> None:
    samples, sessions = frames(usages)
    ties = samples.duplicated(["session_id", "timestamp"], keep=False)
    assert ties.sum() > 50
    # By session and time as the ledger hands them, with the lower of tied readings last.
    rank = samples["session_id"].map({u.session_id: i for i, u in enumerate(usages)})
    samples = samples.assign(rank=rank).sort_values(
        ["rank", "timestamp", "register_wh"], ascending=[True, True, False]
    )
    samples = samples.drop(columns="rank")
    got = rerate_samples(samples, sessions, METERED)
    want = expected([rate_session(u, METERED) for u in usages], 2)
    pd.testing.assert_frame_equal(got.sort_index(), want.sort_index())


def test_the_generated_set_exercises_what_it_should(usages: list[SessionUsage]) -> None:
    cdrs = [rate_session(u, PLAIN) for u in usages[:1000]]
    flags = {flag for cdr in cdrs for flag in cdr.flags}
    assert {"register_backwards", "register_reset", "implausible_jump"} <= flags
    assert "sample_outside_session" in flags
    assert any(cdr.volumes.charging_ms == 0 for cdr in cdrs)
    assert sum(cdr.total_cost.excl_vat == PLAIN.min_price.excl_vat for cdr in cdrs) > 10  # type: ignore[union-attr]
    assert any(cdr.total_cost.excl_vat == 45 for cdr in cdrs)


def test_huge_prices_at_an_exact_half_cent_round_half_up() -> None:
    start = datetime(2026, 5, 4, 10, tzinfo=UTC)
    # 9.5 kWh billed as 10 kWh at 500000.0005/kWh: 5000000.005 excl VAT, a half cent.
    usage = SessionUsage(
        "tie",
        start,
        start + timedelta(hours=1),
        (
            MeterPoint(start, 0.0),
            MeterPoint(start + timedelta(hours=1), 9500.0),
        ),
    )
    cdr = rate_session(usage, HUGE)
    assert str(cdr.total_energy_cost.excl_vat) == "5000000.01"
    got = rerate_samples(*frames([usage]), HUGE)
    pd.testing.assert_frame_equal(got, expected([cdr], 2))


def test_rerate_totals_rerates_cdr_volumes_under_another_tariff(
    usages: list[SessionUsage],
) -> None:
    cdrs = [rate_session(u, CALENDAR, tz=BERLIN) for u in usages]
    totals = pd.DataFrame(
        {
            "session_id": [cdr.session_id for cdr in cdrs],
            "energy_wh": [cdr.volumes.energy_mwh / 1000 for cdr in cdrs],
            "charging_s": [cdr.volumes.charging_ms / 1000 for cdr in cdrs],
            "parking_s": [cdr.volumes.parking_ms / 1000 for cdr in cdrs],
        }
    )
    got = rerate_totals(totals, PLAIN)
    want = expected([rate_session(u, PLAIN) for u in usages], 2)
    pd.testing.assert_frame_equal(got, want)


def test_rerate_totals_refuses_tariffs_with_restrictions() -> None:
    totals = pd.DataFrame(
        {"session_id": [1], "energy_wh": [1.0], "charging_s": [1], "parking_s": [0]}
    )
    for plan in (CALENDAR, METERED, YEN):
        with pytest.raises(RerateError, match="use rerate_samples"):
            rerate_totals(totals, plan)
    # A reservation-only restriction never applies, so it does not count.
    reservation = tariff(
        elements=[
            {"price_components": [c("TIME", 9)], "restrictions": {"reservation": "RESERVATION"}},
            {"price_components": [c("ENERGY", 0.3)]},
        ]
    )
    assert rerate_totals(totals, reservation)["total_excl"].tolist() == [0]


def test_bad_frames_are_refused_and_strays_ignored() -> None:
    usage = generate(1, seed=1)[0]
    samples, sessions = frames([usage])
    with pytest.raises(RerateError, match="missing columns register_wh"):
        rerate_samples(samples.drop(columns="register_wh"), sessions, PLAIN)
    with pytest.raises(RerateError, match="unique"):
        rerate_samples(samples, pd.concat([sessions, sessions]), PLAIN)
    backwards = sessions.assign(ended_at=sessions["started_at"] - timedelta(seconds=1))
    with pytest.raises(RerateError, match="ends before it starts"):
        rerate_samples(samples, backwards, PLAIN)
    with pytest.raises(RerateError, match="idle_power_w"):
        rerate_samples(samples, sessions, PLAIN, idle_power_w=0)
    with pytest.raises(RerateError, match="not negative"):
        rerate_totals(
            pd.DataFrame(
                {"session_id": [1], "energy_wh": [-1.0], "charging_s": [0], "parking_s": [0]}
            ),
            PLAIN,
        )
    stray = pd.concat(
        [samples, samples.assign(session_id="someone else", register_wh=1e6)], ignore_index=True
    )
    pd.testing.assert_frame_equal(
        rerate_samples(stray, sessions, PLAIN), rerate_samples(samples, sessions, PLAIN)
    )
    # No readings at all: every session is one stretch without energy.
    none = rerate_samples(samples.iloc[:0], sessions, PLAIN)
    bare = SessionUsage(usage.session_id, usage.started_at, usage.ended_at, ())
    pd.testing.assert_frame_equal(none, expected([rate_session(bare, PLAIN)], 2))
    empty = rerate_samples(samples.iloc[:0], sessions.iloc[:0], PLAIN)
    assert list(empty.columns) == list(COST_COLUMNS) and len(empty) == 0
