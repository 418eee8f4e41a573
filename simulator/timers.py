"""`Clockwork` and `Timers`: every timed duty of a fleet (heartbeats, meter samples,
clock-aligned data, physics ticks, reservation expiry, drivers' arrivals, faults) served by
one task.

A charger's memory bounds the fleet one process can run, and a trio task with its cancel
scope costs a few KB; so a charger's timers are entries in a dict (`Timers`), and the fleet's
entries sit in one heap served by one task (`Clockwork.run`). Entries are keyed, so setting a
key again re-times it (a new HeartbeatInterval moves the next heartbeat); an entry that was
re-timed or cancelled is skipped when its old deadline comes. Handlers run in the clockwork's
task and must not block: what has to wait starts a task of its own.

A charger on its own (in a test) gets a private clockwork, run by the charger itself.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import Protocol

import trio

TimerKey = tuple[str, int]


class Alarm(Protocol):
    def ring(self, key: TimerKey, deadline: float) -> None:
        """The entry (`key`, `deadline`) is due; act if it still stands."""
        ...


class Clockwork:
    __slots__ = ("_heap", "_scope", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, TimerKey, int, Alarm]] = []
        self._seq = itertools.count()
        self._scope: trio.CancelScope | None = None

    def call_at(self, deadline: float, alarm: Alarm, key: TimerKey = ("", 0)) -> None:
        heapq.heappush(self._heap, (deadline, key, next(self._seq), alarm))
        if self._scope is not None and deadline < self._scope.deadline:
            self._scope.deadline = deadline

    async def run(self) -> None:
        """Ring every entry when due, in time order (then key order), for ever."""
        heap = self._heap
        while True:
            now = trio.current_time()
            rang = False
            while heap and heap[0][0] <= now:
                deadline, key, _, alarm = heapq.heappop(heap)
                alarm.ring(key, deadline)
                rang = True
            if rang:
                await trio.lowlevel.checkpoint()
                continue
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                self._scope = scope
                try:
                    await trio.sleep_forever()
                finally:
                    self._scope = None


class Timers:
    """One charger's keyed timers on a (shared or private) clockwork."""

    __slots__ = ("_due", "_fire", "clockwork", "owns_clockwork")

    def __init__(self, clockwork: Clockwork | None = None) -> None:
        self._due: dict[TimerKey, float] = {}
        self._fire: Callable[[TimerKey], None] | None = None
        self.owns_clockwork = clockwork is None
        self.clockwork = clockwork if clockwork is not None else Clockwork()

    def bind(self, fire: Callable[[TimerKey], None] | None) -> None:
        """Call `fire(key)` for each timer that comes due; None silences them (stopped)."""
        self._fire = fire

    def at(self, key: TimerKey, deadline: float) -> None:
        """Fire `key` at trio time `deadline` (replacing an earlier setting of it)."""
        self._due[key] = deadline
        self.clockwork.call_at(deadline, self, key)

    def after(self, key: TimerKey, seconds: float) -> None:
        self.at(key, trio.current_time() + seconds)

    def cancel(self, key: TimerKey) -> None:
        self._due.pop(key, None)

    def deadline(self, key: TimerKey) -> float | None:
        return self._due.get(key)

    def ring(self, key: TimerKey, deadline: float) -> None:
        if self._due.get(key) != deadline or self._fire is None:
            return  # re-timed, cancelled, or the charger has stopped
        del self._due[key]
        self._fire(key)
