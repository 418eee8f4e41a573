"""`ClusterNode`: this process as a node of the cluster, attached to its connection registry.

It publishes the stations it holds (in order, by one writer task), heartbeats and expires
dead nodes, takes over a station that connected here while another node held it (that node
is told to close its stale socket), and carries commands: to the node that holds a station,
and from other nodes to the stations held here.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
import trio
from psycopg_pool import ConnectionPool

from csms.cluster.nodes import Claim, NodeDirectory
from csms.cluster.routing import Message, Router
from csms.cluster.schema import migrate
from csms.config import Settings
from csms.protocol.errors import InternalError, OcppError, error_from_code
from csms.runtime.registry import (
    CommandRejected,
    CommandTimeout,
    Connection,
    ConnectionRegistry,
    OnlineStation,
    StationBusy,
    StationOffline,
)
from csms.runtime.slots import ReplySlot
from csms.storage.postgres import configure, connect_kwargs

log = structlog.get_logger("csms.cluster")

#: How much longer than the charger's own call timeout a caller waits for a routed reply
#: (the holder answers "timeout" itself; this covers a holder that died meanwhile).
REPLY_MARGIN_S = 5.0


@dataclass(frozen=True)
class _Presence:
    """A change of this node's stations, for the writer task."""

    connection: Connection
    held: bool


@dataclass(frozen=True)
class _Stamped:
    """A connection held here whose claim the database has ordered."""

    connection: Connection
    stamp: int


def node_name(settings: Settings) -> str:
    return f"{settings.cluster_node_name or socket.gethostname()}:{os.getpid()}"


class ClusterNode:
    def __init__(self, settings: Settings, registry: ConnectionRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.node_id = uuid.uuid4().hex
        self.name = node_name(settings)
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=4,
            kwargs=connect_kwargs("csms-cluster"),
            configure=configure,
            check=ConnectionPool.check_connection,
            open=False,
            name=f"cluster-{self.node_id[:8]}",
        )
        self.directory = NodeDirectory(
            self.pool, self.node_id, self.name, settings.cluster_node_ttl_s
        )
        self.router = Router(settings.database_url, self.pool, self.node_id, self._on_message)
        # Unbounded: registering a connection must not block, and each entry is small.
        self._changes, self._change_inbox = trio.open_memory_channel[_Presence](math.inf)
        #: The claim of each station's connection here, once the writer has published it.
        self._stamps: dict[str, _Stamped] = {}
        self._pending: dict[str, ReplySlot[Message]] = {}
        self._nursery: trio.Nursery | None = None

    # -- lifetime ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[ClusterNode]) -> None:
        """Join the cluster, serve until cancelled, then leave it (its stations with it)."""
        await trio.to_thread.run_sync(self._open)
        try:
            await trio.to_thread.run_sync(self.directory.heartbeat)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.router.run)
                nursery.start_soon(self._write_presence)
                nursery.start_soon(self._heartbeat_forever)
                self.registry.remote = self
                for connection in self.registry:
                    self.claimed(connection)
                log.info("joined the cluster", node_id=self.node_id, name=self.name)
                task_status.started(self)
        finally:
            self.registry.remote = None
            with trio.CancelScope(shield=True):
                try:
                    await trio.to_thread.run_sync(self.directory.leave)
                except psycopg.Error as exc:
                    log.warning("could not leave the cluster", error=str(exc))
                await trio.to_thread.run_sync(self.pool.close)

    def _open(self) -> None:
        self.pool.open(wait=True, timeout=10.0)
        with self.pool.connection() as conn:
            migrate(conn)

    async def _heartbeat_forever(self) -> None:
        while True:
            await trio.sleep(self.settings.cluster_heartbeat_s)
            await self.beat()

    async def beat(self) -> None:
        """One heartbeat: record that this node lives, expire dead ones, and publish this
        node's stations again if it had been expired (its claims keep their order: one
        overtaken meanwhile closes its own connection)."""
        try:
            rejoined = await trio.to_thread.run_sync(self.directory.heartbeat)
            dead = await trio.to_thread.run_sync(self.directory.expire_dead)
        except psycopg.Error as exc:
            log.error("cluster heartbeat failed", error=str(exc))
            return
        if dead:
            log.warning("expired dead nodes", nodes=dead)
        if rejoined:
            log.warning("this node had expired: publishing its stations again")
            for connection in self.registry:
                self.claimed(connection)

    # -- presence ---------------------------------------------------------------------------

    def claimed(self, connection: Connection) -> None:
        self._changes.send_nowait(_Presence(connection, held=True))

    def released(self, connection: Connection) -> None:
        self._changes.send_nowait(_Presence(connection, held=False))

    async def _write_presence(self) -> None:
        async for change in self._change_inbox:
            connection = change.connection
            station_id = connection.station_id
            known = self._stamps.get(station_id)
            # This connection's own earlier claim, if it has one (published again after a
            # rejoin): it keeps its place in the order, so it cannot overtake a newer one.
            stamp = known.stamp if known is not None and known.connection is connection else None
            try:
                if change.held:
                    claim = await trio.to_thread.run_sync(
                        self.directory.claim, station_id, connection.version, stamp
                    )
                    await self._after_claim(connection, claim)
                elif stamp is not None:
                    del self._stamps[station_id]
                    await trio.to_thread.run_sync(self.directory.release, station_id, stamp)
            except psycopg.Error as exc:
                log.error("cannot publish a station", station_id=station_id, error=str(exc))

    async def _after_claim(self, connection: Connection, claim: Claim) -> None:
        station_id = connection.station_id
        if not claim.applied:
            log.warning("a newer connection holds the station on another node", station=station_id)
            connection.close("replaced")
            return
        self._stamps[station_id] = _Stamped(connection, claim.stamp)
        if claim.previous_node is not None:
            log.info("took the station over", station_id=station_id, old=claim.previous_node)
            await self.router.send(
                claim.previous_node, {"t": "close", "station": station_id, "claim": claim.stamp}
            )

    # -- the rest of the cluster ------------------------------------------------------------

    async def online(self, station_ids: Iterable[str] | None) -> dict[str, OnlineStation]:
        wanted = None if station_ids is None else list(station_ids)
        holders = await trio.to_thread.run_sync(self.directory.holders, wanted)
        return {
            station: OnlineStation(
                holder.ocpp_version,
                holder.node_name,
                local=holder.node_id == self.node_id,
                since=holder.claimed_at,
            )
            for station, holder in holders.items()
        }

    async def send_command(
        self, station_id: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        holder = await trio.to_thread.run_sync(self.directory.holder, station_id)
        if holder is None or holder.node_id == self.node_id:
            raise StationOffline(f"station {station_id} is not connected")
        request_id = uuid.uuid4().hex
        slot: ReplySlot[Message] = ReplySlot()
        self._pending[request_id] = slot
        try:
            await self.router.send(
                holder.node_id,
                {
                    "t": "command",
                    "id": request_id,
                    "from": self.node_id,
                    "station": station_id,
                    "action": action,
                    "payload": payload,
                },
            )
            with trio.move_on_after(self.settings.call_timeout + REPLY_MARGIN_S):
                return _outcome(await slot.wait())
            raise CommandTimeout(f"{action}: no answer from node {holder.node_id}")
        finally:
            del self._pending[request_id]

    async def _on_message(self, message: Message) -> None:
        kind = message.get("t")
        if kind == "command":
            await self._serve_command(message)
        elif kind == "reply":
            slot = self._pending.get(str(message.get("id")))
            if slot is not None:
                slot.set(message)
        elif kind == "close":
            try:
                station_id, newer_claim = str(message["station"]), int(message["claim"])
            except (KeyError, TypeError, ValueError):
                log.warning("malformed close message", message=str(message)[:200])
                return
            self._close_stale(station_id, newer_claim)
        else:
            log.warning("unknown cluster message", kind=kind)

    def _close_stale(self, station_id: str, newer_claim: int) -> None:
        connection = self.registry.get(station_id)
        known = self._stamps.get(station_id)
        # A connection whose claim is still unpublished is newer than `newer_claim`: once
        # published it takes the station back (and tells the other node).
        if (
            connection is not None
            and known is not None
            and known.connection is connection
            and known.stamp < newer_claim
        ):
            log.info("station taken over by another node: closing", station_id=station_id)
            connection.close("replaced")

    async def _serve_command(self, message: Message) -> None:
        reply: Message = {"t": "reply", "id": message["id"]}
        try:
            reply["result"] = await self.registry.send_local(
                str(message["station"]), str(message["action"]), dict(message["payload"])
            )
        except StationOffline as exc:
            reply["error"] = {"kind": "offline", "message": str(exc)}
        except StationBusy as exc:
            reply["error"] = {"kind": "busy", "message": str(exc)}
        except CommandTimeout as exc:
            reply["error"] = {"kind": "timeout", "message": str(exc)}
        except CommandRejected as exc:
            reply["error"] = _error_fields("rejected", exc.error)
        except OcppError as exc:
            reply["error"] = _error_fields("invalid", exc)
        except Exception as exc:
            log.error("routed command failed", error=repr(exc))
            reply["error"] = _error_fields("rejected", InternalError("the command failed"))
        try:
            await self.router.send(str(message["from"]), reply)
        except psycopg.Error as exc:
            log.error("cannot reply to a routed command", error=str(exc))


def _error_fields(kind: str, error: OcppError) -> Message:
    return {
        "kind": kind,
        "code": error.code,
        "description": error.description,
        "details": error.details,
    }


def _outcome(reply: Message) -> dict[str, Any]:
    """The result of a routed command's reply, or its error raised as locally."""
    error = reply.get("error")
    if error is None:
        result: dict[str, Any] = reply["result"]
        return result
    kind = error["kind"]
    if kind == "offline":
        raise StationOffline(error["message"])
    if kind == "busy":
        raise StationBusy(error["message"])
    if kind == "timeout":
        raise CommandTimeout(error["message"])
    ocpp = error_from_code(error["code"], error["description"], error["details"] or {})
    if kind == "rejected":
        raise CommandRejected(ocpp)
    raise ocpp
