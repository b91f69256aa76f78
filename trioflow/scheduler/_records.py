"""Values that describe a run: task statuses, status-change events, statistics.

Pure and synchronous. :class:`StatusCounts` is updated on every status change so that
``stats()`` is O(1) instead of a scan over every task.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import Enum
from typing import Any, NamedTuple

import attrs


class TaskStatus(Enum):
    """Where a task stands. The last four are terminal."""

    PENDING = "pending"  # ready: queued for a worker slot
    WAITING = "waiting"  # not runnable yet: dependencies unfinished, or a retry delay
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"  # the last attempt raised
    TIMEOUT = "timeout"  # the last attempt timed out
    CANCELLED = "cancelled"

    # Members are singletons compared by identity; hashing them by identity too (in C)
    # instead of Enum's hash-of-name keeps the per-status-change counters cheap.
    __hash__ = object.__hash__

    @property
    def is_terminal(self) -> bool:
        """Whether the task has ended: ``COMPLETED``, ``FAILED``, ``TIMEOUT`` or
        ``CANCELLED``. A terminal status never changes again."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.TIMEOUT, TaskStatus.CANCELLED}
)


class TaskEvent(NamedTuple):
    """One status change of one task (``Scheduler.subscribe()``).

    ``attempt`` is the number of attempts started so far; ``at`` is ``trio.current_time()``;
    ``error`` is set on failures, timeouts, cancellations and retry waits.

    A named tuple, not an attrs class, as the coordinator's events are: immutable all the
    same, and a subscribed run makes three or more per task, so the cost of making one
    counts (``tuple.__new__`` against ``object.__setattr__`` for each field of a frozen
    attrs class: about a third). It also unpacks as ``(task_id, status, attempt, at,
    error)``.
    """

    task_id: Hashable
    status: TaskStatus
    attempt: int
    at: float
    error: BaseException | None = None


@attrs.frozen
class SchedulerStats:
    """A snapshot of a scheduler's counters (``Scheduler.stats()``).

    Made in O(1): the counters are kept current one status change at a time.

    Attributes:
        total: tasks submitted (``map()`` items included), whether or not they were kept.
        pending: ready, queued for a worker slot.
        waiting: waiting for dependencies, or waiting out a retry delay.
        running: attempts running (a task that waits inside its attempt included).
        completed: ended ``COMPLETED``.
        failed: ended ``FAILED`` (``to_dict()["failed"]`` adds the timeouts, as the seed
            chapter counts them).
        timeout: ended ``TIMEOUT``.
        cancelled: ended ``CANCELLED`` (dependents of a failure included).
        retries: attempts started after a task's first, summed over every task.
        elapsed: seconds since the scheduler opened (until it finished, once it has).
        throughput: tasks in a terminal state per second of ``elapsed``.
    """

    total: int
    pending: int
    waiting: int
    running: int
    completed: int
    failed: int
    timeout: int
    cancelled: int
    retries: int
    elapsed: float
    throughput: float

    @property
    def finished(self) -> int:
        """Tasks in a terminal state."""
        return self.completed + self.failed + self.timeout + self.cancelled

    def to_dict(self) -> dict[str, Any]:
        """The seed chapter's statistics dict, extended.

        ``"failed"`` counts FAILED and TIMEOUT together, as the seed does.
        """
        return {
            "total": self.total,
            "status": {status.value: getattr(self, status.name.lower()) for status in TaskStatus},
            "completed": self.completed,
            "failed": self.failed + self.timeout,
            "timeout": self.timeout,
            "cancelled": self.cancelled,
            "retries": self.retries,
            "elapsed": self.elapsed,
            "throughput": self.throughput,
        }


class StatusCounts:
    """How many tasks are in each status, kept current one transition at a time."""

    __slots__ = ("by_status", "retries", "total")

    def __init__(self) -> None:
        #: The count per status; the decider updates it in place on its hot path.
        self.by_status = dict.fromkeys(TaskStatus, 0)
        self.total = 0
        self.retries = 0

    def add(self, status: TaskStatus) -> None:
        self.total += 1
        self.by_status[status] += 1

    def move(self, old: TaskStatus, new: TaskStatus) -> None:
        counts = self.by_status
        counts[old] -= 1
        counts[new] += 1

    def __getitem__(self, status: TaskStatus) -> int:
        return self.by_status[status]

    @property
    def finished(self) -> int:
        counts = self.by_status
        return sum(counts[status] for status in _TERMINAL)

    def snapshot(self, elapsed: float) -> SchedulerStats:
        counts = self.by_status
        finished = self.finished
        return SchedulerStats(
            total=self.total,
            pending=counts[TaskStatus.PENDING],
            waiting=counts[TaskStatus.WAITING],
            running=counts[TaskStatus.RUNNING],
            completed=counts[TaskStatus.COMPLETED],
            failed=counts[TaskStatus.FAILED],
            timeout=counts[TaskStatus.TIMEOUT],
            cancelled=counts[TaskStatus.CANCELLED],
            retries=self.retries,
            elapsed=elapsed,
            throughput=finished / elapsed if elapsed > 0 else 0.0,
        )
