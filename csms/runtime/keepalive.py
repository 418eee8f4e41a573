"""The keepalive watch: one task for all connections, not one per connection.

A connection with no traffic (messages or pongs) for `ping_interval` gets a WebSocket ping;
no pong within `ping_timeout` means a half-open socket, and it is closed. A station silent
(no OCPP message) beyond its heartbeat allowance is offline, and it is closed too. Idle
connections are most connections; a timer task in each would cost memory in each.
"""

from __future__ import annotations

import trio

from csms.config import Settings
from csms.runtime.registry import ConnectionRegistry


async def watch_connections(
    registry: ConnectionRegistry,
    settings: Settings,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    offline_after = settings.heartbeat_interval * settings.offline_after_heartbeats
    tick = max(min(settings.ping_interval, offline_after) / 4, 0.05)
    async with trio.open_nursery() as pings:
        task_status.started()
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            for connection in registry:
                if now - connection.last_heard >= offline_after:
                    connection.close("offline")
                elif (
                    now - connection.last_alive >= settings.ping_interval and not connection.pinging
                ):
                    connection.pinging = True
                    pings.start_soon(connection.ping, settings.ping_timeout)
