"""Remote diagnostics and maintenance: diagnostics uploads from chargers, hosted firmware
files and firmware update campaigns, configuration snapshots and their differences from the
desired configuration.

Chargers carry no API key: an upload location names a one-time-issued random slot, and
firmware files are public downloads (`/firmware/NAME`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC
from pathlib import Path as FilePath
from typing import Annotated, Any

import trio
from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.responses import FileResponse

from csms.api.context import AdminKey, ApiContext, Ctx, OperateKey, ReadKey
from csms.api.models import CampaignCreate, DesiredConfiguration, DiagnosticsRequest
from csms.api.routes.commands import send
from csms.api.routes.stations import station_or_404
from csms.protocol import v16
from csms.storage.sqlite_api import config_diff

router = APIRouter(tags=["maintenance"])

MAX_UPLOAD = 64 * 1024 * 1024
MAX_FIRMWARE = 512 * 1024 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
FileName = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._+-]+$")]
NumericId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _base_url(request: Request, given: str | None) -> str:
    return (given or str(request.base_url)).rstrip("/")


async def _receive_file(request: Request, target: FilePath, limit: int) -> tuple[int, str]:
    """Stream the request body to `target` (replaced only when complete); size and SHA-256."""
    partial = target.with_name(target.name + ".part")
    digest, size = hashlib.sha256(), 0
    await trio.Path(target.parent).mkdir(parents=True, exist_ok=True)
    try:
        async with await trio.open_file(partial, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"file larger than {limit} bytes")
                digest.update(chunk)
                await out.write(chunk)
        await trio.Path(partial).replace(target)
    finally:
        await trio.Path(partial).unlink(missing_ok=True)
    return size, digest.hexdigest()


# -- diagnostics -----------------------------------------------------------------------------


@router.post("/api/stations/{station_id}/diagnostics")
async def request_diagnostics(
    station_id: str, body: DiagnosticsRequest, request: Request, ctx: Ctx, _: OperateKey
) -> dict[str, Any]:
    """Ask the station to upload its diagnostics here (GetDiagnostics with a location on this
    server); the file shows up in its uploads."""
    await station_or_404(ctx, station_id)
    token = secrets.token_urlsafe(18)
    location = f"{_base_url(request, body.base_url)}/uploads/{token}/"
    payload: dict[str, Any] = {"location": location}
    for name in ("startTime", "stopTime"):
        moment = getattr(body, name)
        if moment is not None:
            payload[name] = v16.iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    for name in ("retries", "retryInterval"):
        if getattr(body, name) is not None:
            payload[name] = getattr(body, name)
    now = ctx.now()
    await ctx.db.run(lambda store: store.create_upload_slot(token, station_id, now))
    return {"location": location, **await send(ctx, station_id, "GetDiagnostics", payload)}


async def _upload(token: str, file_name: str, request: Request, ctx: ApiContext) -> Response:
    station_id = await ctx.db.run(lambda store: store.upload_slot_station(token))
    if station_id is None:
        raise HTTPException(404, "no such upload location")
    now = ctx.now()
    safe = _SAFE_NAME.sub("_", file_name)[:200]
    stored_as = f"uploads/{_SAFE_NAME.sub('_', station_id)}/{now:%Y%m%dT%H%M%S%f}-{safe}"
    size, sha256 = await _receive_file(request, ctx.files / stored_as, MAX_UPLOAD)
    content_type = request.headers.get("content-type")
    upload_id = await ctx.db.run(
        lambda store: store.record_upload(
            station_id, file_name, stored_as, size, sha256, content_type, now
        )
    )
    ctx.csms.events.publish(
        "diagnostics", station_id, now, {"status": "Received", "upload_id": upload_id, "size": size}
    )
    return Response(status_code=201)


@router.put("/uploads/{token}/{file_name}", status_code=201, response_class=Response)
async def upload_put(token: str, file_name: FileName, request: Request, ctx: Ctx) -> Response:
    """Where chargers upload diagnostics (the location of GetDiagnostics, plus a file name)."""
    return await _upload(token, file_name, request, ctx)


@router.post("/uploads/{token}/{file_name}", status_code=201, response_class=Response)
async def upload_post(token: str, file_name: FileName, request: Request, ctx: Ctx) -> Response:
    """The same as PUT, for chargers that POST the raw file."""
    return await _upload(token, file_name, request, ctx)


@router.get("/api/stations/{station_id}/uploads")
async def list_uploads(station_id: str, ctx: Ctx, _: ReadKey) -> list[dict[str, Any]]:
    """Files the station uploaded, newest first."""
    return await ctx.db.run(lambda store: store.uploads(station_id))


@router.get("/api/uploads/{upload_id}", response_class=FileResponse)
async def download_upload(upload_id: NumericId, ctx: Ctx, _: ReadKey) -> FileResponse:
    found = await ctx.db.run(lambda store: store.upload(upload_id))
    if found is None:
        raise HTTPException(404, f"no upload {upload_id}")
    return FileResponse(ctx.files / found["stored_as"], filename=found["file_name"])


# -- firmware files --------------------------------------------------------------------------


@router.put("/api/firmware/{name}", status_code=201)
async def put_firmware(name: FileName, request: Request, ctx: Ctx, _: AdminKey) -> dict[str, Any]:
    """Host a firmware file (the raw body); chargers download it from `/firmware/NAME`."""
    size, sha256 = await _receive_file(request, ctx.files / "firmware" / name, MAX_FIRMWARE)
    now = ctx.now()
    await ctx.db.run(lambda store: store.record_firmware(name, size, sha256, now))
    return {"name": name, "size": size, "sha256": sha256, "path": f"/firmware/{name}"}


@router.get("/api/firmware")
async def list_firmware(ctx: Ctx, _: ReadKey) -> list[dict[str, Any]]:
    return await ctx.db.run(lambda store: store.firmware_files())


@router.delete("/api/firmware/{name}", status_code=204)
async def delete_firmware(name: FileName, ctx: Ctx, _: AdminKey) -> Response:
    await ctx.db.run(lambda store: store.delete_firmware(name))
    await trio.Path(ctx.files / "firmware" / name).unlink(missing_ok=True)
    return Response(status_code=204)


@router.get("/firmware/{name}", response_class=FileResponse)
async def download_firmware(name: FileName, ctx: Ctx) -> FileResponse:
    """A hosted firmware file (public: chargers download it)."""
    if await ctx.db.run(lambda store: store.firmware_file(name)) is None:
        raise HTTPException(404, f"no firmware file {name!r}")
    return FileResponse(ctx.files / "firmware" / name, media_type="application/octet-stream")


# -- firmware campaigns ----------------------------------------------------------------------


async def _campaign_or_404(ctx: ApiContext, campaign_id: int) -> dict[str, Any]:
    found = await ctx.db.run(lambda store: store.campaign(campaign_id))
    if found is None:
        raise HTTPException(404, f"no campaign {campaign_id}")
    return found


@router.post("/api/campaigns", status_code=201)
async def create_campaign(
    body: CampaignCreate, request: Request, ctx: Ctx, _: OperateKey
) -> dict[str, Any]:
    """Update the stations' firmware, `batch_size` at a time from `start_at`; each station's
    progress follows its FirmwareStatusNotifications, and one that fails (or reports nothing
    within `target_timeout_s`) is listed with why, to retry."""
    now = ctx.now()
    start_at = body.start_at or now
    if start_at.tzinfo is None:
        start_at = start_at.replace(tzinfo=UTC)
    location = f"{_base_url(request, body.base_url)}/firmware/{body.firmware}"
    campaign_id = await ctx.db.run(
        lambda store: store.create_campaign(
            name=body.name or f"{body.firmware} to {len(body.stations)} stations",
            firmware=body.firmware,
            location=location,
            stations=body.stations,
            batch_size=body.batch_size,
            start_at=start_at,
            retries=body.retries,
            retry_interval=body.retry_interval,
            target_timeout_s=body.target_timeout_s,
            now=now,
        )
    )
    return await _campaign_or_404(ctx, campaign_id)


@router.get("/api/campaigns")
async def list_campaigns(ctx: Ctx, _: ReadKey) -> list[dict[str, Any]]:
    return await ctx.db.run(lambda store: store.campaigns())


@router.get("/api/campaigns/{campaign_id}")
async def get_campaign(campaign_id: NumericId, ctx: Ctx, _: ReadKey) -> dict[str, Any]:
    """A campaign with every station's state, and its failures."""
    return await _campaign_or_404(ctx, campaign_id)


@router.post("/api/campaigns/{campaign_id}/retry")
async def retry_campaign(campaign_id: NumericId, ctx: Ctx, _: OperateKey) -> dict[str, Any]:
    """Put the failed stations back in the queue (and the campaign back to running)."""
    now = ctx.now()
    await ctx.db.run(lambda store: store.retry_failed_targets(campaign_id, now))
    return await _campaign_or_404(ctx, campaign_id)


@router.post("/api/campaigns/{campaign_id}/cancel")
async def cancel_campaign(campaign_id: NumericId, ctx: Ctx, _: OperateKey) -> dict[str, Any]:
    """Send no more updates (those under way go on at the stations)."""
    now = ctx.now()
    await ctx.db.run(lambda store: store.set_campaign_state(campaign_id, "cancelled", now))
    return await _campaign_or_404(ctx, campaign_id)


# -- configuration ---------------------------------------------------------------------------


@router.get("/api/stations/{station_id}/configuration")
async def get_configuration(station_id: str, ctx: Ctx, _: ReadKey) -> dict[str, Any]:
    """The latest snapshot (GetConfiguration result), the desired configuration, their
    differences, and earlier snapshots."""
    await station_or_404(ctx, station_id)
    snapshots = await ctx.db.run(lambda store: store.config_snapshots(station_id))
    desired = await ctx.db.run(lambda store: store.desired_config(station_id))
    latest = snapshots[0] if snapshots else None
    keys = latest["configuration"].get("configurationKey", []) if latest else []
    return {
        "station_id": station_id,
        "latest": latest,
        "desired": desired,
        "diff": config_diff(keys, desired) if latest else None,
        "history": [{"id": s["id"], "taken_at": s["taken_at"]} for s in snapshots],
    }


@router.post("/api/stations/{station_id}/configuration/snapshot")
async def take_snapshot(station_id: str, ctx: Ctx, _: OperateKey) -> dict[str, Any]:
    """Ask the station for its whole configuration and keep it as a snapshot."""
    await station_or_404(ctx, station_id)
    answer = await send(ctx, station_id, "GetConfiguration", {})
    now = ctx.now()
    await ctx.db.run(lambda store: store.save_config_snapshot(station_id, answer["response"], now))
    return await get_configuration(station_id, ctx, _)


@router.put("/api/configuration/desired")
async def set_fleet_desired(body: DesiredConfiguration, ctx: Ctx, _: AdminKey) -> dict[str, str]:
    """Desired values for every station (a station's own values override them)."""
    await ctx.db.run(lambda store: store.set_desired_config("", body.values))
    return await ctx.db.run(lambda store: store.desired_config(""))


@router.put("/api/stations/{station_id}/configuration/desired")
async def set_station_desired(
    station_id: str, body: DesiredConfiguration, ctx: Ctx, _: AdminKey
) -> dict[str, str]:
    await station_or_404(ctx, station_id)
    await ctx.db.run(lambda store: store.set_desired_config(station_id, body.values))
    return await ctx.db.run(lambda store: store.desired_config(station_id))
