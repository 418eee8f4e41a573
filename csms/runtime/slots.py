"""`ReplySlot`: a one-shot place where one task leaves an answer another task waits for."""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class ReplySlot(Generic[T]):
    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = trio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    @property
    def filled(self) -> bool:
        return self._done.is_set()

    def set(self, value: T) -> None:
        if not self._done.is_set():
            self._value = value
            self._done.set()

    def fail(self, error: BaseException) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait_filled(self) -> None:
        """Wait until the slot is filled, whether with a value or an error."""
        await self._done.wait()

    async def wait(self) -> T:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
