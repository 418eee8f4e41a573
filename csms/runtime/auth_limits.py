"""`FailureLimiter`: failed authentications counted per key (station id, source address).

After `max_failures` within `window` seconds a key is blocked until its oldest failure ages
out: its handshakes are refused without checking anything, so guessing costs the guesser
time and the server no scrypt work. Memory is bounded: past `max_keys` the oldest keys go.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class FailureLimiter:
    def __init__(
        self,
        max_failures: int,
        window: float,
        clock: Callable[[], float],
        *,
        max_keys: int = 100_000,
    ) -> None:
        self._max = max_failures
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, key: str) -> bool:
        recent = self._recent(key)
        return recent is not None and len(recent) >= self._max

    def failed(self, key: str) -> None:
        recent = self._recent(key)
        if recent is None:
            while len(self._failures) >= self._max_keys:
                del self._failures[next(iter(self._failures))]
            recent = self._failures[key] = deque(maxlen=self._max)
        recent.append(self._clock())

    def _recent(self, key: str) -> deque[float] | None:
        recent = self._failures.get(key)
        if recent is None:
            return None
        horizon = self._clock() - self._window
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            del self._failures[key]
            return None
        return recent
