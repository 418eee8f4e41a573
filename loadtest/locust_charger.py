"""The charge point a Locust user plays, sans-I/O: OCPP 1.6J, one connector.

Owns: the load profile (`Profile`: `realistic` takes its waits from parameters, `stress` has
none), the charger's schedule and session state machine (boot, heartbeats, status
notifications, Authorize / StartTransaction / MeterValues / StopTransaction with an energy
register), the payloads it sends, and what it makes of the CSMS's answers. How it answers
CSMS-initiated calls is `loadtest.locust_commands`; the socket is `loadtest.locust_link`.

No sockets, no gevent, no clock reads: `now` (epoch seconds) is passed in and randomness is a
seeded `random.Random`, so plain synchronous tests drive it. One CALL is outstanding at a
time: the driver sends what `next_message` returns and reports the outcome with `on_result`
or `on_error` before asking again.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from csms.protocol.frames import Call
from loadtest.locust_commands import answer_call
from simulator.config_store import ConfigStore

Message = tuple[str, dict[str, Any]]
Builder = Callable[[float], Message]

PROFILES = ("realistic", "stress")
NEVER = math.inf
#: Heartbeat interval until the CSMS names one in its BootNotification answer.
DEFAULT_HEARTBEAT_S = 300.0
#: Wait before booting again after a refused boot that names no interval, or a lost link.
RETRY_S = 10.0
STRESS_RETRY_S = 1.0
#: Realistic sessions last between these fractions of the mean session length.
SESSION_SPREAD = (0.5, 1.5)
#: The chargers of a realistic fleet that are charging at any moment start their sessions
#: within this many seconds of their boot (a warm-up to leave out of measurements).
WARMUP_S = 20.0


@dataclass(frozen=True)
class Profile:
    """How a charger paces itself.

    `realistic`: heartbeats every `heartbeat_interval` seconds (None: the interval the CSMS
    gives at boot), a MeterValues every `meter_interval` seconds while charging,
    `sessions_per_day` sessions of `session_minutes` on average, each charger at its own
    random phase. `stress`: no waits at all; back-to-back sessions of `stress_meter_values`
    MeterValues each, one Heartbeat after every session.
    """

    name: str = "realistic"
    heartbeat_interval: float | None = None
    meter_interval: float = 60.0
    sessions_per_day: float = 6.0
    session_minutes: float = 45.0
    stress_meter_values: int = 3
    power_w: float = 7200.0

    def __post_init__(self) -> None:
        if self.name not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {self.name!r}")
        if self.sessions_per_day <= 0 or self.session_minutes <= 0 or self.meter_interval < 0:
            raise ValueError("sessions per day and session minutes must be > 0")

    @property
    def stress(self) -> bool:
        return self.name == "stress"

    def session_gap(self, rng: random.Random) -> float:
        """Seconds from the end of one session (or the boot) to the next one's start."""
        if self.stress:
            return 0.0
        mean = max(1.0, 86400.0 / self.sessions_per_day - self.session_minutes * 60.0)
        return rng.expovariate(1.0 / mean)

    @property
    def duty_cycle(self) -> float:
        """The share of the day a realistic charger spends in a session."""
        return min(1.0, self.sessions_per_day * self.session_minutes * 60.0 / 86400.0)

    def first_session_gap(self, rng: random.Random) -> float:
        """Like `session_gap`, but a fleet that boots together reaches its steady state after
        `WARMUP_S` (or one session, if shorter): a `duty_cycle` share of the chargers begin a
        session by then."""
        if not self.stress and rng.random() < self.duty_cycle:
            return rng.uniform(0.0, min(WARMUP_S, self.session_minutes * 60.0))
        return self.session_gap(rng)

    def session_length(self, rng: random.Random) -> float:
        return self.session_minutes * 60.0 * rng.uniform(*SESSION_SPREAD)


class Phase(Enum):
    IDLE = "idle"
    AUTHORIZING = "authorizing"
    STARTING = "starting"
    CHARGING = "charging"
    STOPPING = "stopping"


#: The connector status a charger reports in each phase.
_PHASE_STATUS = {
    Phase.IDLE: "Available",
    Phase.AUTHORIZING: "Preparing",
    Phase.STARTING: "Preparing",
    Phase.CHARGING: "Charging",
    Phase.STOPPING: "Finishing",
}


class Charger(Protocol):
    """What the Locust user drives: a charger of one OCPP version."""

    version: str
    charge_point_id: str
    #: Set when the charger wants its connection closed and opened again (a hard reset).
    reconnect_requested: bool

    def next_message(self, now: float) -> Message | None: ...
    def delay(self, now: float) -> float: ...
    def on_result(self, action: str, payload: dict[str, Any], now: float) -> str | None: ...
    def on_error(self, action: str, now: float) -> None: ...
    def on_disconnect(self, now: float) -> None: ...
    def answer(self, call: Call, now: float) -> str: ...


def iso_ms(epoch_ms: int) -> str:
    """An OCPP timestamp: ISO 8601 UTC with milliseconds and a Z."""
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class ChargerModel:
    """One OCPP 1.6J charge point with one connector."""

    version = "ocpp1.6"

    def __init__(
        self,
        charge_point_id: str,
        profile: Profile,
        tokens: Sequence[str],
        rng: random.Random,
        now: float,
    ) -> None:
        if not tokens:
            raise ValueError("the token pool is empty")
        self.charge_point_id = charge_point_id
        self.profile = profile
        self.rng = rng
        self.tokens = tokens
        self.config = ConfigStore(1, {"SupportedFeatureProfiles": "Core,RemoteTrigger"})
        #: Seconds between MeterValues while charging; the profile's (which may be a fraction,
        #: for quick runs) until a ChangeConfiguration of MeterValueSampleInterval.
        self.meter_interval = profile.meter_interval
        if not profile.stress:
            self.config.set("MeterValueSampleInterval", round(profile.meter_interval))
        self.reconnect_requested = False
        self.booted = False
        self.boot_due = now
        self.urgent: deque[Builder] = deque()
        self.phase = Phase.IDLE
        self.available = True
        self.unavailable_scheduled = False
        self.reset_pending: str | None = None
        self.tx_id: int | None = None
        self.id_tag = ""
        self.heartbeat_interval = profile.heartbeat_interval or DEFAULT_HEARTBEAT_S
        self.heartbeat_due = NEVER
        self.session_due = NEVER
        self.session_end = NEVER
        self.meter_due = NEVER
        self.meter_values_sent = 0
        self.sessions = 0
        # A device's register starts wherever its history left it.
        self.register_wh = float(rng.randrange(0, 10_000_000))
        self.register_at = now
        self._last_ms = 0

    # -- what to send --------------------------------------------------------------------

    def next_message(self, now: float) -> Message | None:
        """The CALL to send now, or None when nothing is due before `delay(now)`."""
        if not self.booted:
            if now < self.boot_due:
                return None
            self.boot_due = NEVER
            return self._boot(now)
        if self.urgent:
            return self.urgent.popleft()(now)
        if self.reset_pending is not None and self.phase is Phase.IDLE:
            self._reset(now)
            return None
        if now >= self.heartbeat_due:
            return self._heartbeat(now)
        if self.phase is Phase.CHARGING:
            if self._session_over(now):
                return self._stop_transaction(now, "Local")
            if now >= self.meter_due:
                return self._meter_values(now)
        if self.phase is Phase.IDLE and self.available and now >= self.session_due:
            self.begin_session(self._next_tag(), now, authorize=True)
            return self.urgent.popleft()(now)
        return None

    def delay(self, now: float) -> float:
        """Seconds until something is due (0: now)."""
        if not self.booted:
            return max(0.0, self.boot_due - now)
        if self.urgent or (self.reset_pending is not None and self.phase is Phase.IDLE):
            return 0.0
        due = self.heartbeat_due
        if self.phase is Phase.IDLE and self.available:
            due = min(due, self.session_due)
        elif self.phase is Phase.CHARGING:
            due = min(due, self.meter_due, self.session_end)
            if self.profile.stress and self._session_over(now):
                due = now
        return max(0.0, due - now)

    # -- what the CSMS answered ----------------------------------------------------------

    def on_result(self, action: str, payload: dict[str, Any], now: float) -> str | None:
        """Take a CALLRESULT in; return why it is a refusal the run should count as a
        failure (a boot not accepted, an id tag not accepted), or None."""
        if action == "BootNotification":
            return self._booted(payload, now)
        if action == "Heartbeat":
            self._schedule_heartbeat(now)
        elif action == "MeterValues":
            self._schedule_meter(now)
        elif action == "Authorize":
            status = _tag_status(payload)
            if status == "Accepted":
                self.phase = Phase.STARTING
                self.urgent.extend((self._preparing, self._start_transaction))
                return None
            self._session_ended(now)
            return f"Authorize: idTag {self.id_tag} is {status}"
        elif action == "StartTransaction":
            return self._started(payload, now)
        elif action == "StopTransaction":
            self._session_ended(now)
        return None

    def on_error(self, action: str, now: float) -> None:
        """A CALLERROR, a timeout or a lost connection: go on as a charger would."""
        if action == "BootNotification":
            self.boot_due = now + self._retry_s()
        elif action == "Heartbeat":
            self._schedule_heartbeat(now)
        elif action == "MeterValues":
            self._schedule_meter(now)
        elif action in ("Authorize", "StartTransaction", "StopTransaction"):
            self._session_ended(now)

    def on_disconnect(self, now: float) -> None:
        """The connection is gone: boot again on the next one; a running session goes on."""
        self.booted = False
        self.boot_due = now + self._retry_s()
        self.urgent.clear()
        self.reconnect_requested = False
        if self.phase in (Phase.AUTHORIZING, Phase.STARTING):
            self._session_ended(now)
        elif self.phase is Phase.STOPPING:
            self.phase = Phase.CHARGING

    def answer(self, call: Call, now: float) -> str:
        """The reply frame to a CSMS-initiated CALL."""
        return answer_call(self, call, now)

    # -- commands (used by `locust_commands`) ----------------------------------------------

    def begin_session(self, id_tag: str, now: float, *, authorize: bool) -> None:
        self.sessions += 1
        self.id_tag = id_tag
        self.session_due = NEVER
        if authorize:
            self.phase = Phase.AUTHORIZING
            self.urgent.append(self._authorize)
        else:
            self.phase = Phase.STARTING
            self.urgent.extend((self._preparing, self._start_transaction))

    def end_session(self, reason: str) -> bool:
        """Stop the running transaction now (remote stop, unlock, reset); False if none."""
        if self.phase is not Phase.CHARGING:
            return False
        self.urgent.appendleft(lambda now: self._stop_transaction(now, reason))
        return True

    def request_reset(self, kind: str) -> None:
        """Reboot once the running session, if any, has stopped."""
        self.reset_pending = kind
        self.end_session(f"{kind}Reset")

    def set_available(self, available: bool, now: float) -> str:
        """ChangeAvailability: Accepted, or Scheduled while a session runs."""
        if not available and self.phase is not Phase.IDLE:
            self.unavailable_scheduled = True
            return "Scheduled"
        self.unavailable_scheduled = False
        if available != self.available:
            self.available = available
            self.urgent.append(self._connector_status)
            if available and self.session_due == NEVER:
                self.session_due = now + self.profile.session_gap(self.rng)
        return "Accepted"

    def trigger(self, requested: str) -> bool:
        """TriggerMessage: queue the requested message; False if this charger cannot."""
        builders: dict[str, Builder] = {
            "BootNotification": self._boot,
            "Heartbeat": self._heartbeat,
            "StatusNotification": self._connector_status,
            "MeterValues": self._meter_values,
            "DiagnosticsStatusNotification": lambda _: ("DiagnosticsStatusNotification", IDLE),
            "FirmwareStatusNotification": lambda _: ("FirmwareStatusNotification", IDLE),
        }
        builder = builders.get(requested)
        if builder is None:
            return False
        self.urgent.append(builder)
        return True

    def configuration_changed(self, key: str, now: float) -> None:
        """Apply an accepted ChangeConfiguration at once (as a real charger does); keys are
        case-insensitive."""
        name = key.lower()
        if name == "heartbeatinterval":
            self.heartbeat_interval = float(max(1, self.config.get_int(key)))
            if self.booted:
                self._schedule_heartbeat(now)
        elif name == "metervaluesampleinterval":
            self.meter_interval = float(self.config.get_int(key))
            self._schedule_meter(now)

    @property
    def ready_for_session(self) -> bool:
        """Booted, available, idle and not about to reboot: a remote start may begin."""
        return (
            self.booted
            and self.available
            and self.phase is Phase.IDLE
            and self.reset_pending is None
        )

    @property
    def connector_status(self) -> str:
        if not self.available and self.phase is Phase.IDLE:
            return "Unavailable"
        return _PHASE_STATUS[self.phase]

    # -- transitions -----------------------------------------------------------------------

    def _booted(self, payload: dict[str, Any], now: float) -> str | None:
        status = str(payload.get("status"))
        interval = payload.get("interval")
        seconds = float(interval) if isinstance(interval, int) and interval > 0 else 0.0
        if status != "Accepted":
            self.boot_due = now + (seconds or self._retry_s())
            return f"BootNotification: {status}"
        first_boot = not self.booted and self.heartbeat_due == NEVER
        self.booted = True
        if self.profile.heartbeat_interval is None and seconds:
            self.heartbeat_interval = seconds
            self.config.set("HeartbeatInterval", int(seconds))
        if self.profile.stress:
            self.heartbeat_due = NEVER
            self.session_due = now
        else:
            # Spread a fleet that boots together over the interval, as real ones drift apart.
            phase = self.rng.uniform(0, self.heartbeat_interval) if first_boot else 0.0
            self.heartbeat_due = now + phase + (0.0 if first_boot else self.heartbeat_interval)
            if self.session_due == NEVER and self.phase is Phase.IDLE:
                gap = self.profile.first_session_gap if first_boot else self.profile.session_gap
                self.session_due = now + gap(self.rng)
        self.urgent.extend((self._charger_status, self._connector_status))
        return None

    def _started(self, payload: dict[str, Any], now: float) -> str | None:
        tx_id = payload.get("transactionId")
        self.tx_id = tx_id if isinstance(tx_id, int) else None
        status = _tag_status(payload)
        if status != "Accepted" or self.tx_id is None:
            # The energy of a refused start is real; the charger stops it at once.
            self.phase = Phase.CHARGING
            self.end_session("DeAuthorized")
            return f"StartTransaction: idTag {self.id_tag} is {status}"
        self.phase = Phase.CHARGING
        self.register_at = now
        self.meter_values_sent = 0
        self.session_end = now + self.profile.session_length(self.rng)
        self._schedule_meter(now)
        self.urgent.append(self._connector_status)
        return None

    def _session_ended(self, now: float) -> None:
        self.phase = Phase.IDLE
        self.tx_id = None
        self.session_end = self.meter_due = NEVER
        if self.unavailable_scheduled:
            self.unavailable_scheduled = False
            self.available = False
        self.urgent.append(self._connector_status)
        self.session_due = now + self.profile.session_gap(self.rng)
        if self.profile.stress:
            self.heartbeat_due = now

    def _session_over(self, now: float) -> bool:
        if self.profile.stress:
            return self.meter_values_sent >= self.profile.stress_meter_values
        return now >= self.session_end

    def _schedule_heartbeat(self, now: float) -> None:
        self.heartbeat_due = NEVER if self.profile.stress else now + self.heartbeat_interval

    def _schedule_meter(self, now: float) -> None:
        if self.phase is not Phase.CHARGING:
            self.meter_due = NEVER
        elif self.profile.stress:
            self.meter_due = now
        else:
            interval = self.meter_interval
            self.meter_due = now + interval if interval > 0 else NEVER

    def _retry_s(self) -> float:
        return STRESS_RETRY_S if self.profile.stress else RETRY_S

    def _next_tag(self) -> str:
        return self.tokens[self.rng.randrange(len(self.tokens))]

    # -- payloads --------------------------------------------------------------------------

    def _timestamp(self, now: float) -> str:
        """Strictly increasing millisecond timestamps: a retried message is the only repeat."""
        self._last_ms = max(int(now * 1000), self._last_ms + 1)
        return iso_ms(self._last_ms)

    def _meter_wh(self, now: float) -> int:
        if self.phase is Phase.CHARGING and self.tx_id is not None and now > self.register_at:
            self.register_wh += self.profile.power_w * (now - self.register_at) / 3600.0
        self.register_at = max(self.register_at, now)
        return int(self.register_wh)

    def _boot(self, now: float) -> Message:
        return "BootNotification", {
            "chargePointVendor": "Locust",
            "chargePointModel": "OcppChargerUser",
            "chargePointSerialNumber": self.charge_point_id[-25:],
            "firmwareVersion": "1.0",
        }

    def _heartbeat(self, now: float) -> Message:
        self.heartbeat_due = NEVER
        return "Heartbeat", {}

    def _status(self, connector_id: int, status: str, now: float) -> Message:
        return "StatusNotification", {
            "connectorId": connector_id,
            "errorCode": "NoError",
            "status": status,
            "timestamp": self._timestamp(now),
        }

    def _charger_status(self, now: float) -> Message:
        return self._status(0, "Available" if self.available else "Unavailable", now)

    def _connector_status(self, now: float) -> Message:
        return self._status(1, self.connector_status, now)

    def _preparing(self, now: float) -> Message:
        return self._status(1, "Preparing", now)

    def _authorize(self, now: float) -> Message:
        return "Authorize", {"idTag": self.id_tag}

    def _start_transaction(self, now: float) -> Message:
        return "StartTransaction", {
            "connectorId": 1,
            "idTag": self.id_tag,
            "meterStart": self._meter_wh(now),
            "timestamp": self._timestamp(now),
        }

    def _meter_values(self, now: float) -> Message:
        self.meter_due = NEVER
        self.meter_values_sent += 1
        wh = self._meter_wh(now)
        charging = self.phase is Phase.CHARGING and self.tx_id is not None
        samples = [
            _energy(wh, "Sample.Periodic"),
            {
                "value": str(int(self.profile.power_w) if charging else 0),
                "measurand": "Power.Active.Import",
                "unit": "W",
            },
        ]
        payload: dict[str, Any] = {
            "connectorId": 1,
            "meterValue": [{"timestamp": self._timestamp(now), "sampledValue": samples}],
        }
        if charging:
            payload["transactionId"] = self.tx_id
        return "MeterValues", payload

    def _stop_transaction(self, now: float, reason: str) -> Message:
        wh = self._meter_wh(now)
        timestamp = self._timestamp(now)
        self.phase = Phase.STOPPING
        return "StopTransaction", {
            "transactionId": self.tx_id if self.tx_id is not None else -1,
            "idTag": self.id_tag,
            "meterStop": wh,
            "timestamp": timestamp,
            "reason": reason,
            "transactionData": [
                {"timestamp": timestamp, "sampledValue": [_energy(wh, "Transaction.End")]}
            ],
        }

    def _reset(self, now: float) -> None:
        """Reboot: boot again at once; a hard reset on a new connection."""
        kind, self.reset_pending = self.reset_pending, None
        self.booted = False
        self.boot_due = now
        self.urgent.clear()
        self.reconnect_requested = kind == "Hard"


IDLE: dict[str, Any] = {"status": "Idle"}


def _energy(wh: int, context: str) -> dict[str, str]:
    return {
        "value": str(wh),
        "measurand": "Energy.Active.Import.Register",
        "unit": "Wh",
        "context": context,
    }


def _tag_status(payload: dict[str, Any]) -> str:
    info = payload.get("idTagInfo")
    return str(info.get("status")) if isinstance(info, dict) else "missing"
