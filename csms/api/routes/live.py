"""The live views: the chargers connected now (`/api/live`, cluster-wide), the event stream
(Server-Sent Events) and the Prometheus `/metrics` page.

Events and `/metrics` are this process's own (each node is scraped and streams on its own);
`/api/live` lists every charger any live node holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
import trio
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from csms.api.context import ApiContext, Ctx, ReadKey
from csms.runtime.events import LiveEvent

router = APIRouter(tags=["live"])

#: A comment line this often keeps proxies and clients from timing the stream out.
KEEPALIVE_S = 15.0


def _frame(event: LiveEvent) -> bytes:
    return (
        f"id: {event.id}\nevent: {event.kind}\ndata: ".encode()
        + orjson.dumps(event.as_json())
        + b"\n\n"
    )


async def _stream(
    ctx: ApiContext, kinds: set[str] | None, last_id: int | None
) -> AsyncIterator[bytes]:
    bus = ctx.csms.events
    with bus.subscribe() as subscription:
        yield b"retry: 2000\n: connected\n\n"
        if last_id is not None:
            for missed in bus.recent_after(last_id):
                if kinds is None or missed.kind in kinds:
                    yield _frame(missed)
        reported = 0
        while True:
            event: LiveEvent | None = None
            with trio.move_on_after(KEEPALIVE_S):
                event = await subscription.receive.receive()
            if subscription.dropped > reported:
                lost = subscription.dropped - reported
                reported = subscription.dropped
                yield b"event: lagged\ndata: " + orjson.dumps({"lost": lost}) + b"\n\n"
            if event is None:
                yield b": keepalive\n\n"
            elif kinds is None or event.kind in kinds:
                yield _frame(event)


@router.get(
    "/api/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    ctx: Ctx,
    _: ReadKey,
    kinds: Annotated[
        str | None,
        Query(
            max_length=500,
            description="Comma-separated kinds: status, session_started, session_stopped, meter,"
            " connection, boot, heartbeat, firmware, diagnostics, alert, campaign.",
        ),
    ] = None,
    last_event_id: Annotated[int | None, Header(ge=0, le=2**63 - 1)] = None,
) -> StreamingResponse:
    """Live events as Server-Sent Events: `event:` is the kind, `data:` a JSON object with
    `id`, `kind`, `station_id`, `at` and `data`. A client that reconnects with
    `Last-Event-ID` first gets what it missed (of the last thousand events)."""
    wanted = {k.strip() for k in kinds.split(",") if k.strip()} if kinds else None
    return StreamingResponse(
        _stream(ctx, wanted, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/api/live")
async def live_connections(ctx: Ctx, _: ReadKey) -> list[dict[str, Any]]:
    """Every charger connected now, to this node or any live node of the cluster: its id,
    OCPP version, the holding node's name (null when the CSMS is one process), whether it is
    this node's (`local`), and when the holding node's claim was recorded (`since`, cluster
    only). Sorted by station id."""
    online = await ctx.csms.registry.online()
    return [
        {
            "station_id": station_id,
            "ocpp_version": station.ocpp_version,
            "node": station.node,
            "local": station.local,
            "since": station.since.isoformat() if station.since is not None else None,
        }
        for station_id, station in sorted(online.items())
    ]


@router.get("/metrics", include_in_schema=True, response_class=Response)
async def metrics(ctx: Ctx) -> Response:
    """Prometheus text format (public)."""
    csms = ctx.csms
    fleet = csms.metrics.fleet
    fleet.versions.clear()
    depths = []
    for connection in csms.registry:
        fleet.versions[connection.version] += 1
        depths.append(int(getattr(connection, "mailbox_depth", 0)))
    fleet.mailbox_depths = depths
    fleet.ledger_queue = csms.ledger.queue_statistics().current_buffer_used
    fleet.sse_subscribers = csms.events.subscribers
    totals = await ctx.db.run(lambda store: store.fleet_totals())
    fleet.active_sessions = totals["active_sessions"]
    fleet.energy_wh = totals["energy_wh"]
    return Response(csms.metrics.render(), media_type=CONTENT_TYPE_LATEST)
