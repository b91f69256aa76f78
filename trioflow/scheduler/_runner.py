"""open_scheduler, Scheduler and TaskHandle: the trio layer of the task scheduler.

How a task flows: ``submit`` validates it and adds it to the pure dependency graph, which
says whether it waits or is ready. Ready tasks sit in the pure ready queue as records, not as
parked trio tasks. Up to ``max_workers`` worker tasks (each holding one token of a
``trio.CapacityLimiter``) pop the best ready task whenever they are free, run the attempt
under a cancel scope, and hand the outcome back to the graph, which releases dependents
straight into the queue or dooms them. A worker exits when the queue is empty and is started
again when work arrives, so an idle scheduler holds no tasks at all.

Costs were designed against ``shared/PERF-NOTES.md``: a worker keeps one cancel scope for
many attempts and opens a new one only after that scope was cancelled (a timeout or
``cancel()``), sets a deadline only for attempts that have a timeout, and checkpoints every
few attempts rather than after each. To the user it is still one cancel scope per attempt.
"""

from __future__ import annotations

import functools
import inspect
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, final

import trio

from .._errors import (
    DependencyFailed,
    SchedulerClosedError,
    TaskFailed,
    UnknownDependencyError,
)
from .._events import EventFanout
from .._retry import RetryPolicy, as_retry_policy
from ._graph import DependencyGraph, NodeState
from ._ready_queue import ReadyQueue
from ._records import SchedulerStats, StatusCounts, TaskEvent, TaskStatus

_PENDING: Final = TaskStatus.PENDING
_WAITING: Final = TaskStatus.WAITING
_RUNNING: Final = TaskStatus.RUNNING
_COMPLETED: Final = TaskStatus.COMPLETED
_FAILED: Final = TaskStatus.FAILED
_TIMEOUT: Final = TaskStatus.TIMEOUT
_CANCELLED: Final = TaskStatus.CANCELLED
_NO_DEPENDENCIES: Final[frozenset[Hashable]] = frozenset()

#: A worker that keeps finding work checkpoints after this many attempts even when none of
#: them blocked, so it stays responsive to cancellation and fair to the rest of the program.
CHECKPOINT_EVERY: Final = 32


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    code = getattr(fn, "__code__", None)
    if code is not None:  # a plain function: the fast path, once per submit
        return bool(code.co_flags & inspect.CO_COROUTINE)
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )


@final
class TaskHandle:
    """One submitted task: its status, outcome and timestamps, and ``wait()``/``cancel()``.

    Handles are created by :meth:`Scheduler.submit`, never directly. Pass a handle as an
    argument of another ``submit`` to hand its result to that task.
    """

    __slots__ = (
        "_args",
        "_cancel_requested",
        "_completed",
        "_created",
        "_data_deps",
        "_done",
        "_errors",
        "_fn",
        "_is_async",
        "_kwargs",
        "_retry",
        "_scheduler",
        "_scope",
        "_started",
        "_timeout",
        "attempts",
        "dependencies",
        "error",
        "id",
        "priority",
        "result",
        "status",
    )

    def __init__(
        self,
        scheduler: Scheduler,
        task_id: Hashable,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        priority: int,
        dependencies: frozenset[Hashable],
        data_deps: bool,
        timeout: float | None,
        retry: RetryPolicy | None,
        now: float,
    ) -> None:
        self.id = task_id
        self.priority = priority
        self.dependencies = dependencies
        self.status = _PENDING
        self.result: Any = None
        self.error: BaseException | None = None
        self.attempts = 0
        self._scheduler = scheduler
        self._fn: Callable[..., Any] | None = fn
        self._is_async = _is_async_callable(fn)
        self._args = args
        self._kwargs = kwargs
        self._data_deps = data_deps
        self._timeout = timeout
        self._retry = retry
        self._errors: list[BaseException] | None = None
        self._scope: trio.CancelScope | None = None
        self._cancel_requested = False
        self._done: trio.Event | None = None
        self._created = now
        self._started: float | None = None
        self._completed: float | None = None

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id!r} {self.status.value}>"

    @property
    def retries(self) -> int:
        """Retries made: attempts started beyond the first."""
        return self.attempts - 1 if self.attempts > 1 else 0

    @property
    def done(self) -> bool:
        """Whether the task is in a terminal state."""
        return self.status.is_terminal

    @property
    def created_at(self) -> datetime:
        return self._scheduler._to_datetime(self._created)

    @property
    def started_at(self) -> datetime | None:
        """When the first attempt started."""
        return None if self._started is None else self._scheduler._to_datetime(self._started)

    @property
    def completed_at(self) -> datetime | None:
        """When the task reached its terminal state."""
        if self._completed is None:
            return None
        return self._scheduler._to_datetime(self._completed)

    async def wait(self) -> Any:
        """Wait until the task ends; return its result.

        Raises:
            TaskFailed: the task ended FAILED, TIMEOUT or CANCELLED; its ``__cause__`` is the
                task's own error (``None`` for a plain cancel).
        """
        if self.status.is_terminal:
            await trio.lowlevel.checkpoint()
        else:
            if self._done is None:
                self._done = trio.Event()
            await self._done.wait()
        if self.status is _COMPLETED:
            return self.result
        raise TaskFailed(self.id, self.status, self.error, self._errors or ())

    def cancel(self) -> None:
        """Cancel the task, and so every task that depends on it.

        A task that is not running ends CANCELLED at once; a running one is cancelled at its
        next checkpoint. Cancelling a finished task does nothing.
        """
        self._scheduler._cancel(self)


@final
class Scheduler:
    """Runs submitted tasks by priority, dependencies, a concurrency limit, timeouts and
    retries. Get one from :func:`open_scheduler`."""

    def __init__(self, nursery: trio.Nursery, max_workers: int) -> None:
        self._nursery = nursery
        self._max_workers = max_workers
        self._limiter = trio.CapacityLimiter(max_workers)
        self._workers = 0  # live workers, each holding one limiter token
        self._queue: ReadyQueue[TaskHandle] = ReadyQueue()
        self._graph = DependencyGraph()
        self._tasks: dict[Hashable, TaskHandle] = {}
        self._counts = StatusCounts()
        self._events: EventFanout[TaskEvent] = EventFanout()
        self._random = random.Random()
        self._closed = False
        # The clock's own bound method: trio.current_time() without the lookups, and still
        # the run's clock, so a MockClock drives every timestamp.
        self._now = trio.lowlevel.current_clock().current_time
        self._started = self._now()
        self._wall_origin = datetime.now(UTC)
        self._finished_at: float | None = None
        self._auto_ids = 0

    # -- public ---------------------------------------------------------------------------

    @property
    def max_workers(self) -> int:
        return self._max_workers

    @property
    def limiter(self) -> trio.CapacityLimiter:
        """The limiter whose tokens the workers hold (``statistics()`` shows them)."""
        return self._limiter

    @property
    def tasks(self) -> Mapping[Hashable, TaskHandle]:
        """Every submitted task by id, in submission order (a read-only view)."""
        return MappingProxyType(self._tasks)

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(
        self,
        fn: Callable[..., Awaitable[Any]] | Callable[..., Any],
        *args: Any,
        id: Hashable | None = None,  # noqa: A002 - the SPEC's name
        priority: int = 1,
        depends_on: Iterable[TaskHandle | Hashable] = (),
        timeout: float | None = None,
        retry: RetryPolicy | int | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> TaskHandle:
        """Schedule ``fn(*args, **kwargs)``; never blocks.

        A :class:`TaskHandle` among ``args`` or ``kwargs`` values is a data dependency: the
        task waits for it and gets its result in that place. ``depends_on`` holds handles or
        ids the task must wait for without taking their results. A lower ``priority`` runs
        first; ``timeout`` applies to each attempt; ``retry`` is ``None``, a number of
        retries, or a :class:`RetryPolicy`.

        Raises:
            TypeError: ``fn`` is not callable, or an argument has the wrong type.
            ValueError: ``timeout <= 0`` or a bad retry setting.
            DuplicateTaskError: ``id`` is already in use.
            UnknownDependencyError: a dependency was never submitted to this scheduler.
            SchedulerClosedError: the scheduler has finished.
            Nothing is scheduled when any of these is raised.
        """
        if self._closed:
            raise SchedulerClosedError("the scheduler has finished; nothing more can be submitted")
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        if type(priority) is not int:
            raise TypeError(f"priority must be an int, got {priority!r}")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(f"timeout must be a number or None, got {timeout!r}")
            if not timeout > 0:
                raise ValueError(f"timeout must be > 0, got {timeout!r}")
        policy = as_retry_policy(retry)
        if kwargs is not None:
            if not isinstance(kwargs, Mapping):
                raise TypeError(f"kwargs must be a mapping or None, got {kwargs!r}")
            kwargs = dict(kwargs)
        if id is None:
            self._auto_ids += 1
            task_id: Hashable = f"{getattr(fn, '__name__', 'task')}#{self._auto_ids}"
        else:
            task_id = id

        deps: list[Hashable] | None = None
        data_deps = False
        for value in args if kwargs is None else (*args, *kwargs.values()):
            if type(value) is TaskHandle:
                deps = self._dependency_id(task_id, value, deps)
                data_deps = True
        if depends_on:
            if isinstance(depends_on, (str, bytes)):
                raise TypeError("depends_on must be an iterable of handles or ids, not a string")
            for dep in depends_on:
                deps = self._dependency_id(task_id, dep, deps)

        now = self._now()
        # The graph checks the id and every dependency before it changes anything.
        state, culprit = self._graph.add(task_id, deps or ())
        task = TaskHandle(
            self,
            task_id,
            fn,
            args,
            kwargs,
            priority,
            frozenset(deps) if deps else _NO_DEPENDENCIES,
            data_deps,
            timeout,
            policy,
            now,
        )
        self._tasks[task_id] = task
        if state is NodeState.READY:
            self._counts.add(_PENDING)
            if self._events:
                self._publish(task, None)
            self._enqueue(task)
        elif state is NodeState.WAITING:
            task.status = _WAITING
            self._counts.add(_WAITING)
            if self._events:
                self._publish(task, None)
        else:
            self._counts.add(_PENDING)
            self._settle(task, _CANCELLED, None, self._dependency_failed(task_id, culprit))
        return task

    def stats(self) -> SchedulerStats:
        """Counts per status, retries, elapsed time and throughput; O(1)."""
        end = self._finished_at if self._finished_at is not None else self._now()
        return self._counts.snapshot(end - self._started)

    def subscribe(self) -> trio.MemoryReceiveChannel[TaskEvent]:
        """A channel of :class:`TaskEvent`, one per status change from now on, closed when the
        scheduler finishes. Unbounded: a slow reader delays nothing and loses nothing."""
        return self._events.subscribe()

    # -- submit helpers ---------------------------------------------------------------------

    def _dependency_id(
        self, task_id: Hashable, dep: TaskHandle | Hashable, deps: list[Hashable] | None
    ) -> list[Hashable]:
        # Only a foreign handle is caught here; the graph checks that ids exist.
        if type(dep) is TaskHandle:
            if dep._scheduler is not self:
                raise UnknownDependencyError(task_id, dep.id)
            dep_id = dep.id
        else:
            dep_id = dep
        if deps is None:
            return [dep_id]
        deps.append(dep_id)
        return deps

    def _dependency_failed(self, task_id: Hashable, dependency: Hashable) -> DependencyFailed:
        upstream_error = self._tasks[dependency].error
        root = upstream_error.root if isinstance(upstream_error, DependencyFailed) else dependency
        return DependencyFailed(task_id, dependency, root)

    # -- status changes ---------------------------------------------------------------------

    def _publish(self, task: TaskHandle, error: BaseException | None) -> None:
        self._events.publish(TaskEvent(task.id, task.status, task.attempts, self._now(), error))

    def _set_status(
        self, task: TaskHandle, status: TaskStatus, error: BaseException | None = None
    ) -> None:
        self._counts.move(task.status, status)
        task.status = status
        if self._events:
            self._publish(task, error)

    def _settle(
        self, task: TaskHandle, status: TaskStatus, result: Any, error: BaseException | None
    ) -> None:
        """Put ``task`` in terminal ``status``; the graph is the caller's business."""
        task.result = result
        if error is not None:
            task.error = error
        task._completed = self._now()
        task._fn = task._args = task._kwargs = None  # let the arguments be collected
        task._scope = None
        self._set_status(task, status, error)
        if task._done is not None:
            task._done.set()

    def _complete(self, task: TaskHandle, result: Any) -> None:
        self._settle(task, _COMPLETED, result, None)
        tasks = self._tasks
        for ready_id in self._graph.mark_completed(task.id):
            dependent = tasks[ready_id]
            self._set_status(dependent, _PENDING)
            self._enqueue(dependent)

    def _fail(self, task: TaskHandle, status: TaskStatus, error: BaseException | None) -> None:
        self._settle(task, status, None, error)
        tasks = self._tasks
        for doomed_id, upstream in self._graph.mark_failed(task.id):
            self._settle(
                tasks[doomed_id], _CANCELLED, None, self._dependency_failed(doomed_id, upstream)
            )

    def _attempt_failed(self, task: TaskHandle, error: BaseException, status: TaskStatus) -> None:
        policy = task._retry
        if policy is None:
            self._fail(task, status, error)
            return
        if task._errors is None:
            task._errors = []
        task._errors.append(error)
        if not policy.should_retry(error, task.attempts - 1):
            self._fail(task, status, error)
            return
        task.error = error
        self._set_status(task, _WAITING, error)
        delay = policy.delay_for(task.attempts, self._random.random)
        if delay > 0:
            self._nursery.start_soon(self._retry_after, task, delay)
        else:
            self._set_status(task, _PENDING)
            self._enqueue(task)

    def _cut_short(self, task: TaskHandle) -> None:
        """The attempt's cancel scope fired: ``cancel()`` or its timeout."""
        if task._cancel_requested:
            self._fail(task, _CANCELLED, None)
        else:
            error = TimeoutError(
                f"task {task.id!r} timed out after {task._timeout} s (attempt {task.attempts})"
            )
            self._attempt_failed(task, error, _TIMEOUT)

    def _cancel(self, task: TaskHandle) -> None:
        if task.status.is_terminal:
            return
        task._cancel_requested = True
        if task._scope is not None:
            task._scope.cancel()
        if task.status is not _RUNNING:
            # Queued, waiting or sleeping out a retry delay: nothing runs it, end it now.
            # (A queued one stays in the heap and is skipped when popped.)
            self._fail(task, _CANCELLED, None)

    # -- running ----------------------------------------------------------------------------

    def _enqueue(self, task: TaskHandle) -> None:
        self._queue.push(task, task.priority)
        if self._workers < self._max_workers:
            token = object()
            self._limiter.acquire_on_behalf_of_nowait(token)
            self._workers += 1
            self._nursery.start_soon(self._worker, token)

    async def _retry_after(self, task: TaskHandle, delay: float) -> None:
        with trio.CancelScope() as scope:
            task._scope = scope
            await trio.sleep(delay)
        if task.status is _WAITING:
            task._scope = None
            self._set_status(task, _PENDING)
            self._enqueue(task)

    async def _worker(self, token: object) -> None:
        queue = self._queue
        try:
            while queue:
                running = None
                with trio.CancelScope() as scope:
                    done = 0
                    while queue:
                        task = queue.pop()
                        if task.status is not _PENDING:
                            continue  # cancelled while queued
                        running = task
                        await self._attempt(task, scope)
                        running = None
                        if (task._timeout is not None or task._cancel_requested) and (
                            scope.cancel_called
                        ):
                            break  # the scope is spent; the next attempt needs a fresh one
                        done += 1
                        if done == CHECKPOINT_EVERY:
                            done = 0
                            await trio.lowlevel.checkpoint()
                if running is not None:
                    self._cut_short(running)
        finally:
            self._workers -= 1
            self._limiter.release_on_behalf_of(token)

    async def _attempt(self, task: TaskHandle, scope: trio.CancelScope) -> None:
        """Run one attempt inside ``scope`` and record its outcome.

        A ``Cancelled`` from ``scope`` propagates to the worker, which records it; any other
        way the attempt ends is recorded here.
        """
        task.attempts += 1
        if task.attempts == 1:
            task._started = self._now()
        else:
            self._counts.retries += 1
        task._scope = scope
        self._set_status(task, _RUNNING)
        timeout = task._timeout
        if timeout is not None:
            scope.deadline = self._now() + timeout
        args = task._args
        kwargs = task._kwargs
        if task._data_deps:
            args = tuple(a.result if type(a) is TaskHandle else a for a in args)
            if kwargs:
                kwargs = {k: v.result if type(v) is TaskHandle else v for k, v in kwargs.items()}
        fn = task._fn
        assert fn is not None
        error: Exception | None = None
        try:
            if task._is_async:
                value = await (fn(*args, **kwargs) if kwargs else fn(*args))
            else:
                call = functools.partial(fn, *args, **(kwargs or {}))
                value = await trio.to_thread.run_sync(call)
                if inspect.isawaitable(value):
                    value = await value  # an async callable that inspect could not recognise
        except Exception as exc:
            error = exc
        if timeout is not None:
            scope.deadline = math.inf
        task._scope = None
        if task._cancel_requested or (timeout is not None and scope.cancel_called):
            # Its deadline passed or cancel() was called, but it ended without a checkpoint
            # to deliver that (a thread cannot be interrupted, say): the attempt was cut short.
            self._cut_short(task)
        elif error is not None:
            self._attempt_failed(task, error, _FAILED)
        else:
            self._complete(task, value)

    # -- lifetime -----------------------------------------------------------------------------

    def _to_datetime(self, at: float) -> datetime:
        return self._wall_origin + timedelta(seconds=at - self._started)

    def _close(self) -> None:
        """Mark every unfinished task CANCELLED and end the event streams."""
        self._closed = True
        if self._counts.finished != self._counts.total:
            for task in self._tasks.values():
                if not task.status.is_terminal:
                    task._cancel_requested = True
                    self._graph.mark_failed(task.id)
                    self._settle(task, _CANCELLED, None, None)
        self._finished_at = self._now()
        self._events.close()

    def _failures(self) -> list[TaskFailed]:
        counts = self._counts
        if not (counts[_FAILED] or counts[_TIMEOUT]):
            return []
        return [
            TaskFailed(task.id, task.status, task.error, task._errors or ())
            for task in self._tasks.values()
            if task.status is _FAILED or task.status is _TIMEOUT
        ]


@asynccontextmanager
async def open_scheduler(
    *, max_workers: int = 5, raise_on_failure: bool = False
) -> AsyncIterator[Scheduler]:
    """Open a :class:`Scheduler` that runs its tasks in a nursery of its own.

    Leaving the block waits until every task is in a terminal state. If the body raises, or
    the surrounding scope is cancelled, every unfinished task ends CANCELLED and the
    exception propagates as itself. With ``raise_on_failure=True``, a normal exit raises an
    ``ExceptionGroup`` of one :class:`TaskFailed` per task that ended FAILED or TIMEOUT.

    Raises:
        TypeError, ValueError: ``max_workers`` is not an int >= 1.
    """
    if type(max_workers) is not int:
        raise TypeError(f"max_workers must be an int, got {max_workers!r}")
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers!r}")
    body_error: BaseException | None = None
    scheduler: Scheduler | None = None
    try:
        async with trio.open_nursery() as nursery:
            scheduler = Scheduler(nursery, max_workers)
            try:
                yield scheduler
            except BaseException as exc:
                # Kept out of the nursery so that it propagates as itself, not in a group.
                body_error = exc
                nursery.cancel_scope.cancel()
    finally:
        # Every task has finished, or the nursery was cancelled and the rest end CANCELLED.
        if scheduler is not None:
            scheduler._close()
    if body_error is not None:
        try:
            raise body_error
        finally:
            body_error = None
    if raise_on_failure:
        assert scheduler is not None
        failures = scheduler._failures()
        if failures:
            raise ExceptionGroup(f"{len(failures)} task(s) did not complete", failures)
