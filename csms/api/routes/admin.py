"""API keys and the audit log (admin scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from csms.api.context import AdminKey, Ctx
from csms.api.keys import key_hash, key_label, new_key
from csms.api.models import KeyCreate

router = APIRouter(prefix="/api", tags=["admin"])


@router.get("/keys")
async def list_keys(ctx: Ctx, _: AdminKey) -> list[dict[str, Any]]:
    """Keys by name and scope, with their first characters (never the key)."""
    return await ctx.db.run(lambda store: store.list_api_keys())


@router.post("/keys", status_code=201)
async def create_key(body: KeyCreate, ctx: Ctx, _: AdminKey) -> dict[str, Any]:
    """A new key; the answer is the only place it is ever shown."""
    key = new_key()
    now = ctx.now()
    await ctx.db.run(
        lambda store: store.create_api_key(
            body.name, body.scope.value, key_hash(key), key_label(key), now
        )
    )
    return {"name": body.name, "scope": body.scope.value, "key": key}


@router.delete("/keys/{name}", status_code=204)
async def revoke_key(name: str, ctx: Ctx, _: AdminKey) -> Response:
    now = ctx.now()
    await ctx.db.run(lambda store: store.revoke_api_key(name, now))
    return Response(status_code=204)


@router.get("/audit")
async def audit_log(
    ctx: Ctx,
    _: AdminKey,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    key: str | None = None,
) -> list[dict[str, Any]]:
    """Mutating calls, newest first; page with `before` (the last id seen)."""
    return await ctx.db.run(
        lambda store: store.list_audit(limit=limit, before_id=before, key_name=key)
    )
