"""Messages between nodes over PostgreSQL LISTEN/NOTIFY.

Each node listens on a channel of its own (`channel_of(node_id)`) on a dedicated connection,
waited on in a worker thread (`Connection.notifies` with a timeout, so the wait ends in
bounded time when the node stops). A message is a JSON object; one too big for a NOTIFY
payload (PostgreSQL's limit is 8000 bytes) is stored in `cluster_messages` and the
notification carries only its row id: the receiver takes the row (and deletes it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import psycopg
import structlog
import trio
from psycopg import sql
from psycopg_pool import ConnectionPool

from csms.storage.base import StoreError
from csms.storage.postgres import connect

log = structlog.get_logger("csms.cluster")

#: Payloads up to this many bytes go in the notification itself (PostgreSQL allows < 8000).
NOTIFY_LIMIT = 7900
#: How long one wait for notifications may block its worker thread (bounds stopping time).
WAIT_S = 0.5

Message = dict[str, Any]


def channel_of(node_id: str) -> str:
    return f"csms_node_{node_id}"


class Router:
    """Sends messages to other nodes and hands this node's incoming ones to `handle`."""

    def __init__(
        self,
        url: str,
        pool: ConnectionPool,
        node_id: str,
        handle: Callable[[Message], Awaitable[None]],
    ) -> None:
        self._url = url
        self._pool = pool
        self.node_id = node_id
        self._handle = handle

    async def send(self, node_id: str, message: Message) -> None:
        """Notify `node_id` of `message` (delivered if that node is listening)."""
        body = orjson.dumps(message).decode()
        await trio.to_thread.run_sync(self._send_sync, channel_of(node_id), body)

    def _send_sync(self, channel: str, body: str) -> None:
        with self._pool.connection() as conn:
            if len(body.encode()) > NOTIFY_LIMIT:
                row = conn.execute(
                    "INSERT INTO cluster_messages (body) VALUES (%s) RETURNING id", (body,)
                ).fetchone()
                assert row is not None
                body = orjson.dumps({"ref": int(row[0])}).decode()
            conn.execute("SELECT pg_notify(%s, %s)", (channel, body))

    def _take_sync(self, message_id: int) -> str | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "DELETE FROM cluster_messages WHERE id = %s RETURNING body", (message_id,)
            ).fetchone()
        return str(row[0]) if row is not None else None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; each message is handled in a task of its own. A broken
        connection is replaced (messages sent meanwhile are lost: their senders time out)."""
        conn = await trio.to_thread.run_sync(self._listen)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    try:
                        notes = await trio.to_thread.run_sync(_wait, conn)
                    except psycopg.Error as exc:
                        log.error("lost the cluster's LISTEN connection", error=str(exc))
                        await trio.to_thread.run_sync(conn.close)
                        conn = await self._listen_again()
                        continue
                    for note in notes:
                        nursery.start_soon(self._receive, note.payload)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(conn.close)

    def _listen(self) -> psycopg.Connection[Any]:
        conn = connect(self._url, application_name="csms-cluster-listen")
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel_of(self.node_id))))
        except BaseException:
            conn.close()
            raise
        return conn

    async def _listen_again(self) -> psycopg.Connection[Any]:
        while True:
            try:
                return await trio.to_thread.run_sync(self._listen)
            except (StoreError, psycopg.Error) as exc:
                log.error("cannot listen again; retrying", error=str(exc))
                await trio.sleep(WAIT_S)

    async def _receive(self, payload: str) -> None:
        try:
            message = orjson.loads(payload)
            if "ref" in message:
                body = await trio.to_thread.run_sync(self._take_sync, int(message["ref"]))
                if body is None:
                    log.warning("cluster message body gone", ref=message["ref"])
                    return
                message = orjson.loads(body)
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            log.error("malformed cluster message", error=repr(exc), payload=payload[:200])
            return
        await self._handle(message)


def _wait(conn: psycopg.Connection[Any]) -> list[psycopg.Notify]:
    return list(conn.notifies(timeout=WAIT_S, stop_after=1))
