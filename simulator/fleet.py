"""The fleet: a scenario's chargers, the drivers who use them, and the faults they suffer.

`plan_fleet` draws everything random up front from the scenario's seed (one generator per
charger, spawned from it): arrivals per connector, fault times, clock skews. `run_fleet` then
plays the plan against any CSMS: each charger is a `VirtualChargePoint` task, each connector
a driver task that plugs cars in and out at the planned times. The same seed gives the same
plan, so the same per-charger sequences and totals.
"""

from __future__ import annotations

import contextlib
import gc
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import trio

from simulator.chargepoint import Timing, VirtualChargePoint
from simulator.connectors import ConnectorSpec
from simulator.drivers import Arrival, DriverModel, TokenKind, arrivals
from simulator.physics import ChargingCurve, Vehicle
from simulator.scenario import Scenario, StationGroup
from simulator.timers import Clockwork, TimerKey
from simulator.transport import Connector

FAULT_KINDS = (
    "connection_drops",
    "reboots",
    "offline_periods",
    "meter_resets",
    "malformed_frames",
    "lost_replies",
)

#: Sends the CSMS's RemoteStartTransaction for an app driver (station, connector, id tag).
RemoteStarter = Callable[[str, int, str], Awaitable[object]]


@dataclass(frozen=True)
class TokenPool:
    """The id tags drivers present: valid ones (registered Accepted), blocked ones
    (registered Blocked) and invalid ones (never registered)."""

    valid: tuple[str, ...]
    blocked: tuple[str, ...]
    invalid: tuple[str, ...]

    @classmethod
    def sized(cls, count: int) -> TokenPool:
        extra = max(1, count // 20)
        return cls(
            tuple(f"SIM-V{n:06d}" for n in range(count)),
            tuple(f"SIM-B{n:06d}" for n in range(extra)),
            tuple(f"SIM-X{n:06d}" for n in range(extra)),
        )

    def pick(self, validity: str, rng: np.random.Generator) -> str:
        tags = {"valid": self.valid, "blocked": self.blocked, "invalid": self.invalid}[validity]
        return tags[int(rng.integers(len(tags)))]


@dataclass(frozen=True)
class Fault:
    at_s: float
    kind: str
    connector_id: int = 1


@dataclass(frozen=True)
class StationPlan:
    station_id: str
    group: StationGroup
    seed: int
    arrivals: dict[int, list[Arrival]]
    faults: list[Fault]
    clock_skew_s: float


@dataclass(frozen=True)
class FleetPlan:
    scenario: Scenario
    tokens: TokenPool
    stations: list[StationPlan]

    @property
    def arrivals(self) -> int:
        return sum(len(a) for s in self.stations for a in s.arrivals.values())


def driver_model(scenario: Scenario, group: StationGroup) -> DriverModel:
    """DC groups always see highway-style drivers (their cars carry DC power); AC groups the
    scenario's model."""
    base = {
        "public_ac": DriverModel.public_ac,
        "depot": DriverModel.depot,
        "highway_dc": DriverModel.highway_dc,
    }["highway_dc" if group.kind == "dc" else scenario.drivers.model]()
    return base.scaled(scenario.drivers.scale) if scenario.drivers.scale != 1 else base


def plan_fleet(scenario: Scenario) -> FleetPlan:
    """Draw the whole run from the scenario's seed: arrivals, faults, skews per charger."""
    seeds = np.random.SeedSequence(scenario.seed)
    station_ids = [(group, sid) for group in scenario.stations for sid in group.station_ids()]
    children = seeds.spawn(len(station_ids))
    plans: list[StationPlan] = []
    for (group, station_id), child in zip(station_ids, children, strict=True):
        rng = np.random.default_rng(child)
        model = driver_model(scenario, group)
        per_connector = {
            c: arrivals(model, scenario.start, scenario.duration_s, rng)
            for c in range(1, group.connectors + 1)
        }
        plans.append(
            StationPlan(
                station_id,
                group,
                int(child.generate_state(1)[0]),
                per_connector,
                _faults(scenario, group, rng),
                float(rng.uniform(-1, 1)) * scenario.faults.clock_skew_s,
            )
        )
    return FleetPlan(scenario, TokenPool.sized(scenario.drivers.id_tags), plans)


def _faults(scenario: Scenario, group: StationGroup, rng: np.random.Generator) -> list[Fault]:
    days = scenario.duration_s / 86_400
    faults: list[Fault] = []
    for kind in FAULT_KINDS:
        rate = float(getattr(scenario.faults, kind))
        for _ in range(int(rng.poisson(rate * days)) if rate > 0 else 0):
            at_s = float(rng.uniform(0, scenario.duration_s))
            faults.append(Fault(at_s, kind, int(rng.integers(1, group.connectors + 1))))
    return sorted(faults, key=lambda f: f.at_s)


@dataclass
class FleetResult:
    chargers: list[VirtualChargePoint]
    plan: FleetPlan
    turned_away: int = 0  # drivers who found their connector still occupied
    plugged: int = 0
    faults: Counter[str] = field(default_factory=Counter)


def _vehicle(arrival: Arrival, group: StationGroup) -> Vehicle:
    # The car arrives with exactly its energy need of room: its charge limit, in effect.
    room = min(arrival.energy_need_wh / arrival.capacity_wh, 1 - arrival.initial_soc)
    curve = ChargingCurve.typical_dc() if group.kind == "dc" else ChargingCurve.typical_ac()
    return Vehicle(arrival.capacity_wh, 1 - room, arrival.max_power_w, curve)


def _charger_config(scenario: Scenario) -> dict[str, str | int | bool]:
    config: dict[str, str | int | bool] = {
        "MeterValueSampleInterval": int(scenario.charger.meter_interval_s),
        "ClockAlignedDataInterval": int(scenario.charger.clock_aligned_interval_s),
    }
    if scenario.charger.heartbeat_interval_s is not None:
        config["HeartbeatInterval"] = int(scenario.charger.heartbeat_interval_s)
    return config


async def run_fleet(
    plan: FleetPlan,
    connect_for: Callable[..., Connector],
    clock: Callable[[], datetime],
    *,
    remote_start: RemoteStarter | None = None,
    record_messages: bool = True,
    record_acks: bool = False,
    settle_s: float = 600.0,
    timing: Timing | None = None,
    observe: Callable[[list[VirtualChargePoint]], None] | None = None,
) -> FleetResult:
    """Play the plan: every charger connects, drivers come and go, faults strike; at the end
    every car still plugged in leaves and the chargers deliver what they queued.

    `record_acks` keeps every acknowledged transaction message (`cp.link.acknowledged`);
    `timing` overrides the chargers' waits (call timeout, reconnect delay, ...); `observe`
    is given the chargers as soon as they exist (a harness watching them during the run)."""
    scenario = plan.scenario
    origin = trio.current_time()
    clockwork = Clockwork()
    chargers = [
        VirtualChargePoint(
            station.station_id,
            _connector_of(connect_for, station),
            connectors=[ConnectorSpec(station.group.max_power_w)] * station.group.connectors,
            clock=clock,
            rng=np.random.default_rng(station.seed),
            config=_charger_config(scenario),
            record_messages=record_messages,
            record_acks=record_acks,
            timing=timing,
            clockwork=clockwork,
            ocpp_version=station.group.ocpp_version,
        )
        for station in plan.stations
    ]
    result = FleetResult(chargers, plan)
    if observe is not None:
        observe(chargers)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(clockwork.run)
        spread = scenario.charger.connect_spread_s / max(len(chargers), 1)
        for index, (cp, station) in enumerate(zip(chargers, plan.stations, strict=True)):
            if station.clock_skew_s:
                cp.skew_clock(station.clock_skew_s)
            if spread:
                await trio.sleep_until(origin + index * spread)
            await nursery.start(cp.run)
        # Tens of thousands of long-lived objects make every full collection walk them all,
        # a pause the whole fleet feels as lateness; they live until the run ends anyway.
        # (An error unwinding the run leaves them frozen: the process is ending then.)
        gc.freeze()
        async with trio.open_nursery() as drivers:
            # Drivers and faults are entries on the clockwork, not tasks: a connector's
            # driver has a task only while a car is at it.
            for cp, station in zip(chargers, plan.stations, strict=True):
                rng = np.random.default_rng(station.seed + 1)
                for connector_id, queue in station.arrivals.items():
                    _ConnectorDriver(
                        cp,
                        connector_id,
                        queue,
                        station.group,
                        plan.tokens,
                        rng,
                        origin,
                        scenario.duration_s,
                        remote_start,
                        result,
                        drivers,
                        clockwork,
                    ).schedule_next()
                for fault in station.faults:
                    clockwork.call_at(
                        origin + fault.at_s,
                        _Strike(cp, fault, scenario.faults.offline_duration_s, result),
                    )
            # The run lasts its whole duration, arrivals or not: chargers heartbeat and meter.
            await trio.sleep_until(origin + scenario.duration_s)
        with trio.move_on_after(settle_s):
            for cp in chargers:
                await cp.wait_delivered()
        nursery.cancel_scope.cancel()
    gc.unfreeze()
    return result


def _connector_of(connect_for: Callable[..., Connector], station: StationPlan) -> Connector:
    """The station's way to connect: `connect_for(station_id)` for 1.6 (every host offers
    that), `connect_for(station_id, version)` for another version."""
    version = station.group.ocpp_version
    if version == "ocpp1.6":
        return connect_for(station.station_id)
    return connect_for(station.station_id, version)


class _ConnectorDriver:
    """The drivers who come to one connector, in the planned order: a car that finds the
    connector still occupied is turned away; one that is refused leaves at once."""

    __slots__ = (
        "busy_until",
        "clockwork",
        "connector_id",
        "cp",
        "duration_s",
        "group",
        "index",
        "nursery",
        "origin",
        "queue",
        "remote_start",
        "result",
        "rng",
        "tokens",
    )

    def __init__(
        self,
        cp: VirtualChargePoint,
        connector_id: int,
        queue: list[Arrival],
        group: StationGroup,
        tokens: TokenPool,
        rng: np.random.Generator,
        origin: float,
        duration_s: float,
        remote_start: RemoteStarter | None,
        result: FleetResult,
        nursery: trio.Nursery,
        clockwork: Clockwork,
    ) -> None:
        self.cp, self.connector_id, self.queue, self.group = cp, connector_id, queue, group
        self.tokens, self.rng, self.origin, self.duration_s = tokens, rng, origin, duration_s
        self.remote_start, self.result = remote_start, result
        self.nursery, self.clockwork = nursery, clockwork
        self.index = 0
        self.busy_until = 0.0

    def schedule_next(self) -> None:
        """Be woken at the next arrival that can still happen."""
        while self.index < len(self.queue):
            arrival = self.queue[self.index]
            if arrival.at_s >= self.duration_s:
                return
            if arrival.at_s < self.busy_until:
                self.result.turned_away += 1
                self.index += 1
                continue
            self.clockwork.call_at(self.origin + arrival.at_s, self)
            return

    def ring(self, key: TimerKey, deadline: float) -> None:
        self.nursery.start_soon(self._visit)

    async def _visit(self) -> None:
        arrival = self.queue[self.index]
        self.index += 1
        cp, connector_id = self.cp, self.connector_id
        tag = self.tokens.pick(arrival.token_validity, self.rng)
        via_app = arrival.token_kind is TokenKind.APP and self.remote_start is not None
        outcome = await cp.plug_in(
            connector_id, _vehicle(arrival, self.group), tag, via_app=via_app
        )
        if outcome.outcome != "Refused":
            self.result.plugged += 1
            if via_app and self.remote_start is not None:
                # Offline or refused: the driver gives up on the app; the car stays parked.
                with contextlib.suppress(Exception):
                    await self.remote_start(cp.station_id, connector_id, tag)
            self.busy_until = min(arrival.at_s + arrival.dwell_s, self.duration_s)
            await trio.sleep_until(self.origin + self.busy_until)
            await cp.unplug(connector_id)
        self.schedule_next()


class _Strike:
    """A planned fault, struck when due."""

    __slots__ = ("cp", "fault", "offline_s", "result")

    def __init__(
        self, cp: VirtualChargePoint, fault: Fault, offline_s: float, result: FleetResult
    ) -> None:
        self.cp, self.fault, self.offline_s, self.result = cp, fault, offline_s, result

    def ring(self, key: TimerKey, deadline: float) -> None:
        cp, fault = self.cp, self.fault
        self.result.faults[fault.kind] += 1
        if fault.kind == "connection_drops":
            cp.drop_connection()
        elif fault.kind == "reboots":
            cp.reboot()
        elif fault.kind == "offline_periods":
            cp.go_offline(self.offline_s)
        elif fault.kind == "meter_resets":
            cp.meter_reset(fault.connector_id)
        elif fault.kind == "malformed_frames":
            cp.send_malformed_frame("json")
        elif fault.kind == "lost_replies":
            cp.drop_next_reply()
