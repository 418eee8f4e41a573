"""Running a scenario, in either mode, into results and a reconciled summary.

- In-process virtual time (`run_virtual`): this CSMS with its SQLite ledger and the fleet in
  one trio run on a jumping `MockClock`; stations and tokens are registered first, app drivers
  are started by the CSMS's RemoteStartTransaction (RequestStartTransaction for a 2.0.1 one).
- Wire mode (`run_wire`): the fleet against any CSMS URL in real time; app drivers present
  their token at the charger, since the simulator cannot make another CSMS start them.
  Reconciliation needs the ledger (`ledger_url`, a `sqlite:///` URL of this CSMS).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import trio
import trio.testing

from csms.config import Settings
from csms.domain.ledger import UnknownStationPolicy
from csms.storage.sqlite import SqliteStore, TokenRow, sqlite_path
from simulator.billing import expected_amounts
from simulator.dialect import remote_start_call
from simulator.fleet import FleetPlan, FleetResult, plan_fleet, run_fleet
from simulator.inprocess import hosted_csms, virtual_wall_clock
from simulator.reconcile import (
    SESSION_COLUMNS,
    Reconciliation,
    ledger_sessions,
    reconcile,
    revenue_of,
)
from simulator.results import frame_of, save_results
from simulator.scenario import Scenario
from simulator.transport import ClientSecurity, url_connector

Progress = Callable[[float], None]


@dataclass
class RunOutcome:
    summary: dict[str, Any]
    frames: dict[str, pd.DataFrame]
    reconciliation: Reconciliation | None


def register_fleet(store: SqliteStore, plan: FleetPlan) -> None:
    """Register the scenario's stations, its valid and blocked tokens and its tariff (the
    default, in force from a day before the run) in this CSMS."""
    store.add_stations([(s.station_id, 0) for s in plan.stations])
    store.upsert_tokens(
        [TokenRow(tag) for tag in plan.tokens.valid]
        + [TokenRow(tag, "Blocked") for tag in plan.tokens.blocked]
    )
    tariff = plan.scenario.parsed_tariff
    if tariff is not None:
        since = plan.scenario.start - timedelta(days=1)
        store.add_tariff(tariff, since, since, default=True)


async def _report_progress(scenario: Scenario, progress: Progress | None) -> None:
    if progress is None:
        return
    origin = trio.current_time()
    step = max(scenario.duration_s / 200, 1.0)
    while True:
        progress(min(trio.current_time() - origin, scenario.duration_s))
        await trio.sleep(step)


async def run_virtual(
    scenario: Scenario,
    database: Path,
    *,
    progress: Progress | None = None,
    record_messages: bool = True,
) -> RunOutcome:
    """Run the scenario against this CSMS in process, on virtual time. Call it inside
    `trio.run(..., clock=trio.testing.MockClock(autojump_threshold=0))`."""
    plan = plan_fleet(scenario)
    settings = Settings(
        database_url=f"sqlite:///{database}",
        unknown_stations=UnknownStationPolicy.REJECT,
        log_level="warning",
        ocpp_port=0,
        api_port=0,
        # In-memory streams cannot go half-open: WebSocket pings would only double the
        # traffic of an idle fleet. Silent chargers are still found by their heartbeats.
        ping_interval=86_400,
        # The fleet's tokens belong to no driver: no card payments to run.
        payment_provider="none",
        billing_timezone=scenario.timezone,
        idle_power_w=scenario.idle_power_w,
    )
    store = SqliteStore(str(database))
    try:
        register_fleet(store, plan)
    finally:
        store.close()
    wall_started = time.perf_counter()
    clock = virtual_wall_clock(scenario.start)
    async with hosted_csms(settings, scenario.start, clock) as host:
        remote_ids = itertools.count(1)

        async def remote_start(station_id: str, connector_id: int, id_tag: str) -> object:
            connection = host.csms.registry.get(station_id)
            version = connection.version if connection is not None else "ocpp1.6"
            action, payload = remote_start_call(version, connector_id, id_tag, next(remote_ids))
            return await host.csms.registry.send_command(station_id, action, payload)

        async with trio.open_nursery() as ticker:
            ticker.start_soon(_report_progress, scenario, progress)
            result = await run_fleet(
                plan,
                host.connector,
                clock,
                remote_start=remote_start,
                record_messages=record_messages,
            )
            ticker.cancel_scope.cancel()
    wall_s = time.perf_counter() - wall_started
    return outcome_of(scenario, result, settings.database_url, wall_s)


async def run_wire(
    scenario: Scenario,
    url: str,
    *,
    ledger_url: str | None = None,
    progress: Progress | None = None,
    record_messages: bool = True,
    security: ClientSecurity | None = None,
) -> RunOutcome:
    """Run the scenario in real time against the CSMS at `url` (ws:// or wss://HOST:PORT/ocpp),
    the chargers authenticating as `security` says."""
    plan = plan_fleet(scenario)
    wall_started = time.perf_counter()
    clock = virtual_wall_clock(scenario.start)
    async with trio.open_nursery() as ticker:
        ticker.start_soon(_report_progress, scenario, progress)
        result = await run_fleet(
            plan,
            partial(url_connector, url, security=security),
            clock,
            record_messages=record_messages,
        )
        ticker.cancel_scope.cancel()
    return outcome_of(scenario, result, ledger_url, time.perf_counter() - wall_started)


def outcome_of(
    scenario: Scenario, result: FleetResult, ledger_url: str | None, wall_s: float
) -> RunOutcome:
    """The run's frames and summary, reconciled with the ledger at `ledger_url` if given."""
    records = [s for cp in result.chargers for s in cp.sessions]
    sessions = frame_of(records, SESSION_COLUMNS)
    tariff = scenario.parsed_tariff
    if tariff is not None:
        sessions["cost_incl_vat"] = expected_amounts(
            records, tariff, scenario.zone, scenario.idle_power_w
        )
    messages = frame_of(m for cp in result.chargers for m in cp.messages)
    refusals = frame_of(r for cp in result.chargers for r in cp.refusals)
    reconciliation = None
    revenue: dict[str, str] | None = None
    if ledger_url is not None:
        store = SqliteStore(sqlite_path(ledger_url))
        try:
            ledger = ledger_sessions(store.list_sessions(limit=10**9))
        finally:
            store.close()
        reconciliation = reconcile(sessions, ledger)
        revenue = revenue_of(ledger, set(sessions["station_id"]) if len(sessions) else set())
    energy = int(sessions["energy_wh"].fillna(0).sum()) if not sessions.empty else 0
    summary: dict[str, Any] = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "chargers": scenario.charger_count,
        "simulated_s": scenario.duration_s,
        "wall_s": round(wall_s, 3),
        "speedup": round(scenario.duration_s / wall_s, 1) if wall_s > 0 else None,
        "sessions": len(sessions),
        "energy_wh": energy,
        "messages": len(messages),
        "arrivals": result.plan.arrivals,
        "plugged": result.plugged,
        "turned_away": result.turned_away,
        "refusals": len(refusals),
        "faults": dict(result.faults),
        "revenue": revenue,
        "reconciliation": reconciliation.summary() if reconciliation else None,
    }
    frames = {"sessions": sessions, "messages": messages, "refusals": refusals}
    if reconciliation is not None:
        frames["differences"] = reconciliation.differences_frame()
    return RunOutcome(summary, frames, reconciliation)


def save_outcome(outcome: RunOutcome, out: Path) -> None:
    save_results(out, outcome.frames, outcome.summary)


def run_virtual_sync(
    scenario: Scenario, database: Path, *, progress: Progress | None = None
) -> RunOutcome:
    """`run_virtual` in its own `trio.run` on a jumping MockClock."""
    outcome: RunOutcome = trio.run(
        lambda: run_virtual(scenario, database, progress=progress),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    return outcome


__all__ = [
    "RunOutcome",
    "outcome_of",
    "run_virtual",
    "run_virtual_sync",
    "run_wire",
    "save_outcome",
]
