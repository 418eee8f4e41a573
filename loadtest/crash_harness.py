"""The crash harness: a simulated fleet against a real `csms serve`, SIGKILLed M times.

`run_crash_storm` registers a wire-mode fleet (a scenario's stations, 1.6 and 2.0.1 ones
mixed as its station groups say, its tokens and tariff, and one invoice driver owning the
tokens, so every priced session is posted) in a fresh SQLite ledger, starts the CSMS, and
plays the fleet against it on a clock `rate` times faster than real time. A killer task
SIGKILLs the server at random moments (a seeded generator draws them over the run) and
restarts it at once on the same database and port; the simulator's chargers see their
connections drop, queue their transaction messages while the server is down, reconnect
(every `reconnect_delay_s` of simulated time) and redeliver. Once the fleet has finished and
every charger has delivered its queue, the server is stopped and the ledger audited: every
acknowledged message recorded (`loadtest.ledger_audit`: 1.6 transaction messages and 2.0.1
TransactionEvents), no duplicates, the simulator's ground truth reconciled to 0 Wh (and to 0
in money), postings balanced.

The harness lives in `loadtest` because it is a load run of the whole system, with a command
line (`loadtest.crash_storm`); the e2e test runs it small.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import trio

from csms.domain.records import DriverRecord
from csms.storage.sqlite import SqliteStore
from loadtest.csms_process import CsmsProcess
from loadtest.ledger_audit import LedgerAudit, audit_ledger
from simulator.chargepoint import Timing, VirtualChargePoint
from simulator.fleet import FleetPlan, FleetResult, plan_fleet, run_fleet
from simulator.inprocess import virtual_wall_clock
from simulator.records import Acknowledgement
from simulator.run import outcome_of, register_fleet
from simulator.scenario import Scenario
from simulator.transport import url_connector

FLEET_DRIVER = "CRASH-FLEET"


@dataclass(frozen=True)
class CrashPlan:
    """What to run: the scenario, how many kills, how fast, with which seed."""

    scenario: Scenario
    kills: int
    #: Simulated seconds per real second.
    rate: float
    seed: int = 0
    #: Real seconds the server stays up after a restart before it may be killed again.
    min_uptime_s: float = 1.0
    #: Real seconds a charger waits for an answer (the call timeout, in real time).
    call_timeout_s: float = 10.0
    #: Real seconds the fleet may take to deliver its queues after the run.
    settle_s: float = 60.0


@dataclass
class KillRecord:
    at_simulated_s: float
    #: Transaction messages queued in the chargers (unanswered) when the server died.
    queued_messages: int
    restart_s: float


@dataclass
class CrashStormResult:
    chargers: int
    kills: list[KillRecord]
    audit: LedgerAudit
    reconciliation: dict[str, Any]
    sessions: int
    energy_wh: int
    undelivered: int
    wall_s: float
    clean_exit: bool
    log_tail: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    #: The ledger the run left (while its workdir lives) and the messages it acknowledged:
    #: to audit again.
    ledger_path: Path | None = None
    acks: list[Acknowledgement] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.audit.clean
            and bool(self.reconciliation.get("exact"))
            and self.undelivered == 0
            and self.clean_exit
        )

    def figures(self) -> dict[str, Any]:
        return {
            "chargers": self.chargers,
            "kills_survived": len(self.kills),
            "acked_messages": self.audit.acknowledged,
            "acked_by_version": self.audit.acknowledged_by_version,
            "lost": self.audit.lost,
            "duplicates": self.audit.duplicate_transactions + self.audit.duplicate_samples,
            "unacknowledged_samples": self.audit.unacknowledged_samples,
            "unacknowledged_events": self.audit.unacknowledged_events,
            "unmapped_transactions": self.audit.unmapped_transactions,
            "wh_diff": self.reconciliation.get("energy_diff_wh"),
            "amount_diff": self.reconciliation.get("amount_diff"),
            "lost_sessions": self.reconciliation.get("lost_sessions"),
            "duplicate_sessions": self.reconciliation.get("duplicate_sessions"),
            "postings": self.audit.postings,
            "unbalanced_postings": self.audit.unbalanced_postings,
            "sessions": self.sessions,
            "energy_wh": self.energy_wh,
            "queued_at_kills": [k.queued_messages for k in self.kills],
            "restart_s": [round(k.restart_s, 2) for k in self.kills],
            "undelivered": self.undelivered,
            "wall_s": round(self.wall_s, 1),
            "ok": self.ok,
        }


def prepare_ledger(db_path: Path, plan: FleetPlan) -> None:
    """The fleet's stations, tokens and tariff, and a driver billed by invoice who owns the
    valid tokens: each priced session then posts a sale to the journal."""
    store = SqliteStore(str(db_path))
    try:
        register_fleet(store, plan)
        tariff = plan.scenario.parsed_tariff
        if tariff is not None:
            store.add_driver(DriverRecord(FLEET_DRIVER, tariff.currency, "invoice"), _now())
            for tag in plan.tokens.valid:
                store.assign_token(tag, FLEET_DRIVER)
    finally:
        store.close()


def _now() -> datetime:
    return datetime.now(UTC)


def kill_times(plan: CrashPlan) -> list[float]:
    """When to kill, in simulated seconds from the start: uniform over the middle 80 % of
    the run, from the plan's seed."""
    rng = np.random.default_rng(plan.seed)
    duration = plan.scenario.duration_s
    return sorted(float(t) for t in rng.uniform(0.1 * duration, 0.9 * duration, plan.kills))


async def run_crash_storm(plan: CrashPlan, workdir: Path) -> CrashStormResult:
    """Run the plan (inside `trio.run(..., clock=MockClock(rate=plan.rate))`)."""
    scenario = plan.scenario
    fleet = plan_fleet(scenario)
    db_path = workdir / "ledger.db"
    prepare_ledger(db_path, fleet)
    server = CsmsProcess(workdir, db_path)
    kills: list[KillRecord] = []
    started = time.perf_counter()
    server.launch()
    try:
        await trio.to_thread.run_sync(server.wait_listening)
        run = _Run(plan, fleet, server)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run.play)
            nursery.start_soon(run.kill_and_restart, kills)
        result = run.result
        assert result is not None
        undelivered = sum(cp.queued_transaction_messages for cp in result.chargers)
    finally:
        code = server.stop()
    wall_s = time.perf_counter() - started
    acks = [ack for cp in result.chargers for ack in cp.link.acknowledged]
    audit = audit_ledger(
        db_path,
        acks,
        (s.station_id for s in fleet.stations),
        (s.station_id for s in fleet.stations if s.group.ocpp_version == "ocpp2.0.1"),
    )
    outcome = outcome_of(scenario, result, f"sqlite:///{db_path}", wall_s)
    return CrashStormResult(
        chargers=scenario.charger_count,
        kills=kills,
        audit=audit,
        reconciliation=outcome.summary["reconciliation"] or {},
        sessions=int(outcome.summary["sessions"]),
        energy_wh=int(outcome.summary["energy_wh"]),
        undelivered=undelivered,
        wall_s=wall_s,
        clean_exit=code == 0,
        log_tail=server.log_text() if code != 0 else "",
        summary=outcome.summary,
        ledger_path=db_path,
        acks=acks,
    )


class _Run:
    """The fleet and the killer, side by side."""

    def __init__(self, plan: CrashPlan, fleet: FleetPlan, server: CsmsProcess) -> None:
        self.plan, self.fleet, self.server = plan, fleet, server
        self.chargers: list[VirtualChargePoint] = []
        self.result: FleetResult | None = None

    async def play(self) -> None:
        plan = self.plan
        self.result = await run_fleet(
            self.fleet,
            partial(url_connector, self.server.url),
            virtual_wall_clock(plan.scenario.start),
            record_messages=False,
            record_acks=True,
            settle_s=plan.settle_s * plan.rate,
            timing=Timing(call_timeout_s=plan.call_timeout_s * plan.rate),
            observe=self.chargers.extend,
        )

    async def kill_and_restart(self, kills: list[KillRecord]) -> None:
        """SIGKILL the server at the planned moments; restart it at once each time."""
        plan, server = self.plan, self.server
        origin = trio.current_time()
        up_since = time.perf_counter()
        for at in kill_times(plan):
            await trio.sleep_until(origin + at)
            # Up a while first: chargers must have reconnected and sent again.
            uptime = time.perf_counter() - up_since
            if uptime < plan.min_uptime_s:
                await trio.sleep((plan.min_uptime_s - uptime) * plan.rate)
            if self.result is not None:  # the fleet finished: no load left to crash under
                return
            queued = sum(cp.queued_transaction_messages for cp in self.chargers)
            server.kill()
            at_s = trio.current_time() - origin
            restart = time.perf_counter()
            server.launch()
            await trio.to_thread.run_sync(server.wait_listening)
            up_since = time.perf_counter()
            kills.append(KillRecord(at_s, queued, up_since - restart))
