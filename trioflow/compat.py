"""The seed chapter's scheduler API (``Task``, ``SmartScheduler``) over trioflow's scheduler.

A thin adapter, not a second scheduler: ``run()`` checks the whole graph, submits every
task to :func:`trioflow.open_scheduler` (dependencies first) and copies each outcome back
onto its :class:`Task`. The chapter's test program runs unchanged once ``asyncio.sleep`` and
``asyncio.run`` become ``trio.sleep`` and ``trio.run``, with the reference solution's
defects fixed:

* a dependency's result is passed to the dependent *positionally* (results of several
  dependencies are appended in the order their tasks were added), which is what the
  chapter's own ``task_b(a_result)`` expects;
* a failed, timed-out or missing dependency never hangs the run: dependents end CANCELLED,
  an unknown id raises :class:`UnknownDependencyError` and a cycle :class:`CycleError`
  before anything starts;
* retries back off exponentially (``retry_delay * 2**(k-1)``) and timed-out attempts are
  retried too;
* nothing polls: workers wake when work is ready.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from ._errors import DuplicateTaskError, SchedulerClosedError, UnknownDependencyError
from ._retry import RetryPolicy
from ._validate import check_int, check_number, check_optional_number
from .scheduler._graph import dependency_order
from .scheduler._records import TaskStatus
from .scheduler._runner import Scheduler, TaskHandle, open_scheduler

__all__ = ["SmartScheduler", "Task", "TaskStatus"]


def _now() -> datetime:
    return datetime.now(UTC)


def _id_set(value: Iterable[str]) -> set[str]:
    # set("task-a") would quietly become a set of letters.
    if isinstance(value, (str, bytes)):
        raise TypeError(f"dependencies must be a collection of ids, not a string: {value!r}")
    return set(value)


@attrs.define(eq=False)
class Task:
    """A task in the seed chapter's shape: what to run, and (after ``run()``) how it went."""

    id: str
    func: Callable[..., Any]
    args: tuple[Any, ...] = attrs.field(factory=tuple, converter=tuple)
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    priority: int = 1  # lower runs first
    dependencies: set[str] = attrs.field(factory=set, converter=_id_set)
    timeout: float | None = 30.0
    max_retries: int = 3
    retry_delay: float = 1.0

    status: TaskStatus = TaskStatus.PENDING
    result: Any = None
    error: BaseException | None = None
    retries: int = 0
    created_at: datetime = attrs.field(factory=_now)
    started_at: datetime | None = None
    completed_at: datetime | None = None

    def __lt__(self, other: Task) -> bool:
        return self.priority < other.priority

    def _retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_retries=self.max_retries, delay=self.retry_delay, backoff=2.0)


def _check(task: Task) -> None:
    """Refuse a malformed :class:`Task` with the error ``submit`` would raise, naming it."""
    name = f"task {task.id!r}"
    if not isinstance(task.id, Hashable):
        raise TypeError(f"task id must be hashable, got {task.id!r}")
    if not callable(task.func):
        raise TypeError(f"{name}: func must be callable, got {task.func!r}")
    if not isinstance(task.args, tuple):
        raise TypeError(f"{name}: args must be a tuple, got {task.args!r}")
    if not isinstance(task.kwargs, dict) or not all(isinstance(k, str) for k in task.kwargs):
        raise TypeError(f"{name}: kwargs must be a dict with str keys, got {task.kwargs!r}")
    try:
        check_int("priority", task.priority, minimum=-(2**63))
        check_optional_number("timeout", task.timeout, positive=True, finite=False)
        # By the Task's own names (RetryPolicy would say "delay"), then the rest.
        check_int("max_retries", task.max_retries, minimum=0)
        check_number("retry_delay", task.retry_delay)
        task._retry_policy()
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None


class SmartScheduler:
    """The seed's ``SmartScheduler``: ``add_task`` then ``run``, ``get_stats`` at any time."""

    def __init__(self, max_workers: int = 5) -> None:
        self.max_workers = check_int("max_workers", max_workers, minimum=1)
        self.tasks: dict[str, Task] = {}
        self._position: dict[Hashable, int] = {}
        self._handles: dict[str, TaskHandle[Any]] = {}
        self._scheduler: Scheduler | None = None  # while run() runs
        self._finished: Scheduler | None = None  # once it has run
        self._ran = False

    async def add_task(self, task: Task) -> str:
        """Add ``task``; return its id. During ``run()`` (from inside a running task) it is
        scheduled at once, so its dependencies must already have been added.

        Every field is checked here, so that a malformed task is refused at once rather
        than failing halfway through ``run()``.

        Raises:
            TypeError: ``task`` is not a :class:`Task`, or a field has the wrong type
                (``func`` not callable, ``args`` not a tuple, ``kwargs`` not a dict,
                ``priority`` not an int, a dependency that is not a hashable id).
            ValueError: a bad timeout or retry setting.
            DuplicateTaskError: the id is already in use.
            SchedulerClosedError: ``run()`` has already finished.
        """
        await trio.lowlevel.checkpoint()
        if not isinstance(task, Task):
            raise TypeError(f"add_task takes a Task, got {task!r}")
        if self._ran and self._scheduler is None:
            raise SchedulerClosedError(
                f"run() has finished; task {task.id!r} would never run (use a new scheduler)"
            )
        _check(task)
        if task.id in self.tasks:
            raise DuplicateTaskError(task.id)
        if self._scheduler is not None:
            self._submit(self._scheduler, task)
        self.tasks[task.id] = task
        self._position[task.id] = len(self._position)
        return task.id

    async def run(self) -> dict[str, Task]:
        """Run every added task to a terminal state; return them by id.

        Every task is checked again first, as ``add_task`` checked it: a :class:`Task` is
        mutable, and one changed since (a ``func`` that is no longer callable, a bad
        timeout, a new ``id``) must be refused before anything starts, not halfway through
        submitting, which would leave a run that can neither finish nor be run again.

        Raises:
            TypeError, ValueError: a task was changed after ``add_task`` into one that
                ``add_task`` would refuse, or its ``id`` was changed (nothing has started;
                fix it and call ``run()`` again).
            UnknownDependencyError: a task depends on an id that was never added.
            CycleError: the dependencies have a cycle (nothing has started).
            RuntimeError: ``run()`` was already called.
        """
        if self._ran:
            raise RuntimeError("SmartScheduler.run() can be called only once")
        for added_as, task in self.tasks.items():
            if task.id != added_as:
                raise ValueError(
                    f"task {added_as!r} was renamed {task.id!r} after add_task: ids are fixed"
                )
            _check(task)
        order = dependency_order(
            {task_id: self._ordered_dependencies(task) for task_id, task in self.tasks.items()}
        )
        self._ran = True
        try:
            async with open_scheduler(max_workers=self.max_workers) as scheduler:
                self._scheduler = scheduler
                for task_id in order:
                    self._submit(scheduler, self.tasks[task_id])  # type: ignore[index]
        finally:
            self._finished, self._scheduler = self._scheduler, None
            self._copy_back()
        return self.tasks

    def get_stats(self) -> dict[str, Any]:
        """The seed's statistics: ``total``, ``status`` (a count per status value),
        ``completed``, ``failed`` (FAILED + TIMEOUT), plus retries and, from the moment
        ``run()`` starts, timing (``elapsed``, ``throughput``: the run's own, frozen when it
        ends)."""
        scheduler = self._scheduler or self._finished
        if scheduler is not None:
            return scheduler.stats().to_dict()
        counts = dict.fromkeys((status.value for status in TaskStatus), 0)
        for task in self.tasks.values():
            counts[task.status.value] += 1
        return {
            "total": len(self.tasks),
            "status": counts,
            "completed": counts["completed"],
            "failed": counts["failed"] + counts["timeout"],
            "timeout": counts["timeout"],
            "cancelled": counts["cancelled"],
            "retries": sum(task.retries for task in self.tasks.values()),
        }

    # -- internals ------------------------------------------------------------------------------

    def _ordered_dependencies(self, task: Task) -> list[Hashable]:
        position = self._position
        # Unknown ids sort last; dependency_order reports them.
        return sorted(task.dependencies, key=lambda dep: position.get(dep, len(position)))

    def _submit(self, scheduler: Scheduler, task: Task) -> None:
        dep_handles = []
        for dep in self._ordered_dependencies(task):
            if dep not in self._handles:
                raise UnknownDependencyError(task.id, dep)
            dep_handles.append(self._handles[dep])
        self._handles[task.id] = scheduler.submit(
            task.func,
            *task.args,
            *dep_handles,
            id=task.id,
            priority=task.priority,
            timeout=task.timeout,
            retry=task._retry_policy(),
            kwargs=task.kwargs or None,
        )

    def _copy_back(self) -> None:
        for task_id, handle in self._handles.items():
            task = self.tasks[task_id]
            task.status = handle.status
            task.result = handle.result
            task.error = handle.error
            task.retries = handle.retries
            task.started_at = handle.started_at
            task.completed_at = handle.completed_at
