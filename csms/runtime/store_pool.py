"""`StorePool`: a few `ApiStore` connections of the operator side, used on worker threads.

A connection is used by one thread at a time: a task takes one from the pool, runs its
queries on a worker thread, and gives it back. The ledger keeps its own connection.

On SQLite the pool is a few stores of its own, which wait for the ledger's batches
(`BEGIN IMMEDIATE` with a busy timeout) rather than failing. On PostgreSQL it is a
psycopg_pool of connections, each lent to an `ApiStore` for one piece of work; the pool
replaces a connection the server dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from csms.storage.database import store_target
from csms.storage.dialect import DbConnection, is_postgres_url
from csms.storage.schema import migrate
from csms.storage.sqlite_api import ApiStore

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

T = TypeVar("T")


class StorePool:
    def __init__(self, database_url: str, size: int = 2) -> None:
        self._target = store_target(database_url)
        self._limiter = trio.CapacityLimiter(size)
        self._stores: list[ApiStore] = []
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        if is_postgres_url(database_url):
            from csms.storage.postgres import open_pool

            self._pool = open_pool(
                self._target, min_size=1, max_size=size, application_name="csms-api"
            )
            self._lend(migrate)
            return
        self._stores = [ApiStore(self._target) for _ in range(size)]
        self._free, self._taken = trio.open_memory_channel[ApiStore](size)
        for store in self._stores:
            self._free.send_nowait(store)

    @property
    def path(self) -> str:
        """The database: a SQLite file, or the PostgreSQL URL."""
        return self._target

    async def run(self, work: Callable[[ApiStore], T]) -> T:
        """Run `work(store)` on a worker thread with a connection of the pool."""
        if self._pool is not None:
            # Not cancellable once started: an abandoned thread would still hold a connection.
            return await trio.to_thread.run_sync(
                partial(self._lend, lambda db: work(ApiStore.on_connection(db, self._target))),
                limiter=self._limiter,
            )
        store = await self._taken.receive()
        try:
            return await trio.to_thread.run_sync(work, store)
        finally:
            self._free.send_nowait(store)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        for store in self._stores:
            store.close()

    def _lend(self, work: Callable[[DbConnection], T]) -> T:
        """Run `work` (on this thread) with a connection of the PostgreSQL pool."""
        from csms.storage.postgres import PostgresConnection

        assert self._pool is not None
        with self._pool.connection() as connection:
            return work(PostgresConnection(connection))
