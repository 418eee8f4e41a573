"""Smart charging of a virtual charger: the installed charging profiles, the limit they set
at a moment, and the composite schedule (SetChargingProfile, ClearChargingProfile,
GetCompositeSchedule).

Profiles stack as OCPP 1.6 says: per purpose, the valid profile with the highest stackLevel
that has a period at that moment wins (one for the connector beats one for connector 0 at
the same level); a TxProfile replaces the TxDefaultProfile while a transaction runs; the
ChargePointMaxProfile caps both. A limit in amperes becomes watts as A x V x phases (the
period's numberPhases, else the connector's). Time is wall time in epoch seconds.
Simplification: the ChargePointMaxProfile caps each connector, not their sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from csms.protocol import v16

TX_PROFILE = "TxProfile"
TX_DEFAULT = "TxDefaultProfile"
CP_MAX = "ChargePointMaxProfile"
_RECURRENCE_S = {"Daily": 86_400.0, "Weekly": 604_800.0}


@dataclass(frozen=True, slots=True)
class Period:
    start_s: int
    limit: float
    phases: int | None


@dataclass(frozen=True, slots=True)
class Profile:
    profile_id: int
    connector_id: int
    stack_level: int
    purpose: str
    kind: str
    recurrency: str | None
    valid_from: float | None
    valid_to: float | None
    transaction_id: int | None
    start_schedule: float | None
    duration_s: int | None
    unit: str  # "A" or "W"
    periods: tuple[Period, ...]


@dataclass(frozen=True, slots=True)
class Electrical:
    """What turns amperes into watts on a connector, and its own maximum."""

    voltage: float
    phases: int
    max_power_w: float

    def to_watts(self, limit: float, unit: str, phases: int | None) -> float:
        return limit if unit == "W" else limit * self.voltage * (phases or self.phases)

    def from_watts(self, watts: float, unit: str) -> float:
        return watts if unit == "W" else watts / (self.voltage * self.phases)


def _epoch(text: str | None) -> float | None:
    if text is None:
        return None
    moment = v16.parse_time(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_profile(connector_id: int, payload: dict[str, Any]) -> Profile:
    """A `csChargingProfiles` (or RemoteStart `chargingProfile`) object, schema-valid."""
    schedule = payload["chargingSchedule"]
    periods = tuple(
        sorted(
            (
                Period(int(p["startPeriod"]), float(p["limit"]), p.get("numberPhases"))
                for p in schedule["chargingSchedulePeriod"]
            ),
            key=lambda p: p.start_s,
        )
    )
    return Profile(
        profile_id=int(payload["chargingProfileId"]),
        connector_id=connector_id,
        stack_level=int(payload["stackLevel"]),
        purpose=payload["chargingProfilePurpose"],
        kind=payload["chargingProfileKind"],
        recurrency=payload.get("recurrencyKind"),
        valid_from=_epoch(payload.get("validFrom")),
        valid_to=_epoch(payload.get("validTo")),
        transaction_id=payload.get("transactionId"),
        start_schedule=_epoch(schedule.get("startSchedule")),
        duration_s=schedule.get("duration"),
        unit=schedule["chargingRateUnit"],
        periods=periods,
    )


def _schedule_start(profile: Profile, t: float, tx_start: float | None) -> float | None:
    if profile.kind == "Relative":
        return tx_start if tx_start is not None else t
    start = profile.start_schedule
    if start is None:  # an Absolute profile without startSchedule starts with the transaction
        return tx_start
    step = _RECURRENCE_S.get(profile.recurrency or "") if profile.kind == "Recurring" else None
    if step is not None and t >= start:
        start += math.floor((t - start) / step) * step
    return start


def _period_at(profile: Profile, t: float, tx_start: float | None) -> Period | None:
    if profile.valid_from is not None and t < profile.valid_from:
        return None
    if profile.valid_to is not None and t >= profile.valid_to:
        return None
    start = _schedule_start(profile, t, tx_start)
    if start is None or t < start:
        return None
    offset = t - start
    if profile.duration_s is not None and offset >= profile.duration_s:
        return None
    current = None
    for period in profile.periods:
        if period.start_s <= offset:
            current = period
        else:
            break
    return current


def _boundaries(profile: Profile, t: float, tx_start: float | None) -> list[float]:
    """Moments after `t` at which this profile's limit may change (this and the next
    recurrence are enough: callers ask again from the next boundary)."""
    points = [p for p in (profile.valid_from, profile.valid_to) if p is not None]
    start = _schedule_start(profile, t, tx_start)
    if start is not None:
        starts = [start]
        step = _RECURRENCE_S.get(profile.recurrency or "") if profile.kind == "Recurring" else None
        if step is not None:
            starts.append(start + step)
        for s in starts:
            points.extend(s + p.start_s for p in profile.periods)
            if profile.duration_s is not None:
                points.append(s + profile.duration_s)
    return [p for p in points if p > t]


class SmartCharging:
    __slots__ = (
        "max_installed",
        "max_periods",
        "max_stack_level",
        "profiles",
    )

    def __init__(self, max_stack_level: int = 10, max_periods: int = 24, max_installed: int = 20):
        self.max_stack_level = max_stack_level
        self.max_periods = max_periods
        self.max_installed = max_installed
        self.profiles: list[Profile] = []

    # -- installing and clearing -------------------------------------------------------------

    def install(
        self, profile: Profile, *, connectors: int, in_tx: bool, tx_id: int | None = None
    ) -> bool:
        """SetChargingProfile: True (Accepted) or False (Rejected). `in_tx`: a transaction
        runs on the profile's connector; `tx_id` its id, if the CSMS has given one yet."""
        if not 0 <= profile.connector_id <= connectors:
            return False
        if profile.stack_level > self.max_stack_level or len(profile.periods) > self.max_periods:
            return False
        if not profile.periods or profile.periods[0].start_s != 0:
            return False
        if profile.purpose == CP_MAX and profile.connector_id != 0:
            return False
        if profile.purpose == TX_PROFILE:
            if profile.connector_id == 0 or not in_tx:
                return False
            if profile.transaction_id is not None and profile.transaction_id != tx_id:
                return False
        kept = [
            p
            for p in self.profiles
            if p.profile_id != profile.profile_id
            and not (
                p.purpose == profile.purpose
                and p.stack_level == profile.stack_level
                and p.connector_id == profile.connector_id
            )
        ]
        if len(kept) >= self.max_installed:
            return False
        self.profiles = [*kept, profile]
        return True

    def clear(
        self,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """ClearChargingProfile: True (Accepted) if anything was removed, else Unknown."""

        def matches(p: Profile) -> bool:
            if profile_id is not None:
                return p.profile_id == profile_id
            return (
                (connector_id is None or p.connector_id == connector_id)
                and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)
            )

        before = len(self.profiles)
        self.profiles = [p for p in self.profiles if not matches(p)]
        return len(self.profiles) < before

    def end_transaction(self, connector_id: int) -> None:
        """A TxProfile lives as long as its transaction."""
        self.profiles = [
            p
            for p in self.profiles
            if not (p.purpose == TX_PROFILE and p.connector_id == connector_id)
        ]

    # -- limits ----------------------------------------------------------------------------

    def _relevant(self, connector_id: int, in_tx: bool) -> list[Profile]:
        if not self.profiles:
            return []  # the common case, asked at every physics step

        def applies(p: Profile) -> bool:
            if p.purpose == TX_DEFAULT:
                return p.connector_id in (0, connector_id)
            if p.purpose == TX_PROFILE:
                return in_tx and p.connector_id == connector_id
            return True  # ChargePointMaxProfile

        return [p for p in self.profiles if applies(p)]

    def _winner(
        self, profiles: list[Profile], purpose: str, t: float, tx_start: float | None
    ) -> tuple[Profile, Period] | None:
        best: tuple[Profile, Period] | None = None
        for p in profiles:
            if p.purpose != purpose:
                continue
            period = _period_at(p, t, tx_start)
            if period is None:
                continue
            if (
                best is None
                or p.stack_level > best[0].stack_level
                or (p.stack_level == best[0].stack_level and p.connector_id > best[0].connector_id)
            ):
                best = (p, period)
        return best

    def limit_w(
        self,
        connector_id: int,
        t: float,
        supply: Electrical,
        *,
        in_tx: bool = False,
        tx_start: float | None = None,
    ) -> float | None:
        """The limit in W the profiles set on a connector at `t`; None when none applies."""
        profiles = self._relevant(connector_id, in_tx)
        if not profiles:
            return None
        limits = []
        tx = self._winner(profiles, TX_PROFILE, t, tx_start) if in_tx else None
        if tx is None:
            tx = self._winner(profiles, TX_DEFAULT, t, tx_start)
        cap = self._winner(profiles, CP_MAX, t, tx_start)
        for found in (tx, cap):
            if found is not None:
                profile, period = found
                limits.append(max(0.0, supply.to_watts(period.limit, profile.unit, period.phases)))
        return min(limits) if limits else None

    def next_change(
        self, connector_id: int, t: float, *, in_tx: bool = False, tx_start: float | None = None
    ) -> float | None:
        """The next moment after `t` at which the connector's limit may change."""
        points = [
            b for p in self._relevant(connector_id, in_tx) for b in _boundaries(p, t, tx_start)
        ]
        return min(points) if points else None

    def composite(
        self,
        connector_id: int,
        start: float,
        duration_s: int,
        unit: str,
        supply: Electrical,
        *,
        in_tx: bool = False,
        tx_start: float | None = None,
    ) -> list[dict[str, Any]]:
        """The chargingSchedulePeriod list of GetCompositeSchedule from `start` on: the
        effective limit (the connector's own maximum where no profile limits it)."""
        periods: list[dict[str, Any]] = []
        end = start + duration_s
        t = start
        while t < end and len(periods) < self.max_periods:
            watts = self.limit_w(connector_id, t, supply, in_tx=in_tx, tx_start=tx_start)
            watts = supply.max_power_w if watts is None else min(watts, supply.max_power_w)
            limit = round(supply.from_watts(watts, unit), 1)
            if not periods or periods[-1]["limit"] != limit:
                periods.append({"startPeriod": int(t - start), "limit": limit})
            nxt = self.next_change(connector_id, t, in_tx=in_tx, tx_start=tx_start)
            if nxt is None:
                break
            t = nxt
        return periods


def iso_epoch(seconds: float) -> str:
    return v16.iso(datetime.fromtimestamp(seconds, UTC))
