"""Command line of the crash harness (`loadtest.crash_harness`): kill the CSMS M times under a
simulated fleet and audit the ledger.

    python -m loadtest.crash_storm [--chargers 200] [--kills 10] [--duration 6h]
                                   [--rate 300] [--seed 1] [--scenario city] [--json PATH]

Prints kills survived, acknowledged messages, lost, duplicates, Wh and money differences and
unbalanced postings; exits 1 unless all of them are 0 and the server ended cleanly.
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
from simulator.scenario import Scenario, parse_duration


def crash_scenario(
    name: str, chargers: int, duration_s: float, seed: int, meter_interval_s: float = 60
) -> Scenario:
    """The scenario's 1.6 fleet (the audit reads 1.6 messages), resized, with busy drivers
    and frequent meter values: load to crash under."""
    base = resolve_scenario(name).with_overrides(
        chargers=chargers, duration_s=duration_s, seed=seed
    )
    groups = tuple(g.model_copy(update={"ocpp_version": "ocpp1.6"}) for g in base.stations)
    return base.model_copy(
        update={
            # From 8 in the morning (the site's time): a short run still sees drivers.
            "start": base.start.replace(hour=8),
            "stations": groups,
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
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    configure_logging("error")
    scenario = crash_scenario(
        args.scenario, args.chargers, parse_duration(args.duration), args.seed
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
