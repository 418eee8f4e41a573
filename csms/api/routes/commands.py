"""Commands: any CSMS-initiated OCPP call of the station's version, sent through the
station's connection actor, and the charger's answer.

The action set comes from the connection's version adapter (`CSMS_ACTIONS`); the body is the
OCPP payload in its wire (camelCase) form and is checked against the action's JSON schema
before anything is sent.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException

from csms.api.context import ApiContext, Ctx, OperateKey, ReadKey
from csms.api.routes.stations import station_or_404
from csms.protocol.adapters import ADAPTERS
from csms.protocol.errors import OcppError
from csms.protocol.schemas import validate_request
from csms.runtime.registry import CommandRejected, CommandTimeout, StationBusy, StationOffline

router = APIRouter(prefix="/api", tags=["commands"])


def commands_of(version: str) -> list[str]:
    return sorted(ADAPTERS[version].CSMS_ACTIONS)


def _invalid(error: OcppError) -> HTTPException:
    return HTTPException(
        422,
        {
            "message": f"invalid payload: {error.description}",
            "ocpp_error": error.code,
            "details": error.details,
        },
    )


async def send(
    ctx: ApiContext, station_id: str, action: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """Send a command to a station connected to any node; the HTTP error that says why not,
    if not."""
    version = await ctx.csms.registry.version_of(station_id)
    if version is None:
        raise HTTPException(409, f"station {station_id!r} is offline")
    if action not in ADAPTERS[version].CSMS_ACTIONS:
        raise HTTPException(
            404,
            f"{action} is not a command of {version}; its commands: "
            + ", ".join(commands_of(version)),
        )
    try:
        validate_request(version, action, payload)
    except OcppError as error:
        raise _invalid(error) from None
    started = ctx.csms.wall_clock()
    try:
        response = await ctx.csms.registry.send_command(station_id, action, payload)
    except StationOffline as exc:
        raise HTTPException(409, str(exc)) from None
    except StationBusy as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "1"}) from None
    except CommandTimeout as exc:
        raise HTTPException(504, f"the charger did not answer: {exc}") from None
    except CommandRejected as exc:
        raise HTTPException(
            502,
            {
                "message": f"the charger answered with a CALLERROR: {exc}",
                "ocpp_error": exc.error.code,
                "description": exc.error.description,
            },
        ) from None
    except OcppError as error:
        raise _invalid(error) from None
    return {
        "station_id": station_id,
        "action": action,
        "ocpp_version": version,
        "sent_at": started.isoformat(),
        "response": response,
    }


@router.get("/commands")
async def list_commands(_: ReadKey) -> dict[str, list[str]]:
    """The commands of each OCPP version this server speaks."""
    return {version: commands_of(version) for version in ADAPTERS}


@router.post("/stations/{station_id}/commands/{action}")
async def send_command(
    station_id: str,
    action: str,
    ctx: Ctx,
    _: OperateKey,
    payload: Annotated[dict[str, Any], Body(description="The OCPP request payload.")],
) -> dict[str, Any]:
    """Send `action` with the payload and return the charger's answer.

    404: unknown station, or not a command of its OCPP version. 409: the station is offline.
    422: the payload breaks the action's schema (nothing is sent). 429: too many commands wait
    for the station. 502: the charger answered with a CALLERROR. 504: it did not answer in time.
    """
    await station_or_404(ctx, station_id)
    return await send(ctx, station_id, action, payload)
