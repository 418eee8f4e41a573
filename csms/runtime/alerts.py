"""The alert monitor: turns what the fleet does into alerts an operator acknowledges and
clears.

From the live events: a station the keepalive found silent (missed heartbeats) or that left
and did not come back within its allowance is offline; a StatusNotification with an error
code (or Faulted) faults its connector; too many boots within a window are a boot loop; a
DownloadFailed or InstallationFailed is a failed firmware update. A sweep finds sessions with
no meter values for the configured time. Conditions that end (the station is back, the
connector reports NoError, meter values arrive, firmware installs) clear their alert; a boot
loop stays until an operator clears it. Thresholds live in the database
(`/api/alerts/settings`, which announces a change on the live events).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import Any

import structlog
import trio

from csms.runtime.events import LiveEvent
from csms.runtime.server import Csms
from csms.runtime.store_pool import StorePool
from csms.storage.timestamps import from_text

log = structlog.get_logger("csms.alerts")

FAILED_FIRMWARE = frozenset({"DownloadFailed", "InstallationFailed", "InstallVerificationFailed"})


class AlertMonitor:
    def __init__(self, csms: Csms, db: StorePool) -> None:
        self.csms = csms
        self.db = db
        self._boots: dict[str, deque[datetime]] = {}
        #: Stations that disconnected, and when: offline once their allowance passes.
        self._gone: dict[str, datetime] = {}
        self._settings_changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.csms.events.subscribe() as subscription:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._sweep_forever)
                task_status.started()
                async for event in subscription.receive:
                    try:
                        await self._on_event(event)
                    except Exception as exc:  # one bad event must not end monitoring
                        log.error("alert rule failed", kind=event.kind, error=repr(exc))

    # -- raising and clearing ------------------------------------------------------------

    async def _raise(
        self,
        kind: str,
        subject: str,
        station_id: str | None,
        severity: str,
        message: str,
        detail: dict[str, Any],
    ) -> None:
        now = self.csms.wall_clock()
        alert = await self.db.run(
            lambda store: store.raise_alert(
                kind, subject, station_id, severity, message, detail, now
            )
        )
        if alert is not None:
            log.warning("alert raised", kind=kind, subject=subject, message=message)
            self.csms.events.publish("alert", station_id, now, alert)

    async def _clear(self, kind: str, subject: str) -> None:
        now = self.csms.wall_clock()
        cleared = await self.db.run(
            lambda store: store.clear_open_alerts(kind, subject, "auto", now)
        )
        for alert in cleared:
            self.csms.events.publish("alert", alert["station_id"], now, alert)

    # -- rules on live events --------------------------------------------------------------

    async def _on_event(self, event: LiveEvent) -> None:
        station, data = event.station_id or "", event.data
        if event.kind == "alert_settings":
            self._settings_changed.set()
        elif event.kind == "connection":
            await self._on_connection(station, str(data.get("state")))
        elif event.kind == "status":
            subject = f"{station}/{data['connector_id']}"
            if data["error_code"] != "NoError" or data["status"] == "Faulted":
                await self._raise(
                    "connector_faulted",
                    subject,
                    station,
                    "error",
                    f"connector {subject} is {data['status']}: {data['error_code']}",
                    data,
                )
            else:
                await self._clear("connector_faulted", subject)
        elif event.kind == "boot":
            await self._on_boot(station)
        elif event.kind == "firmware":
            status = str(data.get("status"))
            if status in FAILED_FIRMWARE:
                await self._raise(
                    "firmware_failed",
                    station,
                    station,
                    "error",
                    f"firmware update of {station} failed: {status}",
                    data,
                )
            elif status == "Installed":
                await self._clear("firmware_failed", station)
        elif event.kind in ("meter", "session_stopped") and data.get("transaction_id"):
            await self._clear("session_stuck", str(data["transaction_id"]))

    async def _on_connection(self, station: str, state: str) -> None:
        if state == "connected":
            self._gone.pop(station, None)
            await self._clear("station_offline", station)
        elif state == "offline":
            await self._station_offline(
                station, "went silent (missed heartbeats)", {"reason": "missed heartbeats"}
            )
        elif state == "disconnected":
            self._gone[station] = self.csms.wall_clock()

    async def _station_offline(self, station: str, why: str, detail: dict[str, Any]) -> None:
        self._gone.pop(station, None)
        await self._raise(
            "station_offline", station, station, "warning", f"station {station} {why}", detail
        )

    async def _on_boot(self, station: str) -> None:
        settings = await self.db.run(lambda store: store.alert_settings())
        now = self.csms.wall_clock()
        window = timedelta(seconds=settings["boot_loop_window_s"])
        boots = self._boots.setdefault(station, deque())
        boots.append(now)
        while boots and now - boots[0] > window:
            boots.popleft()
        if len(boots) >= settings["boot_loop_boots"]:
            await self._raise(
                "boot_loop",
                station,
                station,
                "error",
                f"station {station} booted {len(boots)} times within {window.total_seconds():g} s",
                {"boots": len(boots), "window_s": window.total_seconds()},
            )

    # -- the sweep -------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            settings = await self.db.run(lambda store: store.alert_settings())
            try:
                await self._sweep(settings)
            except Exception as exc:
                log.error("alert sweep failed", error=repr(exc))
            with trio.move_on_after(min(max(settings["stuck_session_after_s"] / 4, 0.2), 30.0)):
                await self._settings_changed.wait()
            self._settings_changed = trio.Event()

    async def _sweep(self, settings: dict[str, float]) -> None:
        now = self.csms.wall_clock()
        stuck_after = timedelta(seconds=settings["stuck_session_after_s"])
        sessions = await self.db.run(lambda store: store.active_sessions_last_meter())
        for session in sessions:
            last = from_text(session["last_received_at"])
            if last is not None and now - last >= stuck_after:
                await self._raise(
                    "session_stuck",
                    str(session["id"]),
                    session["station_id"],
                    "warning",
                    f"session {session['id']} on {session['station_id']}/"
                    f"{session['connector_id']} has sent no meter values for"
                    f" {(now - last).total_seconds():.0f} s",
                    {"transaction_id": session["id"], "last_meter_at": session["last_received_at"]},
                )
        settings_csms = self.csms.settings
        grace = settings["offline_grace_s"] or (
            settings_csms.heartbeat_interval * settings_csms.offline_after_heartbeats
        )
        for station, since in list(self._gone.items()):
            if station in self.csms.registry:
                self._gone.pop(station, None)
            elif (now - since).total_seconds() >= grace:
                await self._station_offline(
                    station,
                    "disconnected and has not come back",
                    {"reason": "disconnected", "since": since.isoformat()},
                )
