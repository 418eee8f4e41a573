"""Station passwords over the API: rotate a profile 1/2 station's Basic-auth password.

`POST /api/stations/{id}/password` (admin) picks a new password (or takes the one in the
body), records its hash as pending, and sends it to the connected station (1.6:
ChangeConfiguration AuthorizationKey; 2.x: SetVariables BasicAuthPassword). The answer
carries the password once; it is never stored or logged in clear (the audit log redacts it).
The old password stays valid until the station has logged in with the new one.
"""

from __future__ import annotations

from typing import Annotated, Any

import trio
from fastapi import APIRouter, HTTPException
from pydantic import Field

from csms.api.context import AdminKey, Ctx
from csms.api.models import Body
from csms.api.routes.commands import send
from csms.api.routes.stations import station_or_404
from csms.domain.credentials import BadPassword, hash_password
from csms.domain.events import PasswordStage
from csms.domain.password_rotation import (
    check_password,
    new_password,
    rotation_command,
    station_took_it,
)
from csms.runtime.password_rotation import record_step

router = APIRouter(prefix="/api/stations", tags=["stations"])


class PasswordRotationRequest(Body):
    #: The new password; a random one when absent.
    password: Annotated[str | None, Field(min_length=1, max_length=100)] = None


@router.post("/{station_id}/password")
async def rotate_password(
    station_id: str, ctx: Ctx, _: AdminKey, body: PasswordRotationRequest | None = None
) -> dict[str, Any]:
    """Give a connected profile 1/2 station a new password; the answer shows it once."""
    station = await station_or_404(ctx, station_id)
    if station["security_profile"] not in (1, 2):
        raise HTTPException(
            409, f"station {station_id!r} is profile {station['security_profile']}: no password"
        )
    version = station.get("ocpp_version")
    if not station.get("online") or version is None:
        raise HTTPException(409, f"station {station_id!r} is offline")
    wanted = body.password if body is not None else None
    try:
        password = check_password(version, wanted) if wanted else new_password(version)
    except BadPassword as exc:
        raise HTTPException(422, str(exc)) from None
    hashed = await trio.to_thread.run_sync(hash_password, password)
    ledger = ctx.csms.ledger
    if not await record_step(ledger, station_id, PasswordStage.OFFERED, hashed, ctx.now()):
        raise HTTPException(409, f"station {station_id!r} takes no password")
    action, payload = rotation_command(version, password)
    try:
        sent = await send(ctx, station_id, action, payload)
    except HTTPException as exc:
        # After a timeout the station may have taken the password: both stay valid.
        if exc.status_code != 504:
            await record_step(ledger, station_id, PasswordStage.WITHDRAWN, hashed, ctx.now())
        raise
    refusal = station_took_it(version, sent["response"])
    if refusal is not None:
        await record_step(ledger, station_id, PasswordStage.WITHDRAWN, hashed, ctx.now())
        raise HTTPException(
            409, f"the station refused the new password ({refusal}); the old one stays valid"
        )
    return {
        "station_id": station_id,
        "password": password,
        "state": "pending",
        "message": "the old password stays valid until the station logs in with this one",
    }
