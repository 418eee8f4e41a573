"""The registry of live charger connections, and the way commands reach them.

The newest connection for a charge point id wins: the older one is told to close. Commands
go into the holding actor's bounded mailbox and wait for the charger's answer.

On its own the registry knows this process's connections only. In a cluster (several processes
on one PostgreSQL) a `RemoteStations` is attached: it hears of every connection registered and
unregistered here, and answers for the stations other nodes hold. `online` is the cluster-wide
view: every station some live node holds, with that node's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
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


@dataclass(frozen=True, slots=True)
class OnlineStation:
    """A station some node holds a connection of."""

    ocpp_version: str
    #: The holding node's name (None: this process is the whole CSMS).
    node: str | None = None
    #: Held by this process (its connection is in this registry).
    local: bool = True
    #: When the holding node's claim was recorded (on the cluster's database clock).
    since: datetime | None = None


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


class RemoteStations(Protocol):
    """The stations held by other nodes of a cluster, and how this node's are published."""

    #: This node's name in the cluster.
    name: str

    def claimed(self, connection: Connection) -> None:
        """`connection` is now this node's for its station (publish it; take it over)."""

    def released(self, connection: Connection) -> None:
        """`connection` no longer holds its station here."""

    async def online(self, station_ids: Iterable[str] | None) -> dict[str, OnlineStation]:
        """Each of these stations some live node holds (None: all of them), as published;
        those held here are `local`."""

    async def send_command(
        self, station_id: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Send the command through the node holding the station; as `send_command`."""


class ConnectionRegistry:
    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}
        #: The rest of the cluster (None: this process is the whole CSMS).
        self.remote: RemoteStations | None = None

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
        if self.remote is not None:
            self.remote.claimed(connection)
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
            if self.remote is not None:
                self.remote.released(connection)
            return True
        return False

    async def online(self, station_ids: Iterable[str] | None = None) -> dict[str, OnlineStation]:
        """Each of these stations that is online here or on another node of the cluster
        (None: every online station). This process's own connections are always included
        as they are now, even before their claims are published."""
        wanted = None if station_ids is None else list(station_ids)
        found = await self.remote.online(wanted) if self.remote is not None else {}
        node = self.remote.name if self.remote is not None else None
        for station_id in self._connections if wanted is None else wanted:
            connection = self._connections.get(station_id)
            if connection is None:
                continue
            published = found.get(station_id)
            since = published.since if published is not None and published.local else None
            found[station_id] = OnlineStation(connection.version, node, True, since)
        return found

    async def versions(self, station_ids: Iterable[str] | None = None) -> dict[str, str]:
        """The OCPP version of each of these stations that is online here or on another node
        of the cluster (None: of every online station)."""
        online = await self.online(station_ids)
        return {station_id: station.ocpp_version for station_id, station in online.items()}

    async def version_of(self, station_id: str) -> str | None:
        """The OCPP version of the station if some node holds it, else None."""
        return (await self.versions([station_id])).get(station_id)

    async def send_command(
        self, station_id: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Send a CSMS-initiated CALL to a connected station and return its CALLRESULT payload.

        Raises StationOffline, StationBusy (mailbox full), CommandTimeout, CommandRejected,
        or the payload's OcppError when it breaks the action's schema (then nothing is sent).
        A station another node of the cluster holds is reached through that node.
        """
        if station_id not in self._connections and self.remote is not None:
            return await self.remote.send_command(station_id, action, payload)
        return await self.send_local(station_id, action, payload)

    async def send_local(
        self, station_id: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """`send_command` to a connection of this process only."""
        connection = self._connections.get(station_id)
        if connection is None:
            raise StationOffline(f"station {station_id} is not connected")
        command = Command(action, payload)
        connection.submit(command)
        return await command.slot.wait()
