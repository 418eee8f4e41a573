"""Wire-mode capacity of one simulator process: how many virtual chargers stay on schedule.

For each fleet size the bench starts a fresh `csms serve` (its own SQLite file, heartbeat
interval 60 s, the fleet's stations and tokens registered) pinned to one CPU, and runs the
fleet in this process pinned to the other, in real time, with meter values every 60 s and the
city scenario's drivers during the morning peak. It measures:

- RSS per virtual charger: this process's RSS once the fleet is up, less its RSS before the
  fleet was planned, over the number of chargers;
- schedule: the lateness of a 1 s probe timer in the simulator's own event loop (p50, p99,
  max) after the ramp (the first minute, over which the chargers connect and boot, evenly
  spread as a real fleet's are; its worst lateness is reported apart), and the share of
  stations whose last heartbeat in the CSMS's ledger is older than 1.5 intervals at the end.
  A fleet is on schedule when p99 lateness is under 1 s and no station missed its heartbeat.

    python -m loadtest.bench_fleet [--chargers 1000,2000,5000,10000] [--duration 180]
                                   [--json PATH]

Everything listens on 127.0.0.1; every server is stopped at the end of its step.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil
import trio

from csms.storage.sqlite import SqliteStore
from loadtest.bench import Cpus, ServerSpec, child_env, csms_env, running_server
from simulator.cli import resolve_scenario
from simulator.fleet import plan_fleet, run_fleet
from simulator.inprocess import virtual_wall_clock
from simulator.run import register_fleet
from simulator.scenario import ChargerSettings
from simulator.transport import url_connector

HEARTBEAT_S = 60
METER_S = 60
ON_SCHEDULE_P99_S = 1.0
#: The first minute: every charger connects and boots; the schedule is judged after it.
RAMP_S = 60.0


class FleetServer(ServerSpec):
    """`csms serve` with the bench's heartbeat interval."""

    def command(self, port: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
        env = csms_env(workdir, port)
        env["CSMS_HEARTBEAT_INTERVAL"] = str(HEARTBEAT_S)
        return [sys.executable, "-m", "csms", "serve"], child_env(env)


@dataclass
class StepResult:
    chargers: int
    rss_per_charger_kb: float
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    ramp_lag_max_s: float
    missed_heartbeat_share: float
    sessions: int
    cpu_share: float

    @property
    def on_schedule(self) -> bool:
        return self.lag_p99_s < ON_SCHEDULE_P99_S and self.missed_heartbeat_share == 0


async def _probe_lag(
    lags: list[float], ramp_lags: list[float], ramp_s: float, interval: float = 1.0
) -> None:
    """Lateness of a 1 s timer: during the ramp (every charger connecting and booting at
    once) and after it (the steady state the schedule is judged on)."""
    ramp_ends = trio.current_time() + ramp_s
    while True:
        due = trio.current_time() + interval
        await trio.sleep_until(due)
        (ramp_lags if due < ramp_ends else lags).append(trio.current_time() - due)


def run_step(
    chargers: int, duration_s: float, cpus: Cpus, workdir: Path, ramp_s: float = RAMP_S
) -> StepResult:
    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    # The morning peak: sessions start and stop during the run.
    start = datetime.now(UTC).replace(microsecond=0)
    local_start = start.astimezone().replace(hour=8, minute=0, second=0)
    scenario = resolve_scenario("city").with_overrides(chargers=chargers, duration_s=duration_s)
    scenario = scenario.model_copy(
        update={
            "start": local_start,
            "charger": ChargerSettings(
                meter_interval_s=METER_S,
                clock_aligned_interval_s=0,
                heartbeat_interval_s=HEARTBEAT_S,
                connect_spread_s=ramp_s,
            ),
        }
    )
    plan = plan_fleet(scenario)
    workdir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(str(workdir / "bench.db"))
    try:
        register_fleet(store, plan)
    finally:
        store.close()
    lags: list[float] = []
    ramp_lags: list[float] = []
    fleet_rss: list[int] = []
    with running_server(FleetServer("csms", "csms"), workdir, cpus.server) as server:
        url = f"ws://127.0.0.1:{server.port}/ocpp"

        async def main() -> int:
            clock = virtual_wall_clock(scenario.start)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_probe_lag, lags, ramp_lags, ramp_s)

                async def sample_rss() -> None:
                    # The fleet is up after its first minute; keep the highest reading.
                    await trio.sleep(min(ramp_s, duration_s / 2))
                    while True:
                        fleet_rss.append(process.memory_info().rss)
                        await trio.sleep(5)

                nursery.start_soon(sample_rss)
                result = await run_fleet(
                    plan,
                    lambda station_id: url_connector(url, station_id),
                    clock,
                    record_messages=False,
                    settle_s=30,
                )
                nursery.cancel_scope.cancel()
            return sum(len(cp.sessions) for cp in result.chargers)

        cpu_before = process.cpu_times()
        wall_before = time.perf_counter()
        sessions = trio.run(main)
        cpu = process.cpu_times()
        cpu_share = (cpu.user + cpu.system - cpu_before.user - cpu_before.system) / (
            time.perf_counter() - wall_before
        )
        missed = _missed_heartbeats(workdir / "bench.db", len(plan.stations))
    lag = np.array(lags or [0.0])
    return StepResult(
        chargers=chargers,
        rss_per_charger_kb=(max(fleet_rss or [rss_before]) - rss_before) / 1024 / chargers,
        lag_p50_s=float(np.percentile(lag, 50)),
        lag_p99_s=float(np.percentile(lag, 99)),
        lag_max_s=float(lag.max()),
        ramp_lag_max_s=float(max(ramp_lags, default=0.0)),
        missed_heartbeat_share=missed,
        sessions=sessions,
        cpu_share=cpu_share,
    )


def _missed_heartbeats(db: Path, stations: int) -> float:
    """The share of stations whose last heartbeat (by the CSMS's clock) is older than 1.5
    intervals before the last one any station sent: those fell behind their schedule."""
    store = SqliteStore(str(db))
    try:
        rows = store.list_stations()
    finally:
        store.close()
    beats = [datetime.fromisoformat(r["last_heartbeat_at"]) for r in rows if r["last_heartbeat_at"]]
    if not beats:
        return 1.0
    newest = max(beats)
    behind = sum(1 for b in beats if newest - b > timedelta(seconds=1.5 * HEARTBEAT_S))
    return (behind + stations - len(beats)) / stations


def _table(results: list[StepResult]) -> str:
    lines = [
        "| chargers | KB RSS/charger | loop lag p50 s | p99 s | max s | ramp max s "
        "| missed heartbeats | sim CPU | sessions | on schedule |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.chargers} | {r.rss_per_charger_kb:.1f} | {r.lag_p50_s:.3f} | "
            f"{r.lag_p99_s:.3f} | {r.lag_max_s:.3f} | {r.ramp_lag_max_s:.3f} | "
            f"{r.missed_heartbeat_share:.1%} | "
            f"{r.cpu_share:.0%} | {r.sessions} | {'yes' if r.on_schedule else 'no'} |"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_fleet", description=__doc__)
    parser.add_argument("--chargers", default="1000,2000,5000,10000")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds per step")
    parser.add_argument(
        "--ramp", type=float, default=RAMP_S, help="seconds for the fleet to come up, not judged"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--step-json", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        steps = [int(n) for n in args.chargers.split(",")]
        if not steps or min(steps) < 1 or args.duration <= args.ramp:
            raise ValueError
    except ValueError:
        _parser().error(
            "--chargers takes positive integers separated by commas; --duration > --ramp"
        )
    cpus = Cpus.pick()
    if cpus.load is not None:
        os.sched_setaffinity(0, {cpus.load})
    if args.step_json is not None:  # one step, in this fresh process
        (n,) = steps
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
            result = run_step(n, args.duration, cpus, Path(tmp), args.ramp)
        args.step_json.write_bytes(orjson.dumps(vars(result)))
        return
    results: list[StepResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        for n in steps:
            sys.stderr.write(f"[bench_fleet] {n} chargers for {args.duration:.0f} s\n")
            # Each step in a process of its own: memory freed by a smaller fleet must not
            # flatter the next one's RSS.
            out = Path(tmp) / f"{n}.json"
            argv = [sys.executable, "-m", "loadtest.bench_fleet", "--chargers", str(n)]
            argv += ["--duration", str(args.duration), "--ramp", str(args.ramp)]
            argv += ["--step-json", str(out)]
            subprocess.run(argv, check=True, env=child_env())
            results.append(StepResult(**orjson.loads(out.read_bytes())))
            sys.stderr.write(_table(results[-1:]) + "\n")
    print(_table(results))
    best = max((r.chargers for r in results if r.on_schedule), default=0)
    print(f"most chargers on schedule: {best} (target 10000); target RSS <= 20 KB/charger")
    if args.json:
        document: dict[str, Any] = {"steps": [vars(r) for r in results], "on_schedule": best}
        args.json.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
