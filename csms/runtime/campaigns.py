"""The firmware campaign runner: UpdateFirmware to a campaign's stations, a batch at a time.

Each tick, for every running campaign whose start has come: stations in progress that have
reported nothing for `target_timeout_s` fail; free places in the batch go to pending stations
that are connected (UpdateFirmware with the hosted file's location, to retrieve now, in the
form of the station's OCPP version: 1.6's `location`/`retrieveDate`, or 2.x's `requestId` and
`firmware`). A 2.x station that answers other than Accepted fails at once.
Progress comes from the stations' FirmwareStatusNotifications on the live events: Installed
succeeds, DownloadFailed, InstallationFailed, InstallVerificationFailed or InvalidSignature
fails. A campaign with nothing pending or in progress is finished; failures stay listed for
a retry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
import trio

from csms.protocol import v16
from csms.protocol.common import iso
from csms.protocol.errors import OcppError
from csms.runtime.events import LiveEvent
from csms.runtime.registry import CommandRejected, CommandTimeout, StationBusy, StationOffline
from csms.runtime.server import Csms
from csms.runtime.store_pool import StorePool
from csms.storage.sqlite_api import ApiStore
from csms.storage.timestamps import from_text

log = structlog.get_logger("csms.campaigns")

TICK_S = 1.0
FAILED = frozenset(
    {"DownloadFailed", "InstallationFailed", "InstallVerificationFailed", "InvalidSignature"}
)
#: What a 2.x station may answer UpdateFirmware with and still go on to update.
ACCEPTED_2X = frozenset({"Accepted", "AcceptedCanceled"})
#: Attempts of one station in one campaign before its request ids repeat: far more than
#: anyone retries, and campaign ids up to about 21,000 keep the id within 31 bits.
ATTEMPTS_PER_CAMPAIGN = 100_000


class CampaignRunner:
    def __init__(self, csms: Csms, db: StorePool) -> None:
        self.csms = csms
        self.db = db

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.csms.events.subscribe() as subscription:
            async with trio.open_nursery() as nursery:
                # One node of a cluster ticks: two would send a station UpdateFirmware twice.
                nursery.start_soon(self.csms.singleton("campaigns", self._tick_forever))
                task_status.started()
                async for event in subscription.receive:
                    if event.kind == "firmware" and event.station_id:
                        try:
                            await self._on_status(event)
                        except Exception as exc:
                            log.error("campaign progress failed", error=repr(exc))

    async def _on_status(self, event: LiveEvent) -> None:
        station, status = event.station_id or "", str(event.data.get("status"))
        request_id = event.data.get("request_id")
        now = self.csms.wall_clock()
        running = await self.db.run(lambda store: store.campaigns("running"))
        for campaign in running:
            targets = await self.db.run(
                partial(ApiStore.campaign_targets, campaign_id=campaign["id"])
            )
            target = next(
                (t for t in targets if t["station_id"] == station and t["state"] == "in_progress"),
                None,
            )
            if target is None:
                continue
            if request_id is not None and request_id != firmware_request_id(
                int(campaign["id"]), int(target["attempts"])
            ):
                continue  # about an earlier attempt (or another update): not this one's
            if status == "Installed":
                state, error = "succeeded", None
            elif status in FAILED:
                state, error = "failed", status
            else:
                state, error = "in_progress", None
            await self.db.run(
                partial(
                    _update_target,
                    campaign_id=int(campaign["id"]),
                    station_id=station,
                    now=now,
                    state=state,
                    firmware_status=status,
                    error=error,
                )
            )
            self._publish(campaign["id"], station, state, status, now)

    def _publish(
        self,
        campaign_id: int,
        station: str,
        state: str,
        detail: str | None,
        now: datetime,
        *,
        request_id: int | None = None,
    ) -> None:
        data: dict[str, Any] = {"campaign_id": campaign_id, "state": state, "detail": detail}
        if request_id is not None:
            data["request_id"] = request_id
        self.csms.events.publish("campaign", station, now, data)

    async def _tick_forever(self) -> None:
        while True:
            try:
                await self._tick()
            except Exception as exc:
                log.error("campaign tick failed", error=repr(exc))
            await trio.sleep(TICK_S)

    async def _tick(self) -> None:
        now = self.csms.wall_clock()
        running = await self.db.run(lambda store: store.campaigns("running"))
        for campaign in running:
            start_at = from_text(campaign["start_at"])
            if start_at is not None and start_at > now:
                continue
            await self._advance(campaign, now)

    async def _advance(self, campaign: dict[str, Any], now: datetime) -> None:
        campaign_id = int(campaign["id"])
        targets = await self.db.run(lambda store: store.campaign_targets(campaign_id))
        timeout = timedelta(seconds=float(campaign["target_timeout_s"]))
        in_progress = 0
        for target in targets:
            if target["state"] != "in_progress":
                continue
            updated = from_text(target["updated_at"])
            if updated is not None and now - updated >= timeout:
                await self._fail(campaign_id, target["station_id"], "no progress reported", now)
            else:
                in_progress += 1
        pending = [t for t in targets if t["state"] == "pending"]
        if not pending and not in_progress:
            await self.db.run(lambda store: store.set_campaign_state(campaign_id, "finished", now))
            log.info("campaign finished", campaign_id=campaign_id)
            return
        free = int(campaign["batch_size"]) - in_progress
        for target in pending:
            if free <= 0:
                break
            if await self._start(campaign, target["station_id"], now):
                free -= 1

    async def _start(self, campaign: dict[str, Any], station: str, now: datetime) -> bool:
        """Send UpdateFirmware; True if the station took it (or it failed for good)."""
        campaign_id = int(campaign["id"])
        version = await self.csms.registry.version_of(station)
        if version is None:
            return False  # stays pending until the station is back
        await self.db.run(
            lambda store: store.update_target(
                campaign_id, station, now, state="in_progress", started=True
            )
        )
        request_id = None
        if version == v16.VERSION:
            payload = update_firmware_16(campaign, now)
        else:
            # The attempt just counted makes the id: any node can tell it from the stored
            # target, and a retry does not reuse the id of the attempt before.
            attempts = await self._attempts(campaign_id, station)
            request_id = firmware_request_id(campaign_id, attempts)
            payload = update_firmware_2x(campaign, now, request_id)
        try:
            answer = await self.csms.registry.send_command(station, "UpdateFirmware", payload)
        except (StationOffline, StationBusy):
            await self.db.run(
                lambda store: store.update_target(
                    campaign_id, station, now, state="pending", error="station went away"
                )
            )
            return False
        except (CommandTimeout, CommandRejected) as exc:
            await self._fail(campaign_id, station, f"UpdateFirmware: {exc}", now)
            return True
        except OcppError as exc:  # the payload breaks the schema: nothing was sent
            await self._fail(campaign_id, station, f"UpdateFirmware: {exc.description}", now)
            return True
        if request_id is not None and answer.get("status") not in ACCEPTED_2X:
            await self._fail(campaign_id, station, f"UpdateFirmware: {answer.get('status')}", now)
            return True
        detail = "UpdateFirmware accepted"
        if request_id is not None:
            detail += f" (requestId {request_id})"
        log.info(
            "firmware update sent",
            campaign_id=campaign_id,
            station_id=station,
            request_id=request_id,
        )
        self._publish(campaign_id, station, "in_progress", detail, now, request_id=request_id)
        return True

    async def _attempts(self, campaign_id: int, station: str) -> int:
        targets = await self.db.run(lambda store: store.campaign_targets(campaign_id))
        return next(int(t["attempts"]) for t in targets if t["station_id"] == station)

    async def _fail(self, campaign_id: int, station: str, error: str, now: datetime) -> None:
        await self.db.run(
            lambda store: store.update_target(
                campaign_id, station, now, state="failed", error=error
            )
        )
        self._publish(campaign_id, station, "failed", error, now)


def _update_target(store: ApiStore, **values: Any) -> None:
    campaign_id, station_id, now = (
        values.pop("campaign_id"),
        values.pop("station_id"),
        values.pop("now"),
    )
    store.update_target(campaign_id, station_id, now, **values)


def firmware_request_id(campaign_id: int, attempt: int) -> int:
    """The requestId of a station's `attempt`-th UpdateFirmware in a campaign (2.x)."""
    return (campaign_id * ATTEMPTS_PER_CAMPAIGN + attempt % ATTEMPTS_PER_CAMPAIGN) % 2**31


def update_firmware_16(campaign: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "location": campaign["location"],
        "retrieveDate": iso(now),
        "retries": int(campaign["retries"]),
        "retryInterval": int(campaign["retry_interval"]),
    }


def update_firmware_2x(campaign: dict[str, Any], now: datetime, request_id: int) -> dict[str, Any]:
    """UpdateFirmware of 2.0.1 and 2.1 (the same shape in both)."""
    return {
        "requestId": request_id,
        "retries": int(campaign["retries"]),
        "retryInterval": int(campaign["retry_interval"]),
        "firmware": {"location": campaign["location"], "retrieveDateTime": iso(now)},
    }
