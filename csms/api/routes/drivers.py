"""Drivers and their id tokens: create, read, update, delete, block and unblock; and the
local authorization list pushed to a station, with the versions sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Response

from csms.api.context import AdminKey, Ctx, OperateKey, ReadKey
from csms.api.models import DriverBody, DriverCreate, LocalListPush, TokenCreate, TokenUpdate
from csms.api.routes.commands import send
from csms.api.routes.stations import station_or_404
from csms.domain.records import DriverRecord
from csms.protocol import v16
from csms.storage.sqlite import TokenRow
from csms.storage.timestamps import from_text, to_text

router = APIRouter(prefix="/api", tags=["drivers and tokens"])


# -- tokens ----------------------------------------------------------------------------------


async def _token_or_404(ctx: Ctx, id_tag: str) -> dict[str, Any]:
    token = await ctx.db.run(lambda store: store.token(id_tag))
    if token is None:
        raise HTTPException(404, f"no id token {id_tag!r}")
    return token


@router.get("/tokens")
async def list_tokens(ctx: Ctx, _: ReadKey, driver: str | None = None) -> list[dict[str, Any]]:
    return await ctx.db.run(lambda store: store.tokens(driver))


@router.post("/tokens", status_code=201)
async def create_token(body: TokenCreate, ctx: Ctx, _: AdminKey) -> dict[str, Any]:
    row = TokenRow(
        body.id_tag, body.status, body.expiry, body.parent_id_tag, body.max_active_transactions
    )
    await ctx.db.run(lambda store: store.create_token(row, body.driver_id))
    return await _token_or_404(ctx, body.id_tag)


@router.get("/tokens/{id_tag}")
async def get_token(id_tag: str, ctx: Ctx, _: ReadKey) -> dict[str, Any]:
    return await _token_or_404(ctx, id_tag)


@router.patch("/tokens/{id_tag}")
async def update_token(id_tag: str, body: TokenUpdate, ctx: Ctx, _: AdminKey) -> dict[str, Any]:
    """Change the fields given (null clears expiry, parent, maximum or driver)."""
    changes = body.model_dump(exclude_unset=True)
    if "status" in changes and changes["status"] is None:
        raise HTTPException(422, "status cannot be null")
    if "expiry" in changes:
        changes["expiry"] = to_text(changes["expiry"])
    await ctx.db.run(lambda store: store.update_token(id_tag, changes))
    return await _token_or_404(ctx, id_tag)


@router.delete("/tokens/{id_tag}", status_code=204)
async def delete_token(id_tag: str, ctx: Ctx, _: AdminKey) -> Response:
    await ctx.db.run(lambda store: store.delete_token(id_tag))
    return Response(status_code=204)


@router.post("/tokens/{id_tag}/block")
async def block_token(id_tag: str, ctx: Ctx, _: OperateKey) -> dict[str, Any]:
    """Refuse the token from now on (at the next authorization or local list)."""
    await ctx.db.run(lambda store: store.update_token(id_tag, {"status": "Blocked"}))
    return await _token_or_404(ctx, id_tag)


@router.post("/tokens/{id_tag}/unblock")
async def unblock_token(id_tag: str, ctx: Ctx, _: OperateKey) -> dict[str, Any]:
    await ctx.db.run(lambda store: store.update_token(id_tag, {"status": "Accepted"}))
    return await _token_or_404(ctx, id_tag)


# -- drivers ---------------------------------------------------------------------------------


async def _driver_or_404(ctx: Ctx, driver_id: str) -> dict[str, Any]:
    driver = await ctx.db.run(lambda store: store.driver(driver_id))
    if driver is None:
        raise HTTPException(404, f"no driver {driver_id!r}")
    return driver


async def _save_driver(ctx: Ctx, driver_id: str, body: DriverBody) -> None:
    if body.payment_method == "subscription" and body.plan_id is None:
        raise HTTPException(422, "a subscription driver needs a plan_id")
    record = DriverRecord(
        driver_id,
        body.currency,
        body.payment_method,
        body.card_ref,
        body.plan_id,
        body.wallet_minimum,
    )
    now = ctx.now()
    await ctx.db.run(lambda store: store.add_driver(record, now, name=body.name, email=body.email))


@router.get("/drivers")
async def list_drivers(ctx: Ctx, _: ReadKey) -> list[dict[str, Any]]:
    """Drivers with their wallet balance, the amount they owe and how many tokens they own."""
    return await ctx.db.run(lambda store: store.list_drivers())


@router.post("/drivers", status_code=201)
async def create_driver(body: DriverCreate, ctx: Ctx, _: AdminKey) -> dict[str, Any]:
    if await ctx.db.run(lambda store: store.driver(body.id)) is not None:
        raise HTTPException(409, f"driver {body.id!r} exists already")
    await _save_driver(ctx, body.id, body)
    return await _driver_or_404(ctx, body.id)


@router.get("/drivers/{driver_id}")
async def get_driver(driver_id: str, ctx: Ctx, _: ReadKey) -> dict[str, Any]:
    """A driver with their tokens, balances and whether they are blocked."""
    return await _driver_or_404(ctx, driver_id)


@router.put("/drivers/{driver_id}")
async def update_driver(driver_id: str, body: DriverBody, ctx: Ctx, _: AdminKey) -> dict[str, Any]:
    await _driver_or_404(ctx, driver_id)
    await _save_driver(ctx, driver_id, body)
    return await _driver_or_404(ctx, driver_id)


@router.delete("/drivers/{driver_id}", status_code=204)
async def delete_driver(driver_id: str, ctx: Ctx, _: AdminKey) -> Response:
    """Forget a driver with no postings; their tokens stay, unassigned."""
    await ctx.db.run(lambda store: store.delete_driver(driver_id))
    return Response(status_code=204)


@router.post("/drivers/{driver_id}/block")
async def block_driver(driver_id: str, ctx: Ctx, _: OperateKey) -> dict[str, Any]:
    """Block every token of the driver."""
    await ctx.db.run(lambda store: store.block_driver(driver_id))
    return await _driver_or_404(ctx, driver_id)


@router.post("/drivers/{driver_id}/unblock")
async def unblock_driver(driver_id: str, ctx: Ctx, _: OperateKey) -> dict[str, Any]:
    """Give each token back the status it had when the driver was blocked."""
    await ctx.db.run(lambda store: store.unblock_driver(driver_id))
    return await _driver_or_404(ctx, driver_id)


# -- local authorization list ------------------------------------------------------------------


def _entry(token: dict[str, Any], now: datetime) -> dict[str, Any]:
    status = token["status"]
    expiry = from_text(token["expiry"])
    if expiry is not None and expiry <= now and status == "Accepted":
        status = "Expired"
    info: dict[str, Any] = {"status": status}
    if expiry is not None:
        info["expiryDate"] = v16.iso(expiry)
    if token["parent_id_tag"]:
        info["parentIdTag"] = token["parent_id_tag"]
    return {"idTag": token["id_tag"], "idTagInfo": info}


@router.get("/stations/{station_id}/local-list")
async def local_list_versions(station_id: str, ctx: Ctx, _: ReadKey) -> list[dict[str, Any]]:
    """The local list versions sent to the station, newest first."""
    await station_or_404(ctx, station_id)
    return await ctx.db.run(lambda store: store.local_list_versions(station_id))


@router.post("/stations/{station_id}/local-list")
async def push_local_list(
    station_id: str, body: LocalListPush, ctx: Ctx, _: OperateKey
) -> dict[str, Any]:
    """Send every token as the station's local list (SendLocalList, Full), as a new version."""
    await station_or_404(ctx, station_id)
    tokens = await ctx.db.run(lambda store: store.local_list_tokens())
    version = await ctx.db.run(lambda store: store.next_local_list_version(station_id))
    now = ctx.now()
    entries = [_entry(token, now) for token in tokens]
    answer = await send(
        ctx,
        station_id,
        "SendLocalList",
        {"listVersion": version, "updateType": body.update_type, "localAuthorizationList": entries},
    )
    status = str(answer["response"].get("status", "?"))
    await ctx.db.run(
        lambda store: store.record_local_list(
            station_id, version, body.update_type, len(entries), status, now
        )
    )
    return {"version": version, "entries": len(entries), **answer}
