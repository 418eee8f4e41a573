"""The device model of 2.x stations: what they reported through NotifyReport, as stored by the
ledger, and asking a connected station to report it again (GetBaseReport FullInventory).

A 1.6 station has no device model; its configuration keys are under `/configuration`.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from csms.api.context import Ctx, OperateKey, ReadKey
from csms.api.routes.commands import send
from csms.api.routes.stations import station_or_404
from csms.protocol import v16

router = APIRouter(prefix="/api/stations", tags=["device model"])

#: Component and variable names are OCPP identifier strings of at most 50 characters.
Name = Annotated[str | None, Query(min_length=1, max_length=50)]


@router.get("/{station_id}/device-model")
async def list_device_model(
    station_id: str, ctx: Ctx, _: ReadKey, component: Name = None, variable: Name = None
) -> list[dict[str, Any]]:
    """The station's device model as it last reported it, one row per variable attribute
    (an absent instance, EVSE or connector is null), only of `component` or `variable`
    when given (exact names). Empty until the station has sent a report."""
    await station_or_404(ctx, station_id)
    return await ctx.db.run(
        lambda store: store.device_variables(station_id, component=component, variable=variable)
    )


@router.post("/{station_id}/device-model/refresh")
async def refresh_device_model(station_id: str, ctx: Ctx, _: OperateKey) -> dict[str, Any]:
    """Ask the station for its full device model (GetBaseReport FullInventory); it reports
    through NotifyReport with the returned `request_id`, and the rows it stores carry that
    id as their `report_id`.

    404: unknown station. 409: offline, or a 1.6 station. 502: the station did not accept
    (its answer says why), or answered with a CALLERROR. 504: it did not answer in time."""
    station = await station_or_404(ctx, station_id)
    version = station["ocpp_version"]
    if version is None:
        raise HTTPException(409, f"station {station_id!r} is offline")
    if version == v16.VERSION:
        raise HTTPException(
            409,
            f"station {station_id!r} speaks {version}, which has no device model;"
            " take a configuration snapshot instead",
        )
    request_id = secrets.randbelow(2**31 - 1) + 1
    answer = await send(
        ctx, station_id, "GetBaseReport", {"requestId": request_id, "reportBase": "FullInventory"}
    )
    status = answer["response"].get("status")
    if status != "Accepted":
        raise HTTPException(
            502,
            {
                "message": f"the station answered GetBaseReport with {status}",
                "response": answer["response"],
            },
        )
    return {
        "station_id": station_id,
        "request_id": request_id,
        "ocpp_version": answer["ocpp_version"],
        "sent_at": answer["sent_at"],
        "response": answer["response"],
    }
