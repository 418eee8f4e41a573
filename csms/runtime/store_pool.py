"""`StorePool`: a few `ApiStore` connections of the operator side, used on worker threads.

A SQLite connection is used by one thread at a time: a task takes one from the pool, runs
its queries on a worker thread, and gives it back. The ledger keeps its own connection;
these wait for its batches (`BEGIN IMMEDIATE` with a busy timeout) rather than failing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio

from csms.storage.sqlite import sqlite_path
from csms.storage.sqlite_api import ApiStore

T = TypeVar("T")


class StorePool:
    def __init__(self, database_url: str, size: int = 2) -> None:
        self._stores = [ApiStore(sqlite_path(database_url)) for _ in range(size)]
        self._free, self._taken = trio.open_memory_channel[ApiStore](size)
        for store in self._stores:
            self._free.send_nowait(store)

    @property
    def path(self) -> str:
        return self._stores[0].path

    async def run(self, work: Callable[[ApiStore], T]) -> T:
        """Run `work(store)` on a worker thread with a connection of the pool."""
        store = await self._taken.receive()
        try:
            # Not cancellable once started: an abandoned thread would still hold the store.
            return await trio.to_thread.run_sync(work, store)
        finally:
            self._free.send_nowait(store)

    def close(self) -> None:
        for store in self._stores:
            store.close()
