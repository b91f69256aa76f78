"""Pools: named limits on how many attempts of a kind run at once and how often they start.

Pure and synchronous. A :class:`Pool` is the user's setting (``Pool(max_concurrent=4,
max_per_second=10.0)``); the decider keeps one :class:`PoolState` per pool in use, which
says whether an attempt may start *now* and remembers the ready work that had to be held
back because the pool was full.

The rate limit spaces starts evenly, ``1 / max_per_second`` apart, the first one at once;
an idle pool earns no burst (the next start is due one interval after the last *start*, not
after the last check), as ``aiometer``'s ``max_per_second`` behaves. Every attempt counts as
a start, retries included. A task that waits inside its attempt (``await other.wait()``)
gives its place back and takes one again before it goes on; that is not a start.

Work held back by its pool waits in the pool's own ready queue, by priority and arrival, so
it holds no worker slot and holds back nothing outside the pool. When a place frees up (or
the next start falls due) the best held item goes back to the *front* of the scheduler's
ready queue, which is where it was when it was held: arrival order is kept. A task that
waited and wants its place back is held in a queue of its own (``resumes``): it needs a
place but no start, so it must not wait for the rate behind the tasks that do.
"""

from __future__ import annotations

import math
from typing import Generic, TypeVar

import attrs

from .._validate import check_int, check_number
from ._ready_queue import ReadyQueue

__all__ = ["Pool", "PoolState"]

T = TypeVar("T")


def _positive_int_or_none(
    _instance: object, attribute: attrs.Attribute[int], value: object
) -> None:
    if value is not None:
        check_int(attribute.name, value, minimum=1)


def _positive_number_or_none(
    _instance: object, attribute: attrs.Attribute[float], value: object
) -> None:
    if value is not None:
        check_number(attribute.name, value, positive=True)


@attrs.frozen(eq=False)
class Pool:
    """Limits shared by the tasks submitted with ``pool=`` this pool (or its name).

    Attributes:
        max_concurrent: at most this many of its attempts run at once (``None``: no limit).
        max_per_second: its attempts start at most this often, evenly spaced (``None``: no
            limit).

    Compared by identity: two pools with the same limits are two pools.

    Raises:
        ValueError: a limit ``<= 0``. TypeError: a limit of the wrong type.
    """

    max_concurrent: int | None = attrs.field(default=None, validator=_positive_int_or_none)
    max_per_second: float | None = attrs.field(default=None, validator=_positive_number_or_none)


class PoolState(Generic[T]):
    """One pool's runtime state inside one scheduler."""

    __slots__ = ("held", "interval", "limit", "next_start", "resumes", "returned", "running")

    def __init__(self, pool: Pool) -> None:
        self.limit = pool.max_concurrent if pool.max_concurrent is not None else math.inf
        self.interval = 1.0 / pool.max_per_second if pool.max_per_second else 0.0
        self.running = 0  # attempts holding a place
        # Held items sent back to the ready queue and not taken from it yet. Each entry of
        # the pool the decider takes off the queue counts one down, dead or alive: it may
        # not be one sent back, so the count may run low (one more is sent back, and held
        # again if it cannot start) but never high, which would leave held work with
        # nothing to send it back.
        self.returned = 0
        self.next_start = -math.inf
        self.held: ReadyQueue[T] = ReadyQueue()  # work that waits for a start
        self.resumes: ReadyQueue[T] = ReadyQueue()  # paused tasks that wait for a place

    def has_place(self) -> bool:
        return self.running < self.limit

    def may_start(self, now: float) -> bool:
        """Whether an attempt may start at ``now``: a free place, and the rate allows it."""
        return self.running < self.limit and now >= self.next_start

    def started(self, now: float) -> None:
        self.running += 1
        if self.interval:
            self.next_start = now + self.interval

    def has_room(self) -> bool:
        """Whether a place is free beyond those already promised to entries sent back."""
        return self.running + self.returned < self.limit

    def wakeup(self) -> float | None:
        """When held work could next go back if only the rate holds it; ``None`` when
        nothing is held, or when it waits for a place rather than for time."""
        if not self.held or self.running + self.returned >= self.limit or self.returned:
            return None
        return self.next_start
