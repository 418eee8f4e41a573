"""The side-by-side bench's report: ratios ours/reference, the targets and whether they are met,
the problems each run showed, the text table printed at the end, and the JSON document
(`report`) that `python -m loadtest.bench --json PATH` writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadtest.bench import BenchConfig, Cpus, ServerResult

TARGET_THROUGHPUT_RATIO = 2.0
TARGET_P99_RATIO = 0.5
TARGET_KB_PER_CONNECTION = 25.0


def ratio(ours: float | None, reference: float | None) -> float | None:
    if ours is None or reference is None or reference == 0:
        return None
    return round(ours / reference, 3)


@dataclass
class Verdict:
    name: str
    value: float | None
    target: str
    met: bool | None


def verdicts(ours: ServerResult, reference: ServerResult) -> list[Verdict]:
    throughput = ratio(ours.msgs_per_s, reference.msgs_per_s)
    p99 = ratio(ours.p99_ms, reference.p99_ms)
    kb = ours.kb_per_connection
    return [
        Verdict(
            "throughput ours/reference",
            throughput,
            f">= {TARGET_THROUGHPUT_RATIO:g}x",
            None if throughput is None else throughput >= TARGET_THROUGHPUT_RATIO,
        ),
        Verdict(
            "p99 ours/reference",
            p99,
            f"<= {TARGET_P99_RATIO:g}x",
            None if p99 is None else p99 <= TARGET_P99_RATIO,
        ),
        Verdict(
            "memory per idle connection (KB, ours)",
            kb,
            f"<= {TARGET_KB_PER_CONNECTION:g} KB",
            None if kb is None else kb <= TARGET_KB_PER_CONNECTION,
        ),
    ]


def _cell(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def format_table(ours: ServerResult, reference: ServerResult) -> str:
    rows: list[tuple[str, str, str, str]] = []

    def add(name: str, mine: float | int | None, theirs: float | int | None, digits: int) -> None:
        mine_f = None if mine is None else float(mine)
        theirs_f = None if theirs is None else float(theirs)
        r = ratio(mine_f, theirs_f)
        shown = "-" if r is None else f"{r:,.2f}x"
        rows.append((name, _cell(mine, digits), _cell(theirs, digits), shown))

    add("throughput (msgs/s)", ours.msgs_per_s, reference.msgs_per_s, 0)
    add("p50 latency (ms)", ours.load["p50_ms"], reference.load["p50_ms"], 2)
    add("p99 latency (ms)", ours.p99_ms, reference.p99_ms, 2)
    add("CALLs measured", int(ours.load["calls"]), int(reference.load["calls"]), 0)
    add("CALLERRORs", int(ours.load["call_errors"]), int(reference.load["call_errors"]), 0)
    add("memory / idle conn (KB)", ours.kb_per_connection, reference.kb_per_connection, 1)
    header = ("", f"ours ({ours.kind})", f"reference ({reference.kind})", "ours/ref")
    return _render([header, *rows])


def format_verdicts(results: list[Verdict]) -> str:
    rows = [("target", "value", "wanted", "met")]
    for v in results:
        met = "n/a" if v.met is None else ("yes" if v.met else "NO")
        rows.append((v.name, _cell(v.value, 2), v.target, met))
    return _render(rows)


def _render(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            row[0].ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
        ]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def problems(result: ServerResult) -> list[str]:
    load = result.load
    found = []
    if load["call_errors"]:
        found.append(f"{load['call_errors']} CALLERRORs: {load['call_error_kinds']}")
    if load["connected"] < load["chargers"]:
        found.append(f"only {load['connected']} of {load['chargers']} chargers connected")
    if load["disconnects"]:
        found.append(f"disconnects: {load['disconnects']}")
    if load["connect_failures"]:
        found.append(f"connection failures: {load['connect_failures']}")
    if load["boots_not_accepted"]:
        found.append(f"{load['boots_not_accepted']} BootNotifications not Accepted")
    if load["bad_frames"]:
        found.append(f"{load['bad_frames']} unparsable or unexpected frames")
    refused = {k: n for k, n in load["authorize_statuses"].items() if k != "Accepted"}
    if refused:
        found.append(f"Authorize answered {refused} (tags not registered?)")
    memory = result.memory
    if memory and memory["connections_open"] < memory["connections_requested"]:
        found.append(
            f"only {memory['connections_open']} of {memory['connections_requested']} idle "
            "connections opened"
        )
    return found


def report(
    ours: ServerResult, reference: ServerResult, config: BenchConfig, cpus: Cpus
) -> dict[str, Any]:
    """The JSON document of the whole run."""
    return {
        "config": asdict(config),
        "cpus": {"server": cpus.server, "loadgen": cpus.load},
        "servers": {
            "ours": asdict(ours) | {"problems": problems(ours)},
            "reference": asdict(reference) | {"problems": problems(reference)},
        },
        "ratios": {
            "throughput": ratio(ours.msgs_per_s, reference.msgs_per_s),
            "p99": ratio(ours.p99_ms, reference.p99_ms),
            "memory_per_connection": ratio(ours.kb_per_connection, reference.kb_per_connection),
        },
        "targets": [asdict(v) for v in verdicts(ours, reference)],
    }


def rounds_text(config: BenchConfig) -> str:
    run = f"{config.warmup:g} s warm-up + {config.segment:g} s measured per server"
    if config.rounds == 1:
        return f"one round of {run}"
    return f"{config.rounds} alternating rounds of {run} (figures: medians over the rounds)"


def print_report(
    ours: ServerResult, reference: ServerResult, config: BenchConfig, cpus: Cpus
) -> None:
    pinning = (
        f"server on CPU {cpus.server}, load generator on CPU {cpus.load}"
        if cpus.server is not None
        else "NOT pinned (fewer than 2 CPUs available)"
    )
    memory = (
        "no memory run" if config.skip_memory else f"{config.idle_connections} idle connections"
    )
    print(
        f"\nOCPP 1.6J side by side: {config.chargers} chargers; {rounds_text(config)}; "
        f"{memory}; {pinning}\n"
    )
    print(format_table(ours, reference))
    print()
    print(format_verdicts(verdicts(ours, reference)))
    for result in (ours, reference):
        for problem in problems(result):
            print(f"warning: {result.label}: {problem}")
