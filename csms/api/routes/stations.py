"""Stations: create, read, update, delete; each with its connectors' live status, whether it
is connected (over which OCPP version, and in a cluster to which node), its last heartbeat,
boot data, firmware and security profile."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response

from csms.api.context import AdminKey, ApiContext, Ctx, ReadKey
from csms.api.models import StationCreate, StationUpdate
from csms.runtime.registry import OnlineStation

router = APIRouter(prefix="/api/stations", tags=["stations"])


def live(station: dict[str, Any], online: dict[str, OnlineStation]) -> dict[str, Any]:
    """A stored station with what only the running servers know: whether some node holds
    it, over which OCPP version, and which node (null when the CSMS is one process)."""
    held = online.get(station["id"])
    station["online"] = held is not None
    station["ocpp_version"] = held.ocpp_version if held is not None else None
    station["node"] = held.node if held is not None else None
    station["registered"] = bool(station["registered"])
    return station


async def station_or_404(ctx: ApiContext, station_id: str) -> dict[str, Any]:
    station = await ctx.db.run(lambda store: store.get_station(station_id))
    if station is None:
        raise HTTPException(404, f"no station {station_id!r}")
    return live(station, await ctx.csms.registry.online([station_id]))


@router.get("")
async def list_stations(ctx: Ctx, _: ReadKey) -> list[dict[str, Any]]:
    """Every station with its connectors."""
    stations = await ctx.db.run(lambda store: store.stations_with_connectors())
    online = await ctx.csms.registry.online()
    return [live(station, online) for station in stations]


@router.post("", status_code=201)
async def create_station(body: StationCreate, ctx: Ctx, _: AdminKey) -> dict[str, Any]:
    """Register a station: it is accepted at its next boot."""
    await ctx.db.run(lambda store: store.create_station(body.id, body.security_profile))
    return await station_or_404(ctx, body.id)


@router.get("/{station_id}")
async def get_station(station_id: str, ctx: Ctx, _: ReadKey) -> dict[str, Any]:
    return await station_or_404(ctx, station_id)


@router.patch("/{station_id}")
async def update_station(
    station_id: str, body: StationUpdate, ctx: Ctx, _: AdminKey
) -> dict[str, Any]:
    """Change the security profile, or register (true) or unregister (false) the station."""
    await ctx.db.run(
        lambda store: store.update_station(
            station_id, security_profile=body.security_profile, registered=body.registered
        )
    )
    return await station_or_404(ctx, station_id)


@router.delete("/{station_id}", status_code=204)
async def delete_station(station_id: str, ctx: Ctx, _: AdminKey) -> Response:
    """Forget a station that is not connected; its sessions stay."""
    if await ctx.csms.registry.version_of(station_id) is not None:
        raise HTTPException(409, f"station {station_id!r} is connected; it cannot be deleted now")
    await ctx.db.run(lambda store: store.delete_station(station_id))
    return Response(status_code=204)
