"""`MessageRateLimit`: how fast one charger may send, as two token buckets on trio's clock.

The rule, per connection (`[ocpp] max_messages_per_second` = r, `[ocpp] message_burst` = b):

- Every message the charger sends takes a token from its allowance: b tokens, refilled at
  r per second. A charger that waits for each answer, as OCPP-J asks, at any sane rate
  never runs out.
- A message that finds the allowance empty is over the rate. If it is a CALL, it is answered
  with a CALLERROR `GenericError` ("message rate limit exceeded") without being validated or
  processed; a CALLRESULT or CALLERROR is still taken in (it answers a CALL of ours, and at
  most one of ours is outstanding); anything else is dropped unanswered.
- Each message over the rate also takes a token from the tolerance (b tokens, refilled at r
  per second). A charger that has emptied that too has sent b more messages over the rate than
  the rate forgives: that is sustained abuse, and the connection is closed with 1008 (Policy
  Violation). Sending at up to twice the rate is therefore answered but never closed.

The limit belongs to the station, not to one connection: `RateLimits` keeps it across
reconnects, so a flooder cannot refill its allowance by reconnecting (its buckets refill with
time alone).

`GenericError` is the code both 1.6 and 2.x have for an error no other code names; the
others say something about the message itself, which was not even looked at.
"""

from __future__ import annotations

import enum


class TokenBucket:
    """`burst` tokens, refilled continuously at `rate` per second of the clock given in."""

    __slots__ = ("_burst", "_rate", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        elapsed = max(now - self._updated, 0.0)
        self._updated = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Verdict(enum.Enum):
    ADMIT = "admit"
    #: Over the rate: refuse the message (see the module's rule).
    REFUSE = "refuse"
    #: Over the rate for too long: close the connection with 1008.
    CLOSE = "close"


class MessageRateLimit:
    """One connection's limit; `admit` is asked once per inbound message."""

    __slots__ = ("_allowance", "_tolerance", "refused")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._allowance = TokenBucket(rate, burst, now)
        self._tolerance = TokenBucket(rate, burst, now)
        #: Messages refused for the rate so far.
        self.refused = 0

    def admit(self, now: float) -> Verdict:
        if self._allowance.take(now):
            return Verdict.ADMIT
        self.refused += 1
        return Verdict.REFUSE if self._tolerance.take(now) else Verdict.CLOSE


class RateLimits:
    """Each station's `MessageRateLimit`, kept across its reconnects.

    At most `capacity` stations are remembered; beyond that the least recently connected is
    forgotten (its next connection starts with full buckets, as after a long pause anyway).
    """

    def __init__(self, rate: float, burst: int, capacity: int) -> None:
        self._rate = rate
        self._burst = burst
        self._capacity = capacity
        # Insertion order is recency: a station taken is moved to the end.
        self._limits: dict[str, MessageRateLimit] = {}

    def __len__(self) -> int:
        return len(self._limits)

    def for_station(self, station_id: str, now: float) -> MessageRateLimit:
        """The station's limit, as its last connection left it (a new one if none)."""
        limit = self._limits.pop(station_id, None)
        if limit is None:
            limit = MessageRateLimit(self._rate, self._burst, now)
            if len(self._limits) >= self._capacity:
                del self._limits[next(iter(self._limits))]
        self._limits[station_id] = limit
        return limit
