"""Alerts: listed, acknowledged and cleared; and the thresholds that raise them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from csms.api.context import AdminKey, ApiContext, Ctx, OperateKey, ReadKey
from csms.api.models import AlertSettings

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _publish(ctx: ApiContext, alert: dict[str, Any]) -> None:
    ctx.csms.events.publish("alert", alert.get("station_id"), ctx.now(), alert)


@router.get("")
async def list_alerts(
    ctx: Ctx,
    _: ReadKey,
    state: Literal["open", "active", "acknowledged", "cleared"] | None = None,
    station: str | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Alerts, newest first; `state=open` is active and acknowledged ones. Kinds:
    station_offline, connector_faulted, session_stuck, boot_loop, firmware_failed."""
    return await ctx.db.run(
        lambda store: store.list_alerts(state=state, station_id=station, kind=kind, limit=limit)
    )


@router.get("/settings")
async def get_alert_settings(ctx: Ctx, _: ReadKey) -> dict[str, float]:
    return await ctx.db.run(lambda store: store.alert_settings())


@router.put("/settings")
async def set_alert_settings(body: AlertSettings, ctx: Ctx, _: AdminKey) -> dict[str, float]:
    """Change thresholds: stuck_session_after_s (no meter values for this long),
    boot_loop_boots within boot_loop_window_s, offline_grace_s (0: the heartbeat allowance)."""
    values = {k: v for k, v in body.model_dump().items() if v is not None}
    stored = await ctx.db.run(lambda store: store.set_alert_settings(values))
    ctx.csms.events.publish("alert_settings", None, ctx.now(), stored)
    return stored


@router.get("/{alert_id}")
async def get_alert(alert_id: AlertId, ctx: Ctx, _: ReadKey) -> dict[str, Any]:
    alert = await ctx.db.run(lambda store: store.alert(alert_id))
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return alert


@router.post("/{alert_id}/ack")
async def acknowledge_alert(alert_id: AlertId, ctx: Ctx, caller: OperateKey) -> dict[str, Any]:
    now = ctx.now()
    alert = await ctx.db.run(lambda store: store.acknowledge_alert(alert_id, caller.key_name, now))
    _publish(ctx, alert)
    return alert


@router.post("/{alert_id}/clear")
async def clear_alert(alert_id: AlertId, ctx: Ctx, caller: OperateKey) -> dict[str, Any]:
    now = ctx.now()
    alert = await ctx.db.run(lambda store: store.clear_alert(alert_id, caller.key_name, now))
    _publish(ctx, alert)
    return alert
