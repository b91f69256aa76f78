"""TaskHandle: what ``submit`` returns, and ``settled()``, which marks one as an input that
is received however it ended.

A handle *is* the decider's record of its task (a subclass of
:class:`~trioflow.scheduler._decider.TaskRecord` with no state of its own), so there is one
object per task. What it asks of its scheduler (waiting, cancelling, turning run times into
datetimes) goes through the small :class:`Owner` protocol, so this module does not import
the runner.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, Generic, Protocol, TypeVar, final

import trio

from ._decider import TaskRecord
from ._inputs import Settled
from ._records import TaskStatus

__all__ = ["Owner", "TaskHandle", "settled"]

T = TypeVar("T")

_COMPLETED: Final = TaskStatus.COMPLETED


class Owner(Protocol):
    """What a handle needs from the scheduler that made it."""

    def _to_datetime(self, at: float) -> datetime: ...

    async def _wait_for(self, tasks: Sequence[TaskRecord]) -> None: ...

    def _cancel(self, task: TaskRecord) -> None: ...


@final
class TaskHandle(TaskRecord, Generic[T]):
    """One submitted task: its status, outcome and timestamps, and ``wait()``/``cancel()``.

    Handles are created by :meth:`Scheduler.submit`, never directly. Pass a handle as an
    argument of another ``submit`` (or ``settled(handle)``) to hand its result (or
    outcome) to that task.

    Attributes:
        id: the task's id (given to ``submit``, or made from the function's name).
        priority: lower runs first.
        status: a :class:`TaskStatus`.
        result: the value once ``COMPLETED``, else ``None``.
        error: the last attempt's exception (or the reason it was cancelled), else ``None``.
        attempts: attempts started.
        dependencies: the ids of every task it depends on (data, settled and ordering).
    """

    __slots__ = ()

    @property
    def result(self) -> T | None:
        """The task's value once it has ``COMPLETED``, else ``None``."""
        return self._value if self.status is _COMPLETED else None

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id!r} {self.status.value}>"

    @property
    def _scheduler(self) -> Owner:
        owner: Owner = self._spec.owner  # type: ignore[assignment]
        return owner

    @property
    def created_at(self) -> datetime:
        """When it was submitted."""
        return self._scheduler._to_datetime(self._created)

    @property
    def started_at(self) -> datetime | None:
        """When its first attempt started."""
        return None if self._started is None else self._scheduler._to_datetime(self._started)

    @property
    def completed_at(self) -> datetime | None:
        """When it reached its terminal state."""
        if self._completed is None:
            return None
        return self._scheduler._to_datetime(self._completed)

    async def wait(self) -> T:
        """Wait until the task ends; return its result.

        Called from inside a running task of the same scheduler, the waiting task gives its
        worker slot back while it waits, and takes one again (at its own priority) before
        it goes on.

        Raises:
            TaskFailed: the task ended FAILED, TIMEOUT or CANCELLED; its ``__cause__`` is the
                task's own error (``None`` for a plain cancel).
            RuntimeError: a task waits for itself, or for a task that depends on it (and
                so cannot start before it ends).
        """
        if not self.status.is_terminal:
            await self._scheduler._wait_for([self])
        else:
            await trio.lowlevel.checkpoint()
        if self.status is _COMPLETED:
            return self._value  # type: ignore[no-any-return]
        raise self.failure()

    def cancel(self) -> None:
        """Cancel the task, and so every task that depends on it.

        A task that is not running ends CANCELLED at once; a running one is cancelled at its
        next checkpoint. Cancelling a finished task does nothing. It may be called from
        another thread (a plain-function task running in a worker thread, say), as
        :meth:`Scheduler.submit` may.
        """
        self._scheduler._cancel(self)


def settled(handle: TaskHandle[T]) -> Settled[T]:
    """Mark ``handle`` as a dependency whose failure does not cancel the dependent.

    In a task's arguments (or inside a list, tuple or dict among them) the task waits until
    ``handle`` has ended, in any terminal state, and receives an ``outcome.Outcome`` in its
    place: ``outcome.Value(result)``, or ``outcome.Error(error)`` (for a plain cancel,
    whose ``error`` is ``None``, the ``TaskFailed`` that ``wait()`` raises). In
    ``depends_on`` it is the ordering-only form: run after ``handle`` ends, however it ends.
    Use it for a step that works on partial results, such as an aggregate over the pages
    that did load.

    Raises:
        TypeError: ``handle`` is not a ``TaskHandle``.
    """
    if type(handle) is not TaskHandle:
        raise TypeError(f"settled() takes a TaskHandle, got {handle!r}")
    return Settled(handle)
