"""Benchmark: bulk re-rating with numpy against a per-session loop of the exact rater, in one run.

Owns the synthetic sessions, the timings and the report:

    python -m loadtest.bench_rerate [--sessions 1000000] [--loop-sessions 20000] [--seed 7]

Every session charges at a constant power, then stays plugged in. Two cases, each timed side by
side with the same sessions:

- totals: `rerate_totals` (one row per session) with a tariff of every feature totals decide
  (flat fee, energy, charging time, parking with a grace period, step sizes, VAT, min and max
  price);
- readings: `rerate_samples` (three meter readings per session, as the ledger's meter_samples
  rows) with a time-of-day tariff in Europe/Berlin (night energy price, parking and a flat fee).

The loop side is `rate_session` (the exact rater) once per session, fed the same three readings.
It is timed on the first `--loop-sessions` sessions (all when that is more) and, when that is
fewer than `--sessions`, extrapolated linearly, which the report says. The loop's totals are
checked against the vectorised ones to the cent. Only the rating calls are timed, not building
their inputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from csms.domain.rating import MeterPoint, SessionUsage, from_ms, rate_session
from csms.domain.rerating import rerate_samples, rerate_totals
from csms.domain.tariffs import Tariff, parse_tariff

TARGET_RATIO = 50.0
TARGET_SECONDS_PER_MILLION = 5.0
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

FLAT_TARIFF = {
    "id": "BENCH-FLAT",
    "currency": "EUR",
    "last_updated": "2026-01-01T00:00:00Z",
    "min_price": {"excl_vat": 1.00, "incl_vat": 1.19},
    "max_price": {"excl_vat": 60.00},
    "parking_grace_period_s": 900,
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": 0.35, "vat": 19, "step_size": 1},
                {"type": "ENERGY", "price": 0.39, "vat": 19, "step_size": 100},
                {"type": "TIME", "price": 0.6, "vat": 19, "step_size": 60},
                {"type": "PARKING_TIME", "price": 6.0, "vat": 19, "step_size": 300},
            ]
        }
    ],
}
TIME_OF_DAY_TARIFF = {
    "id": "BENCH-TOU",
    "currency": "EUR",
    "last_updated": "2026-01-01T00:00:00Z",
    "parking_grace_period_s": 900,
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": 0.29, "vat": 19, "step_size": 1}],
            "restrictions": {"start_time": "22:00", "end_time": "06:00"},
        },
        {
            "price_components": [
                {"type": "FLAT", "price": 0.35, "vat": 19, "step_size": 1},
                {"type": "ENERGY", "price": 0.39, "vat": 19, "step_size": 1},
                {"type": "PARKING_TIME", "price": 6.0, "vat": 19, "step_size": 300},
            ]
        },
    ],
}
BERLIN = ZoneInfo("Europe/Berlin")


def synthetic_sessions(count: int, seed: int) -> pd.DataFrame:
    """Sessions over a month: 5 min to 4 h of charging at 3.7 to 150 kW, then some parking."""
    rng = np.random.default_rng(seed)
    charging_s = rng.integers(300, 4 * 3600, count)
    power_w = rng.uniform(3_700, 150_000, count)
    energy_wh = np.round(power_w * charging_s / 3600, 1)
    parking_s = np.minimum(rng.exponential(1800, count).astype(np.int64), 12 * 3600)
    started_ms = START_MS + rng.integers(0, 30 * 86_400_000, count)
    return pd.DataFrame(
        {
            "session_id": np.arange(count),
            "started_ms": started_ms,
            "energy_wh": energy_wh,
            "charging_s": charging_s,
            "parking_s": parking_s,
        }
    )


def readings(sessions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sessions as meter_samples rows (start, end of charging, stop) and session rows."""
    start = sessions["started_ms"].to_numpy()
    charged = start + sessions["charging_s"].to_numpy() * 1000
    end = charged + sessions["parking_s"].to_numpy() * 1000
    energy = sessions["energy_wh"].to_numpy()
    samples = pd.DataFrame(
        {
            "session_id": np.repeat(sessions["session_id"].to_numpy(), 3),
            "timestamp": np.stack([start, charged, end], axis=1).ravel().astype("datetime64[ms]"),
            "register_wh": np.stack([np.zeros(len(energy)), energy, energy], axis=1).ravel(),
        }
    )
    rows = pd.DataFrame(
        {
            "session_id": sessions["session_id"],
            "started_at": start.astype("datetime64[ms]"),
            "ended_at": end.astype("datetime64[ms]"),
        }
    )
    return samples, rows


def usages(sessions: pd.DataFrame) -> list[SessionUsage]:
    """The exact rater's input for each session: meter start, end of charging, meter stop."""
    out: list[SessionUsage] = []
    columns = ["session_id", "started_ms", "energy_wh", "charging_s", "parking_s"]
    for sid, start_ms, wh, charging, parking in sessions[columns].itertuples(index=False):
        start = from_ms(int(start_ms))
        charged = start + timedelta(seconds=int(charging))
        end = charged + timedelta(seconds=int(parking))
        points = (MeterPoint(start, 0.0), MeterPoint(charged, wh), MeterPoint(end, wh))
        out.append(SessionUsage(str(sid), start, end, points))
    return out


@dataclass(frozen=True)
class Case:
    name: str
    vectorised: str
    tariff: Tariff
    tz: tzinfo
    #: Builds the vectorised rater's input (not timed) and returns the call to time.
    prepare: Callable[[pd.DataFrame], Callable[[], pd.DataFrame]]


@dataclass(frozen=True)
class Result:
    case: Case
    sessions: int
    loop_sessions: int
    vector_s: float
    loop_sample_s: float
    agree: bool

    @property
    def loop_s(self) -> float:
        return self.loop_sample_s * self.sessions / max(self.loop_sessions, 1)

    @property
    def ratio(self) -> float:
        return self.loop_s / self.vector_s if self.vector_s > 0 else float("inf")


def cases() -> list[Case]:
    flat, tou = parse_tariff(FLAT_TARIFF), parse_tariff(TIME_OF_DAY_TARIFF)

    def totals(sessions: pd.DataFrame) -> Callable[[], pd.DataFrame]:
        return lambda: rerate_totals(sessions, flat)

    def by_readings(sessions: pd.DataFrame) -> Callable[[], pd.DataFrame]:
        samples, rows = readings(sessions)
        return lambda: rerate_samples(samples, rows, tou, tz=BERLIN)

    return [
        Case("totals", "rerate_totals", flat, UTC, totals),
        Case("readings", "rerate_samples", tou, BERLIN, by_readings),
    ]


def measure(case: Case, sessions: pd.DataFrame, loop_count: int) -> Result:
    rerate = case.prepare(sessions)
    started = time.perf_counter()
    costs = rerate()
    vector_s = time.perf_counter() - started

    inputs = usages(sessions.iloc[: min(loop_count, len(sessions))])
    started = time.perf_counter()
    cdrs = [rate_session(usage, case.tariff, tz=case.tz) for usage in inputs]
    loop_sample_s = time.perf_counter() - started

    exponent = case.tariff.minor_unit
    exact = [
        (_minor(c.total_cost.excl_vat, exponent), _minor(c.total_cost.incl_vat, exponent))
        for c in cdrs
    ]
    vector = costs[["total_excl", "total_incl"]].to_numpy()[: len(cdrs)]
    agree = bool((np.asarray(exact, dtype=np.int64).reshape(-1, 2) == vector).all())
    return Result(case, len(sessions), len(cdrs), vector_s, loop_sample_s, agree)


def _minor(amount: Decimal | None, exponent: int) -> int:
    return -1 if amount is None else int(amount.scaleb(exponent))


def print_report(results: Sequence[Result]) -> None:
    for result in results:
        case, count, looped = result.case, result.sessions, result.loop_sessions
        print(f"{case.name}: re-rating {count:,} sessions with tariff {case.tariff.id}")
        print(f"  vectorised ({case.vectorised}):".ljust(40) + f"{result.vector_s:10.3f} s")
        line = "  per-session loop (rate_session):".ljust(40) + f"{result.loop_s:10.3f} s"
        if looped < count:
            line += (
                f"  (extrapolated from {looped:,} sessions measured in "
                f"{result.loop_sample_s:.3f} s)"
            )
        print(line)
        print("  ratio loop/vectorised:".ljust(40) + f"{result.ratio:10.1f} x")
        print(f"  agree to the cent on {looped:,} sessions: {'yes' if result.agree else 'NO'}")
        per_million = result.vector_s * 1_000_000 / max(count, 1)
        ratio_ok = result.ratio >= TARGET_RATIO
        time_ok = per_million < TARGET_SECONDS_PER_MILLION
        print(
            f"  targets: ratio >= {TARGET_RATIO:.0f}x {'met' if ratio_ok else 'NOT met'}; "
            f"< {TARGET_SECONDS_PER_MILLION:.0f} s per million sessions ({per_million:.2f} s) "
            f"{'met' if time_ok else 'NOT met'}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_rerate", description=__doc__)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--loop-sessions", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.loop_sessions < 1:
        parser.error("--sessions and --loop-sessions must be at least 1")
    sessions = synthetic_sessions(args.sessions, args.seed)
    results = [measure(case, sessions, args.loop_sessions) for case in cases()]
    print_report(results)
    return 0 if all(result.agree for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
