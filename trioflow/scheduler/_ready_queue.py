"""The ready queue: tasks that may run now, best first.

Pure and synchronous. Order is ``(priority, arrival)``: a lower priority number runs first,
and equal priorities run in the order they became ready. A task that comes back (a retry)
arrives again, behind its equals already queued.

It is a bucket queue: one FIFO deque per distinct priority, and a small heap of the
priorities that have tasks. Programs use a handful of priorities, so push and pop are O(1)
in the number of queued tasks (a heap of all tasks costs O(log n) and a tuple per entry, which
showed up as per-task cost growing with the size of the run).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class ReadyQueue(Generic[T]):
    """Items by (priority, arrival). Items are never compared with each other."""

    __slots__ = ("_buckets", "_len", "_priorities")

    def __init__(self) -> None:
        self._buckets: dict[int, deque[T]] = {}
        self._priorities: list[int] = []  # a heap of the keys of _buckets
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def push(self, item: T, priority: int) -> None:
        bucket = self._buckets.get(priority)
        if bucket is None:
            bucket = self._new_bucket(priority)
        bucket.append(item)
        self._len += 1

    def push_front(self, item: T, priority: int) -> None:
        """Put ``item`` back ahead of its equals: it was taken from the front and could not
        be used yet, so it keeps its place in the arrival order."""
        bucket = self._buckets.get(priority)
        if bucket is None:
            bucket = self._new_bucket(priority)
        bucket.appendleft(item)
        self._len += 1

    def _new_bucket(self, priority: int) -> deque[T]:
        if not self._len and self._buckets:
            # The queue is empty but pop() kept its last bucket: it goes now, so that every
            # bucket but the only one is non-empty.
            self._buckets.clear()
            self._priorities.clear()
        bucket: deque[T] = deque()
        self._buckets[priority] = bucket
        heapq.heappush(self._priorities, priority)
        return bucket

    def pop(self) -> T:
        """Remove and return the best item; ``IndexError`` when empty."""
        priority = self._priorities[0]
        bucket = self._buckets[priority]
        item = bucket.popleft()  # (IndexError too when the only bucket is kept, empty)
        self._len -= 1
        if not bucket and self._len:
            del self._buckets[priority]
            heapq.heappop(self._priorities)
        # An emptied last bucket stays: a queue that goes empty and back at one priority
        # (a chain: each task readies the next) then makes no deque and no heap change.
        return item

    def peek(self) -> T:
        """The best item, left in place; ``IndexError`` when empty."""
        return self._buckets[self._priorities[0]][0]

    def peek_priority(self) -> int:
        """The best item's priority; ``IndexError`` when empty."""
        if not self._len:
            raise IndexError("peek at an empty queue")
        return self._priorities[0]
