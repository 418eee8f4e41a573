"""The registry of live charger connections, and the way commands reach them.

The newest connection for a charge point id wins: the older one is told to close. Commands
go into the holding actor's bounded mailbox and wait for the charger's answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from csms.protocol.errors import OcppError
from csms.runtime.slots import ReplySlot

log = structlog.get_logger("csms.registry")


class StationOffline(Exception):
    """No live connection holds this station."""


class CommandTimeout(Exception):
    """The charger did not answer in time."""


class CommandRejected(Exception):
    """The charger answered with a CALLERROR; `error` is it."""

    def __init__(self, error: OcppError) -> None:
        super().__init__(f"{error.code}: {error.description}")
        self.error = error


@dataclass(slots=True)
class Command:
    action: str
    payload: dict[str, Any]
    slot: ReplySlot[dict[str, Any]] = field(default_factory=ReplySlot)


@dataclass(eq=False)
class ConnectionHandle:
    """What the registry knows of one live connection."""

    station_id: str
    version: str
    mailbox: trio.MemorySendChannel[Command]
    cancel_scope: trio.CancelScope
    connected_at: float
    remote: str = ""
    replaced: bool = False


class ConnectionRegistry:
    def __init__(self) -> None:
        self._connections: dict[str, ConnectionHandle] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def __contains__(self, station_id: str) -> bool:
        return station_id in self._connections

    def get(self, station_id: str) -> ConnectionHandle | None:
        return self._connections.get(station_id)

    def station_ids(self) -> list[str]:
        return sorted(self._connections)

    def register(self, handle: ConnectionHandle) -> ConnectionHandle | None:
        """Make `handle` the station's connection; close and return the one it replaces."""
        previous = self._connections.get(handle.station_id)
        self._connections[handle.station_id] = handle
        if previous is not None:
            previous.replaced = True
            previous.cancel_scope.cancel()
            log.warning(
                "connection replaced by a newer one",
                station_id=handle.station_id,
                old_remote=previous.remote,
                new_remote=handle.remote,
            )
        return previous

    def unregister(self, handle: ConnectionHandle) -> bool:
        """Forget `handle` if it is still the station's connection; True if it was."""
        if self._connections.get(handle.station_id) is handle:
            del self._connections[handle.station_id]
            return True
        return False

    async def send_command(
        self, station_id: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Send a CSMS-initiated CALL to a connected station and return its CALLRESULT payload.

        Raises StationOffline, CommandTimeout, CommandRejected, or the payload's OcppError
        when it breaks the action's schema (then nothing is sent).
        """
        handle = self._connections.get(station_id)
        if handle is None:
            raise StationOffline(f"station {station_id} is not connected")
        command = Command(action, payload)
        try:
            await handle.mailbox.send(command)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise StationOffline(f"station {station_id} disconnected") from None
        return await command.slot.wait()
