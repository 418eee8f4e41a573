"""Command line of the crash harness (`loadtest.crash_harness`): kill the CSMS M times under a
simulated fleet and audit the ledger.

    python -m loadtest.crash_storm [--chargers 200] [--kills 10] [--duration 6h]
                                   [--rate 300] [--seed 1] [--scenario city]
                                   [--versions 1.6,2.0.1] [--json PATH]

The fleet mixes OCPP 1.6 and 2.0.1 chargers (half each unless `--versions` says otherwise).
Prints kills survived, acknowledged messages (per version), lost, duplicates, Wh and money
differences and unbalanced postings; exits 1 unless all of them are 0 and the server ended cleanly.
Everything runs on 127.0.0.1 in a temporary directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import orjson
import trio
import trio.testing

from csms.logs import configure_logging
from loadtest.crash_harness import CrashPlan, CrashStormResult, run_crash_storm
from simulator.cli import resolve_scenario
from simulator.scenario import Scenario, StationGroup, parse_duration

#: The versions of `--versions`, by how a user writes them.
VERSIONS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
#: Half of the fleet speaks each version unless told otherwise.
MIXED: tuple[tuple[str, float], ...] = (("ocpp1.6", 1.0), ("ocpp2.0.1", 1.0))


def parse_versions(text: str) -> tuple[tuple[str, float], ...]:
    """`1.6`, `2.0.1`, `1.6,2.0.1` (as many chargers of each) or `1.6=3,2.0.1=1` (a mix
    ratio): each version with its weight."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.strip().partition("=")
        if name not in VERSIONS:
            raise ValueError(f"unknown OCPP version {name!r} (use {', '.join(VERSIONS)})")
        share = float(weight) if weight else 1.0
        if not share > 0:
            raise ValueError(f"the weight of {name} must be positive")
        mix[VERSIONS[name]] = share
    return tuple(mix.items())


def split_by_version(
    groups: tuple[StationGroup, ...], versions: tuple[tuple[str, float], ...]
) -> tuple[StationGroup, ...]:
    """Every group split into one group per version, in proportion to the weights (the
    prefix gains the version: CITY-AC-16, CITY-AC-201). A group too small to split goes
    whole to the version furthest below its share so far, so that small fleets still mix."""
    if len(versions) == 1:
        version = versions[0][0]
        return tuple(g.model_copy(update={"ocpp_version": version}) for g in groups)
    total = sum(weight for _, weight in versions)
    split: list[StationGroup] = []
    assigned = [0] * len(versions)
    for group in groups:
        counts = _apportion(group.count, [weight / total for _, weight in versions])
        if sum(1 for count in counts if count) < 2:
            behind = min(range(len(versions)), key=lambda i: assigned[i] / versions[i][1])
            counts = [0] * len(versions)
            counts[behind] = group.count
        assigned = [a + c for a, c in zip(assigned, counts, strict=True)]
        for (version, _), count in zip(versions, counts, strict=True):
            if count:
                suffix = version.removeprefix("ocpp").replace(".", "")
                split.append(
                    group.model_copy(
                        update={
                            "prefix": f"{group.prefix}-{suffix}",
                            "count": count,
                            "ocpp_version": version,
                        }
                    )
                )
    return tuple(split)


def _apportion(count: int, shares: list[float]) -> list[int]:
    """`count` split by `shares` (largest remainders), summing to `count`."""
    exact = [count * share for share in shares]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: count - sum(counts)]:
        counts[i] += 1
    return counts


def crash_scenario(
    name: str,
    chargers: int,
    duration_s: float,
    seed: int,
    meter_interval_s: float = 60,
    versions: tuple[tuple[str, float], ...] = MIXED,
) -> Scenario:
    """The scenario resized, its chargers speaking `versions` (mixed by default), with busy
    drivers and frequent meter values: load to crash under."""
    base = resolve_scenario(name).with_overrides(
        chargers=chargers, duration_s=duration_s, seed=seed
    )
    return base.model_copy(
        update={
            # From 8 in the morning (the site's time): a short run still sees drivers.
            "start": base.start.replace(hour=8),
            "stations": split_by_version(base.stations, versions),
            "drivers": base.drivers.model_copy(update={"scale": 20.0}),
            "charger": base.charger.model_copy(
                update={"meter_interval_s": meter_interval_s, "connect_spread_s": 0}
            ),
        }
    )


def run_sync(plan: CrashPlan) -> CrashStormResult:
    """`run_crash_storm` in its own `trio.run`, on a clock `plan.rate` times real time."""
    with tempfile.TemporaryDirectory(prefix="crash-storm-") as workdir:
        result: CrashStormResult = trio.run(
            run_crash_storm,
            plan,
            Path(workdir),
            clock=trio.testing.MockClock(rate=plan.rate),
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.crash_storm", description=__doc__)
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--duration", default="6h", help="simulated, e.g. 90m, 6h, 1d")
    parser.add_argument("--rate", type=float, default=300.0, help="simulated s per real s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenario", default="city")
    parser.add_argument(
        "--versions",
        type=parse_versions,
        default=MIXED,
        help="the fleet's OCPP versions: 1.6, 2.0.1, 1.6,2.0.1 (the default, half each)"
        " or a mix ratio such as 1.6=3,2.0.1=1",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    configure_logging("error")
    scenario = crash_scenario(
        args.scenario,
        args.chargers,
        parse_duration(args.duration),
        args.seed,
        versions=args.versions,
    )
    result = run_sync(CrashPlan(scenario, args.kills, args.rate, seed=args.seed))
    figures = result.figures()
    for key, value in figures.items():
        print(f"{key:>24}  {value}")
    for example in result.audit.examples:
        print(f"  problem: {example}")
    if result.log_tail:
        print(f"server log:\n{result.log_tail}", file=sys.stderr)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
