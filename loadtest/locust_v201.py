"""The OCPP 2.0.1 charger a Locust user plays while the CSMS has no 2.0.1 yet: sans-I/O.

Owns only the version's plumbing: BootNotification, StatusNotification and Heartbeats in
2.0.1 shapes (at the profile's pace), and a `NotSupported` CALLERROR to every CSMS-initiated
call. Sessions (TransactionEvent) arrive with the server's 2.0.1 support.
"""

from __future__ import annotations

from typing import Any

from csms.protocol.errors import NotSupported
from csms.protocol.frames import Call, encode_error
from loadtest.locust_charger import (
    DEFAULT_HEARTBEAT_S,
    NEVER,
    RETRY_S,
    STRESS_RETRY_S,
    Message,
    Profile,
    iso_ms,
)

VERSION = "ocpp2.0.1"


class HeartbeatCharger201:
    """Boots, reports its connector Available, then sends heartbeats."""

    version = VERSION

    def __init__(self, charge_point_id: str, profile: Profile, now: float) -> None:
        self.charge_point_id = charge_point_id
        self.profile = profile
        self.reconnect_requested = False
        self.booted = False
        self.boot_due = now
        self.status_due = NEVER
        self.heartbeat_due = NEVER
        self.heartbeat_interval = profile.heartbeat_interval or DEFAULT_HEARTBEAT_S

    def next_message(self, now: float) -> Message | None:
        if not self.booted:
            if now < self.boot_due:
                return None
            self.boot_due = NEVER
            return "BootNotification", {
                "chargingStation": {
                    "model": "OcppChargerUser",
                    "vendorName": "Locust",
                    "serialNumber": self.charge_point_id[-25:],
                    "firmwareVersion": "1.0",
                },
                "reason": "PowerUp",
            }
        if now >= self.status_due:
            self.status_due = NEVER
            return "StatusNotification", {
                "timestamp": iso_ms(int(now * 1000)),
                "connectorStatus": "Available",
                "evseId": 1,
                "connectorId": 1,
            }
        if now >= self.heartbeat_due:
            self.heartbeat_due = NEVER
            return "Heartbeat", {}
        return None

    def delay(self, now: float) -> float:
        due = self.boot_due if not self.booted else min(self.status_due, self.heartbeat_due)
        return max(0.0, due - now)

    def on_result(self, action: str, payload: dict[str, Any], now: float) -> str | None:
        if action == "BootNotification":
            interval = payload.get("interval")
            seconds = float(interval) if isinstance(interval, int) and interval > 0 else 0.0
            if payload.get("status") != "Accepted":
                self.boot_due = now + (seconds or self._retry_s())
                return f"BootNotification: {payload.get('status')}"
            self.booted = True
            if self.profile.heartbeat_interval is None and seconds:
                self.heartbeat_interval = seconds
            self.status_due = now
        self._schedule_heartbeat(now)
        return None

    def on_error(self, action: str, now: float) -> None:
        if action == "BootNotification":
            self.boot_due = now + self._retry_s()
        else:
            self._schedule_heartbeat(now)

    def on_disconnect(self, now: float) -> None:
        self.booted = False
        self.boot_due = now + self._retry_s()
        self.reconnect_requested = False

    def answer(self, call: Call, now: float) -> str:
        error = NotSupported(f"{call.action}: this load-test charger speaks 2.0.1 plumbing only")
        return encode_error(call.message_id, error.code_for(VERSION), error.description)

    def _schedule_heartbeat(self, now: float) -> None:
        self.heartbeat_due = now + (0.0 if self.profile.stress else self.heartbeat_interval)

    def _retry_s(self) -> float:
        return STRESS_RETRY_S if self.profile.stress else RETRY_S
