"""Nodes of a cluster for the tests: in-process (`two_nodes`) or as `csms serve` processes
(`start_node`, `start_workers`) on one fresh PostgreSQL database, with short heartbeats."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx
import trio
from support.postgres import fresh_database
from support.server_process import ServerProcess, csms_env, free_port
from support.settings import make_settings

from csms.api.keys import key_hash, key_label, new_key
from csms.runtime.connection import WallClock, utc_now
from csms.runtime.server import Csms, run_csms
from csms.storage.database import store_target
from csms.storage.sqlite_api import ApiStore

#: Bounds every wait of these tests (they take well under a second when healthy).
WAIT_S = 15.0
#: Short enough that a dead node expires within a test, long enough for a loaded machine.
CLUSTER_ENV = {"CSMS_CLUSTER_HEARTBEAT_S": "0.2", "CSMS_CLUSTER_NODE_TTL_S": "1.5"}


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait (bounded) until `check()` holds."""
    with trio.fail_after(WAIT_S):
        while not await check():
            await trio.sleep(0.02)


@asynccontextmanager
async def two_nodes(
    tmp_path: Path,
    *,
    wall_clocks: tuple[WallClock, WallClock] = (utc_now, utc_now),
    overrides: Mapping[str, object] | None = None,
) -> AsyncIterator[tuple[Csms, Csms]]:
    """Nodes A and B (in-process) sharing a fresh PostgreSQL database; each with its own
    wall clock, both with `overrides` over the default settings."""
    with fresh_database() as url:
        async with trio.open_nursery() as nursery:
            nodes = []
            for name, clock in zip(("a", "b"), wall_clocks, strict=True):
                (tmp_path / name).mkdir()
                values: dict[str, object] = {
                    "database_url": url,
                    "cluster_node_name": name,
                    "cluster_heartbeat_s": 0.2,
                    "cluster_node_ttl_s": 1.0,
                }
                values.update(overrides or {})
                settings = make_settings(tmp_path / name, **values)
                nodes.append(await nursery.start(partial(run_csms, settings, wall_clock=clock)))
            yield nodes[0], nodes[1]
            nursery.cancel_scope.cancel()


async def held_by(holder: Csms, station_id: str) -> bool:
    """True when the cluster's directory says `holder` holds the station."""
    assert holder.cluster is not None
    holders = await trio.to_thread.run_sync(holder.cluster.directory.holders, [station_id])
    return station_id in holders and holders[station_id].node_id == holder.cluster.node_id


def operator_key(database_url: str) -> dict[str, str]:
    """Headers with a new API key of the operate scope, stored in the database."""
    key = new_key()
    store = ApiStore(store_target(database_url))
    try:
        store.create_api_key("ops", "operate", key_hash(key), key_label(key), datetime.now(UTC))
    finally:
        store.close()
    return {"Authorization": f"Bearer {key}"}


def start_node(
    tmp_path: Path, database_url: str, name: str, args: tuple[str, ...] = ()
) -> ServerProcess:
    """`csms serve ARGS` as node `name` of the cluster; returns once it serves its API."""
    (tmp_path / name).mkdir(exist_ok=True)
    env = csms_env(
        tmp_path / name / "unused.db",
        ocpp_port=free_port(),
        api_port=free_port(),
        extra={
            **CLUSTER_ENV,
            "CSMS_DATABASE_URL": database_url,
            "CSMS_CLUSTER_NODE_NAME": name,
        },
    )
    stderr_path = tmp_path / f"{name}.stderr.log"
    stderr = stderr_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "csms", "serve", *args],
        env=env,
        cwd=tmp_path / name,
        stdin=subprocess.DEVNULL,
        stdout=stderr,
        stderr=stderr,
    )
    node = ServerProcess(process, tmp_path / name / "unused.db", env, stderr_path, stderr)
    try:
        node.wait_listening()
        wait_for_api(node)
    except BaseException:
        node.stop(timeout=2)
        raise
    return node


def api_url(node: ServerProcess) -> str:
    return f"http://127.0.0.1:{node.env['CSMS_API_PORT']}"


def wait_for_api(node: ServerProcess) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        if node.process.poll() is not None:
            raise RuntimeError(f"csms serve exited:\n{node.stderr_text()}")
        try:
            if httpx.get(f"{api_url(node)}/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no HTTP API after {WAIT_S} s:\n{node.stderr_text()}")
        time.sleep(0.05)
