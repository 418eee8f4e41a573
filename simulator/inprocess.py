"""In-process mode: this CSMS and the fleet in one `trio.run`, on virtual time.

The CSMS runs with its real ledger (SQLite) and real WebSocket framing; chargers reach it
over in-memory stream pairs instead of TCP. Run it under `trio.run(..., clock=MockClock(
autojump_threshold=0))` and a week of a fleet passes as fast as the CPU allows. This module
is the one place the simulator imports `csms.runtime`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import trio
import trio.testing
from trio_websocket import WebSocketConnection, wrap_client_stream

from csms.config import Settings
from csms.runtime.server import Csms, run_csms
from simulator.transport import Connector, MessageTransport, connect_stream


def virtual_wall_clock(start: datetime) -> Callable[[], datetime]:
    """Wall-clock time that follows trio's clock: `start` at the moment this is called."""
    origin = trio.current_time()
    return lambda: start + timedelta(seconds=trio.current_time() - origin)


@dataclass
class HostedCsms:
    """A CSMS running in this trio run, reachable over in-memory streams."""

    csms: Csms
    nursery: trio.Nursery

    def connector(self, station_id: str, version: str = "ocpp1.6") -> Connector:
        """A charger's way to (re)connect: a fresh in-memory stream pair each time, offering
        the charger's OCPP `version`."""

        async def connect(nursery: trio.Nursery) -> MessageTransport:
            client_stream, server_stream = trio.testing.memory_stream_pair()
            self.nursery.start_soon(self.csms.handle_stream, server_stream, f"memory:{station_id}")
            return await connect_stream(client_stream, station_id, subprotocols=(version,))

        return connect

    async def connect(self, station_id: str, subprotocols: list[str]) -> WebSocketConnection:
        client_stream, server_stream = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.csms.handle_stream, server_stream, f"memory:{station_id}")
        return await wrap_client_stream(
            self.nursery,
            client_stream,  # type: ignore[arg-type]  # any trio stream works; the hint is narrow
            "localhost",
            f"/ocpp/{station_id}",
            subprotocols=subprotocols,
        )


@asynccontextmanager
async def hosted_csms(
    settings: Settings, start: datetime, clock: Callable[[], datetime] | None = None
) -> AsyncIterator[HostedCsms]:
    """Run the CSMS on virtual time (commits inline, no TCP port) for the body of the block.

    Its wall clock is `clock`, or one that reads `start` now and follows trio's clock.
    """
    wall_clock = clock or virtual_wall_clock(start)
    async with trio.open_nursery() as nursery:
        csms: Csms = await nursery.start(
            lambda task_status: run_csms(
                settings,
                wall_clock=wall_clock,
                virtual_time=True,
                listen=False,
                task_status=task_status,
            )
        )
        yield HostedCsms(csms, nursery)
        nursery.cancel_scope.cancel()
