"""Sessions: filtered, paged listings and a session's detail with its meter samples and
cost (the CDR's, or the running cost of an active session)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from csms.api.context import ApiContext, Ctx, ReadKey
from csms.storage.sqlite_api import ApiStore, SessionFilter
from csms.storage.sqlite_billing_admin import live_cost

router = APIRouter(prefix="/api/sessions", tags=["sessions"])

SessionStatus = Literal["Active", "Completed", "Interrupted", "Unmatched"]


def _with_live_cost(ctx: ApiContext, store: ApiStore, session: dict[str, Any]) -> dict[str, Any]:
    if session["status"] == "Active":
        session["live_cost"] = live_cost(
            store, session["id"], ctx.now(), ctx.csms.settings.billing_rules()
        )
    return session


@router.get("")
async def list_sessions(
    ctx: Ctx,
    _: ReadKey,
    station: str | None = None,
    id_tag: Annotated[str | None, Query(alias="token")] = None,
    driver: str | None = None,
    status: SessionStatus | None = None,
    started_from: Annotated[datetime | None, Query(alias="from")] = None,
    started_before: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> dict[str, Any]:
    """Sessions, newest first: by station, token, driver, status and start time in
    [from, to). Active ones carry their running cost."""
    where = SessionFilter(station, id_tag, driver, status, started_from, started_before)

    def query(store: ApiStore) -> dict[str, Any]:
        rows, total = store.query_sessions(where, limit=limit, offset=offset)
        return {
            "items": [_with_live_cost(ctx, store, row) for row in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if offset + limit < total else None,
        }

    return await ctx.db.run(query)


@router.get("/{session_id}")
async def get_session(
    session_id: Annotated[int, Path(ge=1, le=2**63 - 1)], ctx: Ctx, _: ReadKey
) -> dict[str, Any]:
    """A session with every meter sample, its CDR cost, or its running cost while active."""

    def query(store: ApiStore) -> dict[str, Any] | None:
        session = store.get_session(session_id)
        if session is None:
            return None
        session["cdr"] = store.get_cdr(session_id)
        return _with_live_cost(ctx, store, session)

    found = await ctx.db.run(query)
    if found is None:
        raise HTTPException(404, f"no session {session_id}")
    return found
