"""The capacity-planning report (`python -m loadtest.capacity`): files a planner reads.

Owns: `capacity.md` (the steps table, the per-action latencies, the derived figures),
`capacity.csv` (one row per step and action, `Aggregated` included), `capacity.json` (all of
it as data) and `capacity.png` (matplotlib, Agg backend: p50/p99 per action against chargers,
CPU per 1,000 chargers, stress throughput and p99 against users with the knee marked).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadtest.locust_figures import (
    P99_LIMIT_MS,
    Capacity,
    StepResult,
    capacity,
    knee,
    result_dict,
)

if TYPE_CHECKING:
    from loadtest.bench import Cpus
    from loadtest.capacity import CapacityConfig

CSV_COLUMNS = (
    "profile",
    "chargers",
    "type",
    "name",
    "requests",
    "failures",
    "msgs_per_s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "server_cpu_pct",
    "cpu_pct_per_1000_chargers",
    "server_rss_peak_mb",
    "locust_cpu_pct",
)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _markdown(rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def steps_rows(results: Sequence[StepResult]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        (
            "profile",
            "chargers",
            "msgs/s",
            "failures",
            "p50 ms",
            "p99 ms",
            "CSMS CPU %",
            "CPU % / 1k chargers",
            "CSMS RSS MB",
            "KB / charger",
            "Locust CPU %",
        )
    ]
    for r in results:
        rows.append(
            (
                r.step.profile,
                f"{r.step.chargers:,}",
                _fmt(r.msgs_per_s),
                f"{r.failed:,}",
                _fmt(r.p50_ms, 0),
                _fmt(r.p99_ms, 0),
                _fmt(r.server_cpu_pct),
                _fmt(r.cpu_per_1000, 2) if r.step.profile == "realistic" else "-",
                _fmt(r.server_rss_peak_mb),
                _fmt(r.kb_per_charger),
                _fmt(r.locust_cpu_pct) + (" (!)" if r.locust_cpu_warning else ""),
            )
        )
    return rows


def action_rows(results: Sequence[StepResult]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        ("profile", "chargers", "type", "action", "requests", "failures", "p50 ms", "p99 ms")
    ]
    for r in results:
        for a in r.actions:
            rows.append(
                (
                    r.step.profile,
                    f"{r.step.chargers:,}",
                    a.request_type,
                    a.name,
                    f"{a.requests:,}",
                    f"{a.failures:,}",
                    _fmt(a.p50_ms, 0),
                    _fmt(a.p99_ms, 0),
                )
            )
    return rows


def derived_lines(results: Sequence[StepResult]) -> list[str]:
    cap = capacity(list(results))
    lines = []
    best = knee(list(results))
    if best is not None:
        lines.append(
            f"- knee (most msgs/s per ms of p99): {best.step.chargers:,} {best.step.profile} "
            f"chargers, {best.msgs_per_s:,.0f} msgs/s at p99 {best.p99_ms:g} ms"
        )
    realistic = [r for r in results if r.step.profile == "realistic" and r.requests]
    if realistic:
        per_1000 = sum(r.cpu_per_1000 for r in realistic) / len(realistic)
        lines.append(f"- CSMS CPU per 1,000 realistic chargers: {per_1000:.2f} % of one core")
    lines.append(f"- chargers per core at p99 < {P99_LIMIT_MS:g} ms: {_capacity_text(cap)}")
    loaded = [r for r in results if r.step.profile == "stress" and r.locust_cpu_pct > 0]
    if loaded:
        rate = max(r.msgs_per_s * 100.0 / r.locust_cpu_pct for r in loaded)
        lines.append(
            f"- Locust: up to {rate:,.0f} OCPP round trips per CPU-second of one worker process "
            "(stress steps)"
        )
    busy = [r.step.label for r in results if r.locust_cpu_warning or r.locust_cpu_pct > 90]
    if busy:
        lines.append(
            f"- Locust was CPU-bound in {', '.join(busy)}: those steps measure the load "
            "generator too; add workers (`--processes`) or a machine"
        )
    failing = [r for r in results if r.failed]
    for r in failing:
        kinds = "; ".join(f"{f['Name']}: {f['Error']} x{f['Occurrences']}" for f in r.failures[:3])
        lines.append(f"- {r.step.label}: {r.failed} failures ({kinds})")
    return lines


def _capacity_text(cap: Capacity) -> str:
    if cap.chargers_per_core is None:
        return "not measured (no step met the limit without failures)"
    parts = [f"**{cap.chargers_per_core:,.0f}**"]
    if cap.by_cpu is not None:
        parts.append(f"CPU-scaled from the {cap.by_cpu_step:,}-charger step: {cap.by_cpu:,.0f}")
    if cap.by_stress is not None and cap.realistic_msgs_per_charger_s is not None:
        parts.append(
            f"stress throughput {cap.stress_msgs_per_s:,.0f} msgs/s over "
            f"{cap.realistic_msgs_per_charger_s:.4f} msgs/s per realistic charger: "
            f"{cap.by_stress:,.0f}"
        )
    return parts[0] + " (the smaller of: " + "; ".join(parts[1:]) + ")"


def markdown(results: Sequence[StepResult], config: CapacityConfig, cpus: Cpus) -> str:
    pinning = (
        f"CSMS on CPU {cpus.server}, Locust on CPU {cpus.load}"
        if cpus.server is not None
        else "not pinned (fewer than 2 CPUs)"
    )
    heartbeat = (
        f"{config.heartbeat_interval:g} s" if config.heartbeat_interval else "the CSMS's interval"
    )
    return "\n".join(
        [
            "# CSMS capacity (OCPP 1.6J, Locust)",
            "",
            f"Realistic chargers: heartbeat {heartbeat}, MeterValues every "
            f"{config.meter_interval:g} s while charging, {config.sessions_per_day:g} sessions "
            f"a day of {config.session_minutes:g} min; {config.duration:g} s measured per step "
            f"after {config.settle:g} s of settling. Stress users: no waits, "
            f"{config.stress_duration:g} s per step after {config.stress_settle:g} s. A fresh "
            f"CSMS (SQLite, durable) per step; {pinning}; all users up before the settling "
            "starts, so boots are not measured.",
            "",
            _markdown(steps_rows(results)),
            "",
            *derived_lines(results),
            "",
            "## Per action",
            "",
            _markdown(action_rows(results)),
            "",
        ]
    )


def csv_rows(results: Sequence[StepResult]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        entries = [*r.actions, *([r.total] if r.total else [])]
        for a in entries:
            rows.append(
                {
                    "profile": r.step.profile,
                    "chargers": r.step.chargers,
                    "type": a.request_type,
                    "name": a.name,
                    "requests": a.requests,
                    "failures": a.failures,
                    "msgs_per_s": round(a.requests / r.window_s, 3) if r.window_s else 0.0,
                    "p50_ms": a.p50_ms,
                    "p90_ms": a.p90_ms,
                    "p99_ms": a.p99_ms,
                    "max_ms": round(a.max_ms, 3),
                    "server_cpu_pct": r.server_cpu_pct,
                    "cpu_pct_per_1000_chargers": round(r.cpu_per_1000, 3),
                    "server_rss_peak_mb": r.server_rss_peak_mb,
                    "locust_cpu_pct": r.locust_cpu_pct,
                }
            )
    return rows


def write_report(
    results: Sequence[StepResult], config: CapacityConfig, cpus: Cpus, out: Path
) -> list[Path]:
    """Write the report files into `out`; the paths written (no PNG without matplotlib)."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(results, config, cpus)
    md = out / "capacity.md"
    md.write_text(text)
    print(text)
    table = out / "capacity.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_rows(results))
    document = out / "capacity.json"
    best = knee(list(results))
    cap = capacity(list(results))
    document.write_text(
        json.dumps(
            {
                "config": asdict(config),
                "cpus": {"server": cpus.server, "locust": cpus.load},
                "steps": [result_dict(r) for r in results],
                "knee": None
                if best is None
                else {"profile": best.step.profile, "chargers": best.step.chargers},
                "capacity": asdict(cap) | {"chargers_per_core": cap.chargers_per_core},
            },
            indent=2,
        )
    )
    paths = [md, table, document]
    png = plot(results, out / "capacity.png")
    if png is not None:
        paths.append(png)
    return paths


# -- the plot --------------------------------------------------------------------------------


def plot(results: Sequence[StepResult], path: Path) -> Path | None:
    """The PNG; None (and a note on stderr) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        import sys

        sys.stderr.write("capacity: matplotlib is not installed: no plot\n")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    realistic = [r for r in results if r.step.profile == "realistic"]
    stress = [r for r in results if r.step.profile == "stress"]
    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    _latency_panel(axes[0][0], realistic, "realistic: latency per action", "chargers")
    _latency_panel(axes[1][0], stress, "stress: latency per action", "users (no waits)")
    cpu = axes[0][1]
    if realistic:
        xs = [r.step.chargers for r in realistic]
        cpu.plot(xs, [r.cpu_per_1000 for r in realistic], "o-", label="CPU % per 1k chargers")
        _step_axis(cpu, xs)
        rss = cpu.twinx()
        rss.plot(xs, [r.server_rss_peak_mb for r in realistic], "s--", color="gray")
        rss.set_ylabel("CSMS RSS (MB, dashed)")
    cpu.set_title("realistic: CSMS CPU per 1,000 chargers")
    cpu.set_xlabel("chargers")
    cpu.set_ylabel("% of one core per 1,000 chargers")
    load = axes[1][1]
    best = knee(list(results))
    if stress:
        xs = [r.step.chargers for r in stress]
        load.plot(xs, [r.msgs_per_s for r in stress], "o-", label="msgs/s")
        _step_axis(load, xs)
        p99 = load.twinx()
        p99.plot(xs, [r.p99_ms for r in stress], "s--", color="tab:red", label="p99 ms")
        p99.set_ylabel("p99 ms (dashed)")
        if best is not None and best.step.profile == "stress":
            load.axvline(best.step.chargers, color="tab:green", linestyle=":")
            load.annotate(f"knee: {best.step.chargers}", (best.step.chargers, best.msgs_per_s))
    load.set_title("stress: throughput and p99 against users")
    load.set_xlabel("users (no waits)")
    load.set_ylabel("msgs/s")
    per_core = capacity(list(results)).chargers_per_core
    figure.suptitle(
        f"CSMS capacity: chargers per core at p99 < {P99_LIMIT_MS:g} ms: "
        + ("not measured" if per_core is None else f"{per_core:,.0f}")
        + ("" if best is None else f"; knee at {best.step.chargers:,} {best.step.profile}")
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _latency_panel(axis: Any, results: Sequence[StepResult], title: str, xlabel: str) -> None:
    names = sorted({a.name for r in results for a in r.actions if a.request_type != "WS"})
    xs = [r.step.chargers for r in results]
    for name in names:
        by_step = [{a.name: a for a in r.actions}.get(name) for r in results]
        p99 = [a.p99_ms if a else float("nan") for a in by_step]
        p50 = [a.p50_ms if a else float("nan") for a in by_step]
        (line,) = axis.plot(xs, p99, "o-", label=f"{name} p99")
        axis.plot(xs, p50, "x:", color=line.get_color())
    axis.axhline(P99_LIMIT_MS, color="tab:red", linewidth=0.8)
    if xs:
        _step_axis(axis, xs)
    axis.set_title(title + " (solid p99, dotted p50)")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("ms")
    if names:
        axis.legend(fontsize=7)


def _step_axis(axis: Any, steps: Sequence[int]) -> None:
    """A log x axis labelled with the step sizes themselves."""
    axis.set_xscale("log")
    axis.set_xticks(list(steps), [f"{n:,}" for n in steps])
    axis.minorticks_off()
