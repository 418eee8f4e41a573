"""Capacity planning: how many chargers one CSMS core carries, measured step by step.

Owns: the steps (realistic fleets of growing size, then stress users with no waits), one fresh
`csms serve` per step (its own SQLite database and token pool, unknown stations accepted,
pinned to one CPU as `loadtest.bench` does), a headless Locust run per step
(`loadtest.locust_run`, pinned to another CPU; its stats start anew once all users are up and
a settling time has passed, so the boot storm is not measured), the CSMS's CPU and RSS over
the measured window (psutil), the derived figures (CPU per 1,000 chargers,
the knee, chargers per core at p99 < 100 ms) and the command line. The table, CSV, JSON and
PNG are written by `loadtest.locust_report`.

    python -m loadtest.capacity                 # 500, 1000, 2000, 5000 realistic; then stress
    python -m loadtest.capacity --steps 100,200 --stress-steps 10,20 --duration 10 --out cap/

A realistic charger's waits come from `--heartbeat-interval` (0: the CSMS's, 300 s),
`--meter-interval`, `--sessions-per-day` and `--session-minutes`; a stress user sends its next
CALL as soon as the last is answered.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from loadtest.bench import (
    BenchError,
    Cpus,
    ServerSpec,
    child_env,
    progress,
    run_in_scratch,
    running_server,
)
from loadtest.locust_figures import Step, StepResult
from loadtest.locust_report import write_report
from loadtest.locust_run import AGGREGATED, locust_argv, read_failures, read_stats, start_locust

DEFAULT_STEPS = (500, 1000, 2000, 5000)
DEFAULT_STRESS_STEPS = (25, 50, 100, 200)
#: Seconds Locust may take per user to start them all, on top of a fixed allowance.
RAMP_S_PER_USER = 0.01
RAMP_ALLOWANCE_S = 60.0


@dataclass(frozen=True)
class CapacityConfig:
    steps: tuple[int, ...] = DEFAULT_STEPS
    stress_steps: tuple[int, ...] = DEFAULT_STRESS_STEPS
    #: Measured seconds per realistic step, once every charger is up.
    duration: float = 60.0
    stress_duration: float = 30.0
    #: Unmeasured seconds after all users are spawned: boots, first status notifications,
    #: and the realistic fleet's charging share starting its sessions (`WARMUP_S`).
    settle: float = 30.0
    stress_settle: float = 3.0
    spawn_rate: float = 500.0
    heartbeat_interval: float = 0.0
    meter_interval: float = 60.0
    sessions_per_day: float = 6.0
    session_minutes: float = 45.0
    tokens: int = 1000

    def plan(self) -> list[Step]:
        realistic = [Step("realistic", n) for n in self.steps]
        return realistic + [Step("stress", n) for n in self.stress_steps]

    def locust_options(self, step: Step) -> dict[str, object]:
        options: dict[str, object] = {
            "profile": step.profile,
            "settle": self.settling(step),
            "tokens": self.tokens,
            "id_prefix": f"CAP{step.chargers}-",
        }
        if step.profile == "realistic":
            options |= {
                "heartbeat_interval": self.heartbeat_interval,
                "meter_interval": self.meter_interval,
                "sessions_per_day": self.sessions_per_day,
                "session_minutes": self.session_minutes,
            }
        return options

    def seconds(self, step: Step) -> float:
        return self.duration if step.profile == "realistic" else self.stress_duration

    def settling(self, step: Step) -> float:
        return self.settle if step.profile == "realistic" else self.stress_settle


# -- one step --------------------------------------------------------------------------------


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def rss_mb(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / (1024.0 * 1024.0)


def run_step(step: Step, config: CapacityConfig, cpus: Cpus, workdir: Path) -> StepResult:
    """A fresh CSMS; Locust until all users are up and settled; then the measured window."""
    seconds = config.seconds(step)
    ramp_s = RAMP_ALLOWANCE_S + step.chargers * max(RAMP_S_PER_USER, 1.0 / config.spawn_rate)
    settle = config.settling(step)
    spec = ServerSpec("csms", "csms")
    with running_server(spec, workdir, cpus.server, tokens=config.tokens) as server:
        csms = psutil.Process(server.process.pid)
        rss_start = rss_mb(csms)
        prefix = workdir / "locust"
        argv = locust_argv(
            server.url,
            step.chargers,
            config.spawn_rate,
            prefix,
            run_time_s=ramp_s + settle + seconds + 30.0,  # a cap: we stop it after the window
            options=config.locust_options(step),
        )
        locust = start_locust(argv, workdir, child_env(), cpus.load, workdir / "locust.log")
        try:
            if not locust.wait_spawned(ramp_s):
                raise BenchError(f"{step.label}: Locust did not start all users in {ramp_s:.0f} s")
            if not locust.wait_reset(settle + 30.0):
                raise BenchError(f"{step.label}: Locust did not reset its stats; see {locust.log}")
            loader = psutil.Process(locust.process.pid)
            started = time.monotonic()
            cpu0, load0 = cpu_seconds(csms), cpu_seconds(loader)
            peak = rss_start
            while (left := started + seconds - time.monotonic()) > 0:
                time.sleep(min(1.0, left))
                server.check_alive()
                if locust.process.poll() is not None:
                    raise BenchError(f"{step.label}: Locust ended early; see {locust.log}")
                peak = max(peak, rss_mb(csms))
            window = time.monotonic() - started
            cpu1, load1 = cpu_seconds(csms), cpu_seconds(loader)
        finally:
            locust.stop()
    stats = read_stats(prefix)
    total = stats.pop(AGGREGATED, None)
    return StepResult(
        step=step,
        window_s=round(window, 3),
        actions=sorted((a for a in stats.values() if a.requests), key=lambda a: a.key),
        total=total,
        server_cpu_pct=round((cpu1 - cpu0) * 100.0 / window, 2),
        server_rss_start_mb=round(rss_start, 2),
        server_rss_peak_mb=round(peak, 2),
        locust_cpu_pct=round((load1 - load0) * 100.0 / window, 2),
        locust_cpu_warning=locust.cpu_warning.is_set(),
        failures=read_failures(prefix),
    )


def run_capacity(config: CapacityConfig, workdir: Path) -> tuple[list[StepResult], Cpus]:
    cpus = Cpus.pick()
    if cpus.server is None:
        progress("fewer than 2 CPUs available: the CSMS and Locust are not pinned")
    results = []
    plan = config.plan()
    for n, step in enumerate(plan, 1):
        progress(f"step {n}/{len(plan)}: {step.chargers} {step.profile} chargers")
        result = run_step(step, config, cpus, workdir / step.label)
        progress(
            f"{step.label}: {result.msgs_per_s:,.1f} msgs/s, p50 {result.p50_ms:g} ms, "
            f"p99 {result.p99_ms:g} ms, {result.failed} failures, "
            f"CSMS CPU {result.server_cpu_pct:.1f} %, Locust CPU {result.locust_cpu_pct:.1f} %"
        )
        results.append(result)
    return results, cpus


# -- command line ----------------------------------------------------------------------------


def _counts(text: str) -> tuple[int, ...]:
    counts = tuple(int(part) for part in text.split(",") if part.strip())
    if any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError("step sizes must be positive integers")
    return counts


def _parser() -> argparse.ArgumentParser:
    defaults = CapacityConfig()
    parser = argparse.ArgumentParser(description="CSMS capacity planning with Locust.")
    add = parser.add_argument
    add(
        "--steps", type=_counts, default=defaults.steps, help="realistic fleet sizes, e.g. 500,1000"
    )
    add(
        "--stress-steps", type=_counts, default=defaults.stress_steps, help="stress users ('' none)"
    )
    add("--duration", type=float, default=defaults.duration, help="measured s per realistic step")
    add("--stress-duration", type=float, default=None, help="measured s per stress step")
    add("--settle", type=float, default=defaults.settle, help="unmeasured s after spawning")
    add("--stress-settle", type=float, default=defaults.stress_settle)
    add("--spawn-rate", type=float, default=defaults.spawn_rate, help="users started per second")
    add("--heartbeat-interval", type=float, default=0.0, help="s (0: the CSMS's)")
    add("--meter-interval", type=float, default=defaults.meter_interval)
    add("--sessions-per-day", type=float, default=defaults.sessions_per_day)
    add("--session-minutes", type=float, default=defaults.session_minutes)
    add("--tokens", type=int, default=defaults.tokens, help="id tag pool registered per step")
    add("--out", type=Path, default=Path("capacity-report"), help="where the report goes")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    config = CapacityConfig(
        steps=args.steps,
        stress_steps=args.stress_steps,
        duration=args.duration,
        stress_duration=args.stress_duration or min(args.duration, 30.0),
        settle=args.settle,
        stress_settle=args.stress_settle,
        spawn_rate=args.spawn_rate,
        heartbeat_interval=args.heartbeat_interval,
        meter_interval=args.meter_interval,
        sessions_per_day=args.sessions_per_day,
        session_minutes=args.session_minutes,
        tokens=args.tokens,
    )
    if not config.plan():
        sys.exit("capacity: error: no steps (give --steps and/or --stress-steps)")
    results, cpus = run_in_scratch("capacity", lambda tmp: run_capacity(config, tmp))
    paths = write_report(results, config, cpus, args.out)
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
