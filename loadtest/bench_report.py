"""The side-by-side bench's report: ratios ours/reference and ours/transport limit, the targets
and whether they are met, the problems each run showed, the text table printed at the end, and
the JSON document (`report`) that `python -m loadtest.bench --json PATH` writes.

Results come labelled `ours`, `reference` and `transport` (the last may be missing).
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
#: Our throughput as a share of the transport limit's.
TARGET_TRANSPORT_SHARE = 0.7


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


def by_label(results: Sequence[ServerResult]) -> dict[str, ServerResult]:
    return {r.label: r for r in results}


def verdicts(results: Sequence[ServerResult]) -> list[Verdict]:
    servers = by_label(results)
    ours, reference = servers["ours"], servers["reference"]
    throughput = ratio(ours.msgs_per_s, reference.msgs_per_s)
    p99 = ratio(ours.p99_ms, reference.p99_ms)
    kb = ours.kb_per_connection
    found = [
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
    transport = servers.get("transport")
    if transport is not None:
        share = ratio(ours.msgs_per_s, transport.msgs_per_s)
        found.append(
            Verdict(
                "throughput ours/transport limit",
                share,
                f">= {TARGET_TRANSPORT_SHARE:g}x",
                None if share is None else share >= TARGET_TRANSPORT_SHARE,
            )
        )
    return found


def _cell(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _measures(result: ServerResult) -> list[tuple[str, float | int | None, int]]:
    """(row name, value, digits) of one server, in table order."""
    return [
        ("throughput (msgs/s)", result.msgs_per_s, 0),
        ("p50 latency (ms)", float(result.load["p50_ms"]), 2),
        ("p99 latency (ms)", result.p99_ms, 2),
        ("CALLs measured", int(result.load["calls"]), 0),
        ("CALLERRORs", int(result.load["call_errors"]), 0),
        ("memory / idle conn (KB)", result.kb_per_connection, 1),
    ]


def format_table(results: Sequence[ServerResult], transport_stack: str = "") -> str:
    """One column per server, then ours/reference and ours/transport."""
    servers = by_label(results)
    ours = servers["ours"]
    others = [servers[label] for label in ("reference", "transport") if label in servers]
    names = {"reference": "ref", "transport": "transport"}
    header = [f"ours ({ours.kind})"]
    for other in others:
        detail = transport_stack if other.label == "transport" and transport_stack else other.kind
        header.append(f"{other.label} ({detail})")
    header += [f"ours/{names[other.label]}" for other in others]
    rows: list[tuple[str, ...]] = [("", *header)]
    columns = [_measures(r) for r in (ours, *others)]
    for i, (name, mine, digits) in enumerate(columns[0]):
        cells = [_cell(column[i][1], digits) for column in columns]
        for column in columns[1:]:
            theirs = column[i][1]
            r = ratio(
                None if mine is None else float(mine), None if theirs is None else float(theirs)
            )
            cells.append("-" if r is None else f"{r:,.2f}x")
        rows.append((name, *cells))
    return _render(rows)


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
    # The transport limit answers every CALL with an empty payload: no status to read.
    answers = result.kind != "transport"
    if load["boots_not_accepted"] and answers:
        found.append(f"{load['boots_not_accepted']} BootNotifications not Accepted")
    if load["bad_frames"]:
        found.append(f"{load['bad_frames']} unparsable or unexpected frames")
    refused = {k: n for k, n in load["authorize_statuses"].items() if k != "Accepted"}
    if refused and answers:
        found.append(f"Authorize answered {refused} (tags not registered?)")
    memory = result.memory
    if memory and memory["connections_open"] < memory["connections_requested"]:
        found.append(
            f"only {memory['connections_open']} of {memory['connections_requested']} idle "
            "connections opened"
        )
    return found


def report(results: Sequence[ServerResult], config: BenchConfig, cpus: Cpus) -> dict[str, Any]:
    """The JSON document of the whole run."""
    servers = by_label(results)
    ours, reference = servers["ours"], servers["reference"]
    ratios = {
        "throughput": ratio(ours.msgs_per_s, reference.msgs_per_s),
        "p99": ratio(ours.p99_ms, reference.p99_ms),
        "memory_per_connection": ratio(ours.kb_per_connection, reference.kb_per_connection),
    }
    transport = servers.get("transport")
    if transport is not None:
        ratios |= {
            "throughput_vs_transport": ratio(ours.msgs_per_s, transport.msgs_per_s),
            "p99_vs_transport": ratio(ours.p99_ms, transport.p99_ms),
            "memory_vs_transport": ratio(ours.kb_per_connection, transport.kb_per_connection),
        }
    return {
        "config": asdict(config),
        "cpus": {"server": cpus.server, "loadgen": cpus.load},
        "servers": {r.label: asdict(r) | {"problems": problems(r)} for r in results},
        "ratios": ratios,
        "targets": [asdict(v) for v in verdicts(results)],
    }


def rounds_text(config: BenchConfig) -> str:
    run = f"{config.warmup:g} s warm-up + {config.segment:g} s measured per server"
    if config.rounds == 1:
        return f"one round of {run}"
    return f"{config.rounds} alternating rounds of {run} (figures: medians over the rounds)"


def print_report(results: Sequence[ServerResult], config: BenchConfig, cpus: Cpus) -> None:
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
    print(format_table(results, config.transport_stack))
    print()
    print(format_verdicts(verdicts(results)))
    for result in results:
        for problem in problems(result):
            print(f"warning: {result.label}: {problem}")
