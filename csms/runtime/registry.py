"""The registry of live charger connections, and the way commands reach them.

The newest connection for a charge point id wins: the older one is told to close. Commands
go into the holding actor's bounded mailbox and wait for the charger's answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from csms.protocol.errors import OcppError
from csms.runtime.slots import ReplySlot

log = structlog.get_logger("csms.registry")


class StationOffline(Exception):
    """No live connection holds this station."""


class StationBusy(Exception):
    """The station's mailbox is full: too many commands are waiting for it."""


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


class Connection(Protocol):
    """What the registry needs of a connection actor."""

    station_id: str
    remote: str
    last_heard: float
    last_alive: float
    pinging: bool

    @property
    def version(self) -> str: ...

    def submit(self, command: Command) -> None: ...

    def close(self, reason: str) -> None: ...

    async def ping(self, timeout: float) -> None: ...


class ConnectionRegistry:
    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def __contains__(self, station_id: str) -> bool:
        return station_id in self._connections

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._connections.values()))

    def get(self, station_id: str) -> Connection | None:
        return self._connections.get(station_id)

    def station_ids(self) -> list[str]:
        return sorted(self._connections)

    def register(self, connection: Connection) -> Connection | None:
        """Make `connection` the station's; close and return the one it replaces."""
        previous = self._connections.get(connection.station_id)
        self._connections[connection.station_id] = connection
        if previous is not None:
            previous.close("replaced")
            log.warning(
                "connection replaced by a newer one",
                station_id=connection.station_id,
                old_remote=previous.remote,
                new_remote=connection.remote,
            )
        return previous

    def unregister(self, connection: Connection) -> bool:
        """Forget `connection` if it is still the station's; True if it was."""
        if self._connections.get(connection.station_id) is connection:
            del self._connections[connection.station_id]
            return True
        return False

    async def send_command(
        self, station_id: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Send a CSMS-initiated CALL to a connected station and return its CALLRESULT payload.

        Raises StationOffline, StationBusy (mailbox full), CommandTimeout, CommandRejected,
        or the payload's OcppError when it breaks the action's schema (then nothing is sent).
        """
        connection = self._connections.get(station_id)
        if connection is None:
            raise StationOffline(f"station {station_id} is not connected")
        command = Command(action, payload)
        connection.submit(command)
        return await command.slot.wait()
