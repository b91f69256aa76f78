"""open_scheduler, Scheduler and TaskHandle: the trio runner of the task scheduler.

The rules live in the pure :class:`~trioflow.scheduler._decider.Decider`; this module
wires them to trio. How a task flows:

1. ``submit`` checks the arguments and hands a new :class:`TaskHandle` to the decider, which
   says whether it waits (dependencies unfinished) or is ready (in the ready queue).
2. Ready tasks wait in the queue as records, not as parked trio tasks. Whenever the queue
   has work and fewer than ``max_workers`` workers exist, a worker is started; each worker
   holds one token of a ``trio.CapacityLimiter`` for its whole life.
3. A worker pops the best ready task, runs one attempt inside a cancel scope (the task's
   timeout is that scope's deadline; ``cancel()`` cancels it), and reports how the attempt
   ended to the decider, which releases dependents into the queue, dooms them, or asks for
   a retry after a delay (a small sleeper task that holds no worker slot).
4. A worker exits when the queue is empty, so an idle scheduler holds no tasks at all.

What the hot path costs, and why it looks the way it does (measured on CPython 3.11, trio
0.35, per no-op job): a cancel scope opened per attempt costs more than a whole job of a
tuned asyncio worker pool (3 to 5 µs), so a worker keeps one scope for many attempts and opens
a new one only after that scope was cancelled (a timeout or ``cancel()``); it sets a
deadline only for attempts that have a timeout. A ``checkpoint()`` after every job costs
about 5 µs, so a worker checkpoints after every 32 attempts that did not block; an
attempt that blocked has already given the rest of the program its turn. To the user it is
still one cancel scope per attempt, and the worker is still a good citizen.
"""

from __future__ import annotations

import functools
import inspect
import math
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar, final, overload

import trio

from .._errors import SchedulerClosedError, TaskFailed, UnknownDependencyError
from .._events import EventFanout
from .._owner import open_owner
from .._retry import RetryPolicy, as_retry_policy
from .._validate import check_int, check_optional_number
from ._decider import Decider, TaskRecord, TaskSpec
from ._records import SchedulerStats, TaskEvent, TaskStatus

__all__ = ["Scheduler", "TaskHandle", "open_scheduler"]

T = TypeVar("T")

_PENDING: Final = TaskStatus.PENDING
_WAITING: Final = TaskStatus.WAITING
_RUNNING: Final = TaskStatus.RUNNING
_COMPLETED: Final = TaskStatus.COMPLETED

#: A worker that keeps finding work checkpoints after this many attempts even when none of
#: them blocked, so it stays responsive to cancellation and fair to the rest of the program.
CHECKPOINT_EVERY: Final = 32


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    code = getattr(fn, "__code__", None)
    if code is not None:  # a plain function: the fast path, once per distinct function
        return bool(code.co_flags & inspect.CO_COROUTINE)
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )


@final
class TaskHandle(TaskRecord, Generic[T]):
    """One submitted task: its status, outcome and timestamps, and ``wait()``/``cancel()``.

    Handles are created by :meth:`Scheduler.submit`, never directly. Pass a handle as an
    argument of another ``submit`` to hand its result to that task.

    Attributes:
        id: the task's id (given to ``submit``, or made from the function's name).
        priority: lower runs first.
        status: a :class:`TaskStatus`.
        result: the value once ``COMPLETED``, else ``None``.
        error: the last attempt's exception (or the reason it was cancelled), else ``None``.
        attempts: attempts started.
        dependencies: the ids of every task it depends on (data and ordering alike).
    """

    __slots__ = ("_done", "_scope")

    result: T | None

    def __init__(
        self,
        task_id: Hashable,
        spec: TaskSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        priority: int,
        now: float,
    ) -> None:
        super().__init__(task_id, spec, args, kwargs, priority, now)
        self._scope: trio.CancelScope | None = None
        self._done: trio.Event | None = None

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id!r} {self.status.value}>"

    @property
    def _scheduler(self) -> Scheduler:
        spec = self._spec
        assert spec is not None
        owner = spec.owner
        assert isinstance(owner, Scheduler)
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
            return self.result  # type: ignore[return-value]
        raise self.failure()

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
        self._starting = 0  # workers started that have not looked at the queue yet
        self._decider: Decider[TaskHandle[Any]] = Decider(
            random=random.Random().random, on_settle=self._on_settle
        )
        self._events: EventFanout[TaskEvent] = EventFanout()
        # The clock's own bound method: trio.current_time() without the lookups, and still
        # the run's clock, so a MockClock drives every timestamp.
        self._now = trio.lowlevel.current_clock().current_time
        self._started = self._now()
        self._wall_origin = datetime.now(UTC)
        self._finished_at: float | None = None
        self._thread = threading.get_ident()
        self._token = trio.lowlevel.current_trio_token()
        self._auto_ids = 0
        # submit() in a loop with the same function and options shares one TaskSpec.
        self._last_spec: TaskSpec | None = None

    # -- public ---------------------------------------------------------------------------

    @property
    def max_workers(self) -> int:
        return self._max_workers

    @property
    def limiter(self) -> trio.CapacityLimiter:
        """The limiter whose tokens the workers hold (``statistics()`` shows them)."""
        return self._limiter

    @property
    def tasks(self) -> Mapping[Hashable, TaskHandle[Any]]:
        """Every submitted task by id, in submission order (a read-only view)."""
        return MappingProxyType(self._decider.tasks)

    @property
    def closed(self) -> bool:
        """Whether the scheduler has finished (nothing more can be submitted)."""
        return self._decider.closed

    @overload
    def submit(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        id: Hashable | None = None,
        priority: int = 1,
        depends_on: Iterable[TaskHandle[Any] | Hashable] = (),
        timeout: float | None = None,
        retry: RetryPolicy | int | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> TaskHandle[T]: ...

    @overload
    def submit(
        self,
        fn: Callable[..., T],
        *args: Any,
        id: Hashable | None = None,
        priority: int = 1,
        depends_on: Iterable[TaskHandle[Any] | Hashable] = (),
        timeout: float | None = None,
        retry: RetryPolicy | int | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> TaskHandle[T]: ...

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        id: Hashable | None = None,  # noqa: A002 - the public name
        priority: int = 1,
        depends_on: Iterable[TaskHandle[Any] | Hashable] = (),
        timeout: float | None = None,
        retry: RetryPolicy | int | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> TaskHandle[Any]:
        """Schedule ``fn(*args, **kwargs)``; never blocks.

        A :class:`TaskHandle` among ``args`` or ``kwargs`` values is a data dependency: the
        task waits for it and gets its result in that place. ``depends_on`` holds handles or
        ids the task must wait for without taking their results. A lower ``priority`` runs
        first; ``timeout`` applies to each attempt; ``retry`` is ``None``, a number of
        retries, or a :class:`RetryPolicy`.

        It may be called from the block, from inside a running task, or from another
        thread (a plain-function task running in a worker thread, say): from another
        thread it is carried into the scheduler's trio run and waits for that.

        Raises:
            TypeError: ``fn`` is not callable, or an argument has the wrong type.
            ValueError: ``timeout <= 0`` or a bad retry setting.
            DuplicateTaskError: ``id`` is already in use.
            UnknownDependencyError: a dependency was never submitted to this scheduler.
            SchedulerClosedError: the scheduler has finished.
            Nothing is scheduled when any of these is raised.
        """
        if threading.get_ident() != self._thread:
            return self._submit_from_thread(
                fn, args, id, priority, depends_on, timeout, retry, kwargs
            )
        decider = self._decider
        if decider.closed:
            raise SchedulerClosedError("the scheduler has finished; nothing more can be submitted")
        if type(priority) is not int:
            priority = check_int("priority", priority, minimum=-(2**63))
        spec = self._spec_for(fn, timeout, retry)
        if kwargs is not None:
            if not isinstance(kwargs, Mapping):
                raise TypeError(f"kwargs must be a mapping or None, got {kwargs!r}")
            kwargs = dict(kwargs)
        if id is None:
            self._auto_ids += 1
            task_id: Hashable = f"{getattr(fn, '__name__', 'task')}#{self._auto_ids}"
        else:
            task_id = id

        now = self._now()
        task: TaskHandle[Any] = TaskHandle(task_id, spec, args, kwargs, priority, now)
        dependencies: list[TaskHandle[Any]] | None = None
        for value in args if kwargs is None else (*args, *kwargs.values()):
            if type(value) is TaskHandle:
                dependencies = self._dependency(task_id, value, dependencies)
                task._resolve = True
        if depends_on:
            if isinstance(depends_on, (str, bytes)):
                raise TypeError("depends_on must be an iterable of handles or ids, not a string")
            for dependency in depends_on:
                dependencies = self._dependency(task_id, dependency, dependencies)
        if dependencies:
            dependencies = list(dict.fromkeys(dependencies))
            task.dependencies = frozenset(d.id for d in dependencies)
            decider.add(task, dependencies, (), now)
        else:
            decider.add(task, (), (), now)
        self._start_workers()
        return task

    def stats(self) -> SchedulerStats:
        """Counts per status, retries, elapsed time and throughput; O(1)."""
        end = self._finished_at if self._finished_at is not None else self._now()
        return self._decider.counts.snapshot(end - self._started)

    def subscribe(self) -> trio.MemoryReceiveChannel[TaskEvent]:
        """A channel of :class:`TaskEvent`, one per status change from now on, closed when the
        scheduler finishes. Unbounded: a slow reader delays nothing and loses nothing."""
        self._decider.on_change = self._publish
        return self._events.subscribe()

    # -- submit helpers ---------------------------------------------------------------------

    def _spec_for(
        self, fn: Callable[..., Any], timeout: object, retry: RetryPolicy | int | None
    ) -> TaskSpec:
        last = self._last_spec
        if (
            last is not None
            and last.fn is fn
            and last.timeout is timeout
            and (last.retry is retry or (retry is None and last.retry is None))
        ):
            return last
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        checked_timeout = check_optional_number("timeout", timeout, positive=True, finite=False)
        policy = as_retry_policy(retry)
        spec = TaskSpec(fn, _is_async_callable(fn), checked_timeout, policy, owner=self)
        if checked_timeout is timeout and policy is retry:
            self._last_spec = spec  # only when the identity checks above can find it again
        return spec

    def _dependency(
        self,
        task_id: Hashable,
        dependency: TaskHandle[Any] | Hashable,
        found: list[TaskHandle[Any]] | None,
    ) -> list[TaskHandle[Any]]:
        if type(dependency) is TaskHandle:
            if dependency._scheduler is not self:
                raise UnknownDependencyError(task_id, dependency.id)
            record = dependency
        else:
            known = self._decider.tasks.get(dependency)
            if known is None:
                raise UnknownDependencyError(task_id, dependency)
            record = known
        if found is None:
            return [record]
        found.append(record)
        return found

    def _submit_from_thread(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        id: Hashable | None,  # noqa: A002
        priority: int,
        depends_on: Iterable[TaskHandle[Any] | Hashable],
        timeout: float | None,
        retry: RetryPolicy | int | None,
        kwargs: Mapping[str, Any] | None,
    ) -> TaskHandle[Any]:
        call = functools.partial(
            self.submit,
            fn,
            *args,
            id=id,
            priority=priority,
            depends_on=depends_on,
            timeout=timeout,
            retry=retry,
            kwargs=kwargs,
        )
        try:
            return trio.from_thread.run_sync(call, trio_token=self._token)
        except trio.RunFinishedError:
            raise SchedulerClosedError(
                "the scheduler has finished; nothing more can be submitted"
            ) from None

    # -- hooks the decider calls --------------------------------------------------------------

    def _publish(self, task: TaskHandle[Any], error: BaseException | None, now: float) -> None:
        if self._events:
            self._events.publish(TaskEvent(task.id, task.status, task.attempts, now, error))

    def _on_settle(self, task: TaskHandle[Any]) -> None:
        task._scope = None
        if task._done is not None:
            task._done.set()

    # -- running ----------------------------------------------------------------------------

    def _start_workers(self) -> None:
        """Start workers while there is queued work that no started worker will take, and a
        free slot for one. (A worker that has been started but has not run yet will take
        one queued task; counting those keeps a burst of submits from starting more
        workers than there is work for.)"""
        queue = self._decider.queue
        while self._workers < self._max_workers and len(queue) > self._starting:
            token = object()
            self._limiter.acquire_on_behalf_of_nowait(token)
            self._workers += 1
            self._starting += 1
            self._nursery.start_soon(self._worker, token)

    def _cancel(self, task: TaskHandle[Any]) -> None:
        scope = task._scope  # (settling the task forgets it)
        if self._decider.cancel(task, self._now()) and scope is not None:
            scope.cancel()

    async def _retry_after(self, task: TaskHandle[Any], delay: float) -> None:
        with trio.CancelScope() as scope:
            task._scope = scope
            await trio.sleep(delay)
        if task._scope is scope:
            task._scope = None
        self._decider.retry_due(task, self._now())
        self._start_workers()

    def _schedule_retry(self, task: TaskHandle[Any], delay: float | None) -> None:
        if delay is not None:
            self._nursery.start_soon(self._retry_after, task, delay)

    async def _worker(self, token: object) -> None:
        decider = self._decider
        self._starting -= 1
        try:
            while decider.queue:
                with trio.CancelScope() as scope:
                    done = 0
                    while True:
                        task = decider.pop()
                        if task is None:
                            break
                        if await self._attempt(task, scope):
                            break  # the scope is spent; the next attempt needs a fresh one
                        done += 1
                        if done == CHECKPOINT_EVERY:
                            done = 0
                            await trio.lowlevel.checkpoint()
        finally:
            self._workers -= 1
            self._limiter.release_on_behalf_of(token)

    async def _attempt(self, task: TaskHandle[Any], scope: trio.CancelScope) -> bool:
        """Run one attempt of ``task`` inside ``scope`` and report how it ended.

        Returns whether ``scope`` was cancelled (a timeout or ``cancel()``), so that the
        worker opens a fresh one for the next attempt.

        Every way user code can end is contained here, so one task can never take the
        scheduler down: an exception, an exception group of any shape (a task's own nursery
        raising while it is being cancelled gives a group mixing ``Cancelled`` with real
        errors), or a ``Cancelled`` of the attempt's own scope. Only two things leave: a
        ``Cancelled`` from *outside* (the whole scheduler is being cancelled; the task is
        recorded CANCELLED first) and ``KeyboardInterrupt``/``SystemExit`` (the program is
        ending; the task is recorded FAILED first).
        """
        decider = self._decider
        now = self._now()
        decider.start(task, now)
        task._scope = scope
        spec = task._spec
        assert spec is not None
        timeout = spec.timeout
        if timeout is not None:
            scope.deadline = now + timeout
        args = task._args
        assert args is not None
        kwargs = task._kwargs
        if task._resolve:
            args, kwargs = _resolve(args, kwargs)
        error: BaseException | None = None
        try:
            if spec.is_async:
                value = await (spec.fn(*args, **kwargs) if kwargs else spec.fn(*args))
            else:
                call = functools.partial(spec.fn, *args, **(kwargs or {}))
                value = await trio.to_thread.run_sync(call)
                if inspect.isawaitable(value):
                    value = await value  # an async callable that inspect could not recognise
        except BaseException as exc:
            error = exc
            value = None
        task._scope = None
        now = self._now()
        cut_short = task._cancel_requested
        if timeout is not None:
            # A deadline that passed while the attempt ran without a checkpoint (a thread,
            # or blocking code in an async task) was never delivered: it timed out all the
            # same.
            cut_short = cut_short or scope.cancel_called or now >= scope.deadline
            scope.deadline = math.inf
        if error is None:
            if cut_short:
                self._schedule_retry(task, decider.cut_short(task, now))
            else:
                decider.complete(task, value, now)
                self._start_workers()
            return cut_short
        cancelled, rest = _split(error, trio.Cancelled)
        fatal, rest = _split(rest, (KeyboardInterrupt, SystemExit))
        if cancelled is not None and not cut_short:
            # Not the attempt's own scope: the whole scheduler is being cancelled.
            task._cancel_requested = True
            decider.cut_short(task, now, rest or fatal)
            raise fatal if fatal is not None else cancelled
        if cut_short:
            delay = decider.cut_short(task, now, rest)
        else:
            delay = decider.attempt_failed(task, rest or fatal or error, now)
        self._schedule_retry(task, delay)
        self._start_workers()
        if fatal is not None:
            raise fatal
        return cut_short

    # -- lifetime (the three hooks of open_owner) -----------------------------------------------

    def _abort(self, error: BaseException) -> None:
        self._nursery.cancel_scope.cancel()

    async def _drain(self) -> None:
        """Leaving the block: the nursery waits for the workers and retry sleepers."""

    def _close(self, error: BaseException | None) -> None:
        """Mark every unfinished task CANCELLED and end the event streams."""
        now = self._now()
        self._decider.close(now)
        self._finished_at = now
        self._events.close()

    def _to_datetime(self, at: float) -> datetime:
        return self._wall_origin + timedelta(seconds=at - self._started)


def _resolve(
    args: tuple[Any, ...], kwargs: dict[str, Any] | None
) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
    """The arguments with each data dependency replaced by its result."""
    args = tuple(a.result if type(a) is TaskHandle else a for a in args)
    if kwargs:
        kwargs = {k: v.result if type(v) is TaskHandle else v for k, v in kwargs.items()}
    return args, kwargs


def _split(
    error: BaseException | None, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> tuple[BaseException | None, BaseException | None]:
    """``(the part of error that is kind, the rest)``; either may be None. A group is split
    leaf by leaf, keeping its structure on both sides, as ``BaseExceptionGroup.split``."""
    if error is None:
        return None, None
    if isinstance(error, kind):
        return error, None
    if isinstance(error, BaseExceptionGroup):
        return error.split(kind)
    return None, error


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
    workers = check_int("max_workers", max_workers, minimum=1)
    async with open_owner(lambda nursery: Scheduler(nursery, workers)) as scheduler:
        yield scheduler
    if raise_on_failure:
        failures: list[TaskFailed] = [t.failure() for t in scheduler._decider.failures()]
        if failures:
            raise ExceptionGroup(f"{len(failures)} task(s) did not complete", failures)
