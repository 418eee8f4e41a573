"""Capacity-planning figures from Locust steps: pure data, no processes.

Owns: a step (`Step`: a profile and a number of chargers), its measured result
(`StepResult`: Locust's per-action stats, the CSMS's CPU and RSS), and the figures derived
from a run's steps: CPU per 1,000 chargers, the knee (`knee`), and chargers per core at
p99 < 100 ms (`capacity`). `loadtest.capacity` measures the steps; `loadtest.locust_report`
writes them out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from loadtest.locust_run import ActionStats

P99_LIMIT_MS = 100.0


@dataclass(frozen=True)
class Step:
    profile: str  # "realistic" or "stress"
    chargers: int

    @property
    def label(self) -> str:
        return f"{self.profile}-{self.chargers}"


@dataclass
class StepResult:
    """One step's figures: Locust's per-action stats and the CSMS's resources."""

    step: Step
    window_s: float
    actions: list[ActionStats]
    total: ActionStats | None
    server_cpu_pct: float
    server_rss_start_mb: float
    server_rss_peak_mb: float
    locust_cpu_pct: float
    locust_cpu_warning: bool = False
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return self.total.requests if self.total else 0

    @property
    def failed(self) -> int:
        return self.total.failures if self.total else 0

    @property
    def msgs_per_s(self) -> float:
        return self.requests / self.window_s if self.window_s > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        return self.total.p50_ms if self.total else 0.0

    @property
    def p99_ms(self) -> float:
        return self.total.p99_ms if self.total else 0.0

    @property
    def cpu_per_1000(self) -> float:
        """CSMS CPU (% of one core) per 1,000 chargers."""
        return self.server_cpu_pct * 1000.0 / self.step.chargers

    @property
    def kb_per_charger(self) -> float:
        grown = self.server_rss_peak_mb - self.server_rss_start_mb
        return max(0.0, grown) * 1024.0 / self.step.chargers

    @property
    def meets_p99(self) -> bool:
        return self.requests > 0 and self.failed == 0 and self.p99_ms < P99_LIMIT_MS


# -- derived figures -----------------------------------------------------------------------


def knee(results: list[StepResult]) -> StepResult | None:
    """The step with the most throughput per unit of p99 latency (Kleinrock's power): past
    it, more load buys more waiting than more work. Over the stress steps if any."""
    stress = [r for r in results if r.step.profile == "stress" and r.requests]
    candidates = stress or [r for r in results if r.requests]
    if not candidates:
        return None
    return max(candidates, key=lambda r: r.msgs_per_s / max(r.p99_ms, 1.0))


@dataclass(frozen=True)
class Capacity:
    """Chargers one CSMS core carries at p99 < 100 ms, two ways, and the smaller of them."""

    #: From the largest realistic step within the limit, its CPU scaled to a whole core.
    by_cpu: float | None
    by_cpu_step: int | None
    #: The best stress throughput within the limit over one realistic charger's message rate.
    by_stress: float | None
    realistic_msgs_per_charger_s: float | None
    stress_msgs_per_s: float | None

    @property
    def chargers_per_core(self) -> float | None:
        known = [v for v in (self.by_cpu, self.by_stress) if v is not None]
        return min(known) if known else None


def capacity(results: list[StepResult]) -> Capacity:
    realistic = [r for r in results if r.step.profile == "realistic" and r.meets_p99]
    stress = [r for r in results if r.step.profile == "stress" and r.meets_p99]
    largest = max(realistic, key=lambda r: r.step.chargers, default=None)
    by_cpu = None
    per_charger = None
    if largest is not None:
        if largest.server_cpu_pct > 0:
            by_cpu = largest.step.chargers * 100.0 / largest.server_cpu_pct
        per_charger = largest.msgs_per_s / largest.step.chargers
    best = max((r.msgs_per_s for r in stress), default=None)
    by_stress = best / per_charger if best and per_charger else None
    return Capacity(
        by_cpu=by_cpu,
        by_cpu_step=largest.step.chargers if largest else None,
        by_stress=by_stress,
        realistic_msgs_per_charger_s=per_charger,
        stress_msgs_per_s=best,
    )


def result_dict(result: StepResult) -> dict[str, Any]:
    """A step as plain data (JSON), with its derived figures."""
    return {
        "profile": result.step.profile,
        "chargers": result.step.chargers,
        "window_s": result.window_s,
        "requests": result.requests,
        "failures": result.failed,
        "msgs_per_s": round(result.msgs_per_s, 2),
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "server_cpu_pct": result.server_cpu_pct,
        "cpu_pct_per_1000_chargers": round(result.cpu_per_1000, 3),
        "server_rss_start_mb": result.server_rss_start_mb,
        "server_rss_peak_mb": result.server_rss_peak_mb,
        "kb_per_charger": round(result.kb_per_charger, 2),
        "locust_cpu_pct": result.locust_cpu_pct,
        "locust_cpu_warning": result.locust_cpu_warning,
        "actions": [asdict(a) for a in result.actions],
        "failure_kinds": result.failures,
    }
