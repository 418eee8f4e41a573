"""`Timers`: all of a charger's timed duties in one task (heartbeat, meter samples,
clock-aligned data, physics ticks, reservation expiry, ...).

A charger's memory bounds the fleet one process can run, so its timers are entries in a
dict served by one task rather than a task each. Entries are keyed, so setting a key again
re-times it (a new HeartbeatInterval moves the next heartbeat); the handler runs in the
timer task and must not block.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import trio

TimerKey = tuple[str, int]


class Timers:
    __slots__ = ("_due", "_scope")

    def __init__(self) -> None:
        self._due: dict[TimerKey, float] = {}
        self._scope: trio.CancelScope | None = None

    def at(self, key: TimerKey, deadline: float) -> None:
        """Fire `key` at trio time `deadline` (replacing an earlier setting of it)."""
        self._due[key] = deadline
        if self._scope is not None and deadline < self._scope.deadline:
            self._scope.deadline = deadline

    def after(self, key: TimerKey, seconds: float) -> None:
        self.at(key, trio.current_time() + seconds)

    def cancel(self, key: TimerKey) -> None:
        self._due.pop(key, None)

    def deadline(self, key: TimerKey) -> float | None:
        return self._due.get(key)

    async def run(self, fire: Callable[[TimerKey], None]) -> None:
        """Serve the timers for ever: call `fire(key)` when each is due, in time order."""
        while True:
            now = trio.current_time()
            due = sorted((t, key) for key, t in self._due.items() if t <= now)
            for t, key in due:
                if self._due.get(key) == t:
                    del self._due[key]
                    fire(key)
            if due:
                await trio.lowlevel.checkpoint()
                continue
            with trio.CancelScope(deadline=min(self._due.values(), default=math.inf)) as scope:
                self._scope = scope
                try:
                    await trio.sleep_forever()
                finally:
                    self._scope = None
