"""Singleton duties: one holder of the advisory lock at a time, and a takeover when it stops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
from support.postgres import fresh_database

from csms.cluster.duties import run_exclusively

WAIT_S = 10.0


async def test_one_node_runs_a_duty_and_another_takes_it_over() -> None:
    running: list[str] = []

    def duty(name: str) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            running.append(name)
            try:
                await trio.sleep_forever()
            finally:
                running.remove(name)

        return work

    with fresh_database() as url:
        async with trio.open_nursery() as nursery:
            scopes = {}
            for name in ("a", "b"):
                scope = trio.CancelScope()
                scopes[name] = scope

                async def node(name: str = name, scope: trio.CancelScope = scope) -> None:
                    with scope:
                        await run_exclusively(url, "sweep", duty(name), retry_s=0.05)

                nursery.start_soon(node)
            with trio.fail_after(WAIT_S):
                while not running:
                    await trio.sleep(0.02)
            await trio.sleep(0.3)  # several retries of the other node
            assert len(running) == 1
            first = running[0]

            scopes[first].cancel()

            with trio.fail_after(WAIT_S):
                while running in ([], [first]):
                    await trio.sleep(0.02)
            assert running == ["b" if first == "a" else "a"]
            nursery.cancel_scope.cancel()
