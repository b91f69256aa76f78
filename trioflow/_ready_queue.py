"""The ready queue: tasks that may run now, best first.

Pure and synchronous. Order is ``(priority, arrival)``: a lower priority number runs first,
and equal priorities run in the order they became ready. A task that comes back (a retry)
arrives again, behind its equals already queued.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

T = TypeVar("T")


class ReadyQueue(Generic[T]):
    """A priority heap of items. Items are never compared with each other."""

    __slots__ = ("_arrivals", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, T]] = []
        self._arrivals = 0

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)

    def push(self, item: T, priority: int) -> None:
        self._arrivals += 1
        heapq.heappush(self._heap, (priority, self._arrivals, item))

    def pop(self) -> T:
        """Remove and return the best item; ``IndexError`` when empty."""
        return heapq.heappop(self._heap)[2]

    def peek(self) -> T:
        return self._heap[0][2]
