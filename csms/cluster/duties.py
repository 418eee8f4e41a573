"""Singleton duties: work that one node of the cluster must do, not every node at once.

`run_exclusively` holds a PostgreSQL session advisory lock on a dedicated connection and runs
the duty only while it holds it. A node that does not get the lock retries every heartbeat, so
another node takes the duty over within about a heartbeat of the holder's death (its session
ends, and the lock with it). If the holder's connection breaks, it stops the duty before
trying again: a broken session may have lost the lock to another node.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import psycopg
import structlog
import trio

from csms.storage.base import StoreError
from csms.storage.postgres import connect

log = structlog.get_logger("csms.cluster")

Duty = Callable[[], Awaitable[None]]


def lock_key(name: str) -> int:
    """The advisory lock key of a named duty (stable across processes and versions)."""
    return 0x6373_6D73_0000_0000 + zlib.crc32(name.encode())


async def run_exclusively(
    url: str,
    name: str,
    duty: Duty,
    *,
    retry_s: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run `duty` whenever this node holds the duty's lock."""
    task_status.started()
    key = lock_key(name)
    while True:
        try:
            conn = await trio.to_thread.run_sync(
                partial(connect, url, application_name=f"csms-duty-{name}")
            )
        except StoreError as exc:
            log.error("cannot connect for a duty's lock", duty=name, error=str(exc))
            await trio.sleep(retry_s)
            continue
        try:
            while not await trio.to_thread.run_sync(_try_lock, conn, key):
                await trio.sleep(retry_s)
            log.info("this node runs a singleton duty", duty=name)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(duty)
                await _watch(conn, retry_s)
                nursery.cancel_scope.cancel()
            log.warning("lost a singleton duty's lock: stopped it", duty=name)
        except psycopg.Error as exc:
            log.error("singleton duty's connection failed", duty=name, error=str(exc))
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(conn.close)


def _try_lock(conn: psycopg.Connection[Any], key: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


async def _watch(conn: psycopg.Connection[Any], every_s: float) -> None:
    """Return when the connection holding the lock is broken."""
    while True:
        await trio.sleep(every_s)
        try:
            await trio.to_thread.run_sync(conn.execute, "SELECT 1")
        except psycopg.Error:
            return
