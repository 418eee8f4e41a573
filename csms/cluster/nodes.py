"""The node directory: this node's row and heartbeat, which node holds which station, and the
expiry of dead nodes.

A node is one `csms serve` process. It heartbeats `cluster_nodes.heartbeat_at`; a node whose
heartbeat is older than the TTL is dead: its stations no longer count as held, and the next
live node's heartbeat deletes it (its stations go with it, by cascade). Every method is
blocking (psycopg) and runs on a worker thread. Ages are measured on the database's clock and
claims are ordered by a database sequence, so the nodes' clocks need not agree.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import ConnectionPool

#: Message bodies nobody fetched within this time are dropped (their requester gave up).
MESSAGE_RETENTION_S = 600.0


#: The advisory lock class under which claims of one station are serialized (with the station
#: id's hash as the second key: a key space apart from the duties' single 64-bit keys).
CLAIM_LOCK_CLASS = 0x6373_6D73


@dataclass(frozen=True)
class Holder:
    """The live node that holds a station, and the station's OCPP version."""

    node_id: str
    ocpp_version: str
    #: The node's name (host:pid), for operators.
    node_name: str = ""
    #: When the database recorded the claim (its clock, not the node's).
    claimed_at: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """What claiming a station came to."""

    #: False: a newer connection on another node holds it already; this one is stale.
    applied: bool
    #: The node that held it before, if another one.
    previous_node: str | None
    #: The claim's place in the database's order of claims (greater: newer).
    stamp: int


class NodeDirectory:
    def __init__(self, pool: ConnectionPool, node_id: str, name: str, ttl_s: float) -> None:
        self.pool = pool
        self.node_id = node_id
        self.name = name
        self.ttl_s = ttl_s

    def heartbeat(self) -> bool:
        """Record that this node is alive; True if its row was missing (a first heartbeat,
        or after other nodes expired it: then its stations must be claimed again)."""
        with self.pool.connection() as conn:
            row = conn.execute(
                """
                INSERT INTO cluster_nodes (node_id, name, pid) VALUES (%s, %s, %s)
                ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now()
                RETURNING xmax = 0
                """,
                (self.node_id, self.name, os.getpid()),
            ).fetchone()
        return bool(row and row[0])

    def expire_dead(self) -> list[str]:
        """Delete the nodes whose heartbeat is older than the TTL, with their stations."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                """
                DELETE FROM cluster_nodes
                WHERE heartbeat_at < now() - make_interval(secs => %s) RETURNING node_id
                """,
                (self.ttl_s,),
            ).fetchall()
            conn.execute(
                "DELETE FROM cluster_messages WHERE created_at < now() - make_interval(secs => %s)",
                (MESSAGE_RETENTION_S,),
            )
        return [str(row[0]) for row in rows]

    def leave(self) -> None:
        """Delete this node and its stations (a clean stop)."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM cluster_nodes WHERE node_id = %s", (self.node_id,))

    def claim(self, station_id: str, ocpp_version: str, stamp: int | None) -> Claim:
        """Make this node the station's holder, unless a newer claim holds it.

        A connection's first claim (`stamp` None) takes the next number of the database's
        sequence, so it is newer than every claim before it whatever the nodes' clocks say;
        publishing the same connection again passes the stamp it got then.
        """
        with self.pool.connection() as conn, conn.transaction():
            # Serializes claims of the station: the stamp is then drawn after the previous
            # holder is known, and a row inserted meanwhile by another node cannot be missed.
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (CLAIM_LOCK_CLASS, station_id)
            )
            before = conn.execute(
                "SELECT node_id FROM cluster_stations WHERE station_id = %s", (station_id,)
            ).fetchone()
            if stamp is None:
                drawn = conn.execute("SELECT nextval('cluster_claims')").fetchone()
                assert drawn is not None
                stamp = int(drawn[0])
            row = conn.execute(
                """
                INSERT INTO cluster_stations (station_id, node_id, ocpp_version, claim)
                VALUES (%s, %s, %s, %s)
                ON CONFLICT (station_id) DO UPDATE
                SET node_id = EXCLUDED.node_id, ocpp_version = EXCLUDED.ocpp_version,
                    claim = EXCLUDED.claim,
                    claimed_at = CASE WHEN cluster_stations.claim = EXCLUDED.claim
                        THEN cluster_stations.claimed_at ELSE clock_timestamp() END
                WHERE cluster_stations.claim <= EXCLUDED.claim
                    OR cluster_stations.node_id NOT IN (
                        SELECT node_id FROM cluster_nodes
                        WHERE heartbeat_at >= now() - make_interval(secs => %s))
                RETURNING node_id
                """,
                (station_id, self.node_id, ocpp_version, stamp, self.ttl_s),
            ).fetchone()
        previous = str(before[0]) if before is not None else None
        return Claim(row is not None, previous if previous != self.node_id else None, stamp)

    def release(self, station_id: str, stamp: int) -> None:
        """Forget this node's claim on the station (only that claim: not a newer one)."""
        with self.pool.connection() as conn:
            conn.execute(
                "DELETE FROM cluster_stations"
                " WHERE station_id = %s AND node_id = %s AND claim = %s",
                (station_id, self.node_id, stamp),
            )

    def holder(self, station_id: str) -> Holder | None:
        """The live node holding the station, if any."""
        found = self.holders([station_id])
        return found.get(station_id)

    def holders(self, station_ids: Iterable[str] | None = None) -> dict[str, Holder]:
        """The live holders of these stations (None: of every held station)."""
        query = """
            SELECT s.station_id, s.node_id, s.ocpp_version, n.name, s.claimed_at
            FROM cluster_stations s JOIN cluster_nodes n USING (node_id)
            WHERE n.heartbeat_at >= now() - make_interval(secs => %s)
        """
        params: tuple[object, ...] = (self.ttl_s,)
        if station_ids is not None:
            query += " AND s.station_id = ANY(%s)"
            params = (self.ttl_s, list(station_ids))
        with self.pool.connection() as conn:
            rows = conn.execute(query, params).fetchall()
        return {str(r[0]): Holder(str(r[1]), str(r[2]), str(r[3]), r[4]) for r in rows}
