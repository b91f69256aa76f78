"""open_scheduler, Scheduler and TaskHandle: the trio runner of the task scheduler.

The rules live in the pure :class:`~trioflow.scheduler._decider.Decider`; this module
wires them to trio. How a task flows:

1. ``submit`` checks the arguments and hands a new :class:`TaskHandle` to the decider, which
   says whether it waits (dependencies unfinished) or is ready (in the ready queue).
2. Ready tasks wait in the queue as records, not as parked trio tasks. Whenever the queue
   has work and fewer than ``max_workers`` workers hold a slot, a worker is started; a slot
   is a token of a ``trio.CapacityLimiter``.
3. A worker pops the best entry the decider allows, runs one attempt inside a cancel scope
   (the task's timeout is that scope's deadline; ``cancel()`` cancels it), and reports how
   the attempt ended to the decider, which releases dependents into the queue, dooms them,
   or asks for a retry after a delay (a small sleeper task that holds no worker slot).
4. A task that awaits other tasks from inside its attempt (``wait``, ``gather``,
   ``as_completed``, ``map``) gives its slot back while it waits and queues for one again,
   at its own priority, before it goes on; so fan-out from inside tasks never deadlocks.
5. A worker exits when nothing may start, so an idle scheduler holds no tasks at all.

The hot path, and why it looks the way it does (measured on CPython 3.11, trio 0.35, per
no-op job): a cancel scope opened per attempt costs more than a whole job of a tuned asyncio
worker pool (3 to 5 µs), so a worker keeps one scope for many attempts and opens a new one
only after that scope was cancelled (a timeout or ``cancel()``); it sets a deadline only for
attempts that have a timeout. A ``checkpoint()`` after every job costs about 5 µs, so a
worker checkpoints after every 32 attempts that did not block; an attempt that blocked has
already given the rest of the program its turn. To the user it is still one cancel scope
per attempt, and the worker is still a good citizen.

Contexts: each task runs in a copy of the ``contextvars`` context current at its
``submit``, as ``nursery.start_soon`` does. Most tasks are submitted from a context equal to
the one the scheduler was opened in; those run directly in their worker's context (a copy
of that one), checked after each attempt to be unchanged. Only a task submitted from a
changed context carries its own copy, and its coroutine is stepped inside it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import math
import random
import threading
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Mapping,
)
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast, final, overload

import trio

from .._errors import SchedulerClosedError, TaskFailed, UnknownDependencyError
from .._events import EventChannel, EventFanout
from .._owner import open_owner
from .._retry import RetryPolicy, as_retry_policy
from .._validate import check_int, check_optional_number
from ._calls import check_process_call, in_context, is_async_callable, run_in_process, split
from ._decider import Call, Decider, Resume, Source, TaskRecord, TaskSpec
from ._handle import TaskHandle
from ._inputs import Settled, resolve, scan
from ._map import MapItem, MapRun
from ._pools import Pool, PoolState
from ._records import SchedulerStats, TaskEvent, TaskStatus

__all__ = ["Scheduler", "TaskHandle", "open_scheduler"]

T = TypeVar("T")
U = TypeVar("U")

logger = logging.getLogger("trioflow")

_PENDING: Final = TaskStatus.PENDING
_WAITING: Final = TaskStatus.WAITING
_RUNNING: Final = TaskStatus.RUNNING
_COMPLETED: Final = TaskStatus.COMPLETED
_FAILED: Final = TaskStatus.FAILED
_CANCELLED: Final = TaskStatus.CANCELLED
_TIMEOUT: Final = TaskStatus.TIMEOUT

# TaskEvent(...) without the named tuple's own __new__ in between: once per status change
# for each subscribed run.
_new_tuple: Final = tuple.__new__

#: A worker that keeps finding work checkpoints after this many attempts even when none of
#: them blocked, so it stays responsive to cancellation and fair to the rest of the program.
CHECKPOINT_EVERY: Final = 32
#: ``Call.inputs`` of a task submitted as ``fn(handle)``: its one argument is an input. Only
#: submit()'s fast path uses this very tuple, so that _attempt() can tell it by identity.
_FIRST_ARGUMENT: Final = (0,)


class _AsCompleted(Generic[T]):
    """The iterator of :meth:`Scheduler.as_completed` (a class, not an async generator, so
    that leaving a loop early leaves nothing to finalize)."""

    def __init__(self, scheduler: Scheduler, tasks: list[TaskHandle[T]]) -> None:
        self._scheduler = scheduler
        self._left = len(tasks)
        self._ended: deque[TaskHandle[T]] = deque(t for t in tasks if t.status.is_terminal)
        self._arrived = trio.Event()
        for task in tasks:
            if not task.status.is_terminal:
                scheduler._watch(task, self._on_end)

    def _on_end(self, task: TaskRecord) -> None:
        self._ended.append(task)  # type: ignore[arg-type]
        self._arrived.set()

    def __aiter__(self) -> _AsCompleted[T]:
        return self

    async def __anext__(self) -> TaskHandle[T]:
        if not self._left:
            raise StopAsyncIteration
        if self._ended:
            await trio.lowlevel.checkpoint()
        else:
            await self._scheduler._waiting(self._arrived.wait)
            self._arrived = trio.Event()
        self._left -= 1
        return self._ended.popleft()


class _Worker:
    """A worker's state: the slot token it holds (``None`` once given away) and the task
    whose attempt it is running (a map() source while it runs that source's items on the
    fast path)."""

    __slots__ = ("task", "token")

    def __init__(self, token: object) -> None:
        self.token: object | None = token
        self.task: TaskRecord | Source | None = None


@final
class Scheduler:
    """Runs submitted tasks by priority, dependencies, a concurrency limit, pools, timeouts
    and retries. Get one from :func:`open_scheduler`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        max_workers: int | None,
        pools: Mapping[str, Pool],
        keep_finished: int | None,
        raise_on_failure: bool,
    ) -> None:
        self._nursery = nursery
        self._max_workers: float = math.inf if max_workers is None else max_workers
        self._limiter = trio.CapacityLimiter(self._max_workers)
        self._workers = 0  # workers holding a slot
        self._starting = 0  # workers started that have not looked at the queue yet
        self._by_trio_task: dict[trio.lowlevel.Task, _Worker] = {}
        self._decider: Decider[TaskHandle[Any]] = Decider(
            random=random.Random().random,
            on_settle=self._on_settle,
            keep_finished=keep_finished,
        )
        self._pools = {name: self._decider.pool_state(pool) for name, pool in pools.items()}
        self._events: EventFanout[TaskEvent] = EventFanout()
        self._watchers: dict[TaskRecord, list[Callable[[TaskRecord], None]]] = {}
        # What to cancel for a task that is running (its worker's scope) or waiting out a
        # retry delay (its sleeper's): kept here rather than on every queued task.
        self._scopes: dict[TaskRecord, trio.CancelScope] = {}
        self._failures: list[TaskFailed] | None = [] if raise_on_failure else None
        # The clock's own bound method: trio.current_time() without the lookups, and still
        # the run's clock, so a MockClock drives every timestamp.
        self._now = trio.lowlevel.current_clock().current_time
        self._started = self._now()
        self._wall_origin = datetime.now(UTC)
        self._finished_at: float | None = None
        self._thread = threading.get_ident()
        self._token = trio.lowlevel.current_trio_token()
        self._context = contextvars.copy_context()
        self._auto_ids = 0
        self._maps = 0
        self._timer: trio.CancelScope | None = None
        # submit() in a loop with the same function and options shares one TaskSpec.
        self._last_spec: TaskSpec | None = None
        if logger.isEnabledFor(logging.DEBUG):
            self._decider.on_change = self._observe

    # -- public ---------------------------------------------------------------------------

    @property
    def max_workers(self) -> int | None:
        """At most this many attempts run at once; ``None``: no limit but the pools'."""
        return None if self._max_workers == math.inf else int(self._max_workers)

    @property
    def limiter(self) -> trio.CapacityLimiter:
        """The limiter whose tokens the workers hold (``statistics()`` shows them)."""
        return self._limiter

    @property
    def tasks(self) -> Mapping[Hashable, TaskHandle[Any]]:
        """The submitted tasks by id, in submission order (a read-only view); with
        ``keep_finished=N``, the unfinished ones and the N most recently finished."""
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
        depends_on: Iterable[TaskHandle[Any] | Settled[Any] | Hashable] = (),
        timeout: float | None = None,
        retry: RetryPolicy | int | None = None,
        kwargs: Mapping[str, Any] | None = None,
        pool: str | Pool | None = None,
        process: bool = False,
    ) -> TaskHandle[T]: ...

    @overload
    def submit(
        self,
        fn: Callable[..., T],
        *args: Any,
        id: Hashable | None = None,
        priority: int = 1,
        depends_on: Iterable[TaskHandle[Any] | Settled[Any] | Hashable] = (),
        timeout: float | None = None,
        retry: RetryPolicy | int | None = None,
        kwargs: Mapping[str, Any] | None = None,
        pool: str | Pool | None = None,
        process: bool = False,
    ) -> TaskHandle[T]: ...

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        id: Hashable | None = None,  # noqa: A002 - the public name
        priority: int = 1,
        depends_on: Iterable[TaskHandle[Any] | Settled[Any] | Hashable] = (),
        timeout: float | None = None,
        retry: RetryPolicy | int | None = None,
        kwargs: Mapping[str, Any] | None = None,
        pool: str | Pool | None = None,
        process: bool = False,
    ) -> TaskHandle[Any]:
        """Schedule ``fn(*args, **kwargs)``; never blocks.

        A :class:`TaskHandle` among ``args`` or ``kwargs`` values (or inside a list, tuple
        or dict among them) is a data dependency: the task waits for it and gets its result
        in that place; ``settled(handle)`` there gets its outcome, however it ended.
        ``depends_on`` holds handles, ``settled(handle)`` or ids the task must wait for
        without taking their results. A lower ``priority`` runs first; ``timeout`` applies
        to each attempt; ``retry`` is ``None``, a number of retries, or a
        :class:`RetryPolicy`; ``pool`` is a :class:`Pool` or the name of one given to
        :func:`open_scheduler`.

        A plain (non-async) ``fn`` runs in a worker thread; with ``process=True`` it runs
        in a worker process instead (``trio-parallel``), for CPU-bound work that should use
        another core. Its timeout and ``cancel()`` kill the process; retries work as for any
        attempt. The function, its arguments and its result must pickle, and context
        variables do not travel: the process starts from a clean slate. At most as many
        processes as CPUs run at once; give such tasks a :class:`Pool` of that size so that
        the ones waiting for a process do not hold worker slots.

        It may be called from the block, from inside a running task, or from another
        thread (a plain-function task running in a worker thread, say): from another
        thread it is carried into the scheduler's trio run and waits for that.

        Nothing is scheduled when any of the errors below is raised.

        Raises:
            TypeError: ``fn`` is not callable, or an argument has the wrong type (with
                ``process=True``: ``fn`` is async or cannot be pickled).
            ValueError: ``timeout <= 0``, a bad retry setting, or an unknown pool name.
            ImportError: ``process=True`` without ``trio-parallel`` installed.
            DuplicateTaskError: ``id`` is already in use.
            UnknownDependencyError: a dependency was never submitted to this scheduler
                (or was forgotten under ``keep_finished``, when named by id).
            SchedulerClosedError: the scheduler has finished.
        """
        if threading.get_ident() != self._thread:
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
                pool=pool,
                process=process,
            )
            return self._from_thread(call)
        decider = self._decider
        if decider.closed:
            raise SchedulerClosedError("the scheduler has finished; nothing more can be submitted")
        if type(priority) is not int:
            priority = check_int("priority", priority, minimum=-(2**63))
        spec = self._spec_for(fn, timeout, retry, pool, process)
        if kwargs is not None:
            if not isinstance(kwargs, Mapping):
                raise TypeError(f"kwargs must be a mapping or None, got {kwargs!r}")
            kwargs = dict(kwargs)
            for key in kwargs:
                if type(key) is not str:
                    raise TypeError(f"kwargs keys must be strings, got {key!r}")
        if id is None:
            self._auto_ids += 1
            task_id: Hashable = f"{spec.name}#{self._auto_ids}"
        else:
            task_id = id
        now = self._now()
        context: contextvars.Context | None = contextvars.copy_context()
        if context == self._context:
            context = None  # the scheduler's own: the task runs in its worker's copy
        task: TaskHandle[Any]
        if not kwargs and not depends_on and context is None and len(args) < 2:
            if not args:
                # The common case: a plain call, nothing to wait for.
                task = TaskHandle(task_id, spec, args, priority, now)
                decider.add(task, (), (), now)
                self._start_workers()
                return task
            dependency = args[0]
            if type(dependency) is TaskHandle and dependency._spec.owner is self:
                # Fast path: one step of a chain or a pipeline, fn(the result of one task).
                # It is what _add_with_inputs() would find, without the general scan.
                inputs = Call(args, None, _FIRST_ARGUMENT, (dependency.id,))
                task = TaskHandle(task_id, spec, inputs, priority, now)
                decider.add(task, (dependency,), (), now)
                if task.status is _PENDING:  # (else nothing new is queued)
                    self._start_workers()
                return task
        task = self._add_with_inputs(
            task_id, spec, args, kwargs, depends_on, context, priority, now
        )
        self._start_workers()
        return task

    def stats(self) -> SchedulerStats:
        """Counts per status, retries, elapsed time and throughput; O(1)."""
        end = self._finished_at if self._finished_at is not None else self._now()
        return self._decider.counts.snapshot(end - self._started)

    def subscribe(self) -> EventChannel[TaskEvent]:
        """A channel of :class:`TaskEvent`, one per status change from now on, ended when the
        scheduler finishes. Unbounded: a slow reader delays nothing and loses nothing.

        Close the channel when you are done with it. A channel dropped without being closed
        stops being fed once it is garbage-collected; an open clone of it keeps it fed."""
        self._decider.on_change = self._observe
        return self._events.subscribe()

    async def gather(self, *handles: TaskHandle[T]) -> list[T]:
        """Wait until every one of ``handles`` has ended; return their results in order.

        Once all have ended, if any did not complete, raises the ``TaskFailed`` of the
        first such one (in argument order). Cancels nothing. From inside a running task the
        slot is given back while it waits, as for :meth:`TaskHandle.wait`.
        """
        tasks = self._own(handles)
        unfinished = [t for t in tasks if not t.status.is_terminal]
        if unfinished:
            await self._wait_for(unfinished)
        else:
            await trio.lowlevel.checkpoint()
        for task in tasks:
            if task.status is not _COMPLETED:
                raise task.failure()
        return [task.result for task in tasks]  # type: ignore[misc]  # (completed: set)

    def as_completed(self, handles: Iterable[TaskHandle[T]]) -> AsyncIterator[TaskHandle[T]]:
        """An async iterator yielding each of ``handles`` as it ends, in any terminal state,
        in the order they end (those already ended first, in the given order). Leaving the
        loop early cancels nothing. From inside a running task the slot is given back while
        it waits."""
        return _AsCompleted(self, self._own(handles))

    async def map(
        self,
        fn: Callable[[Any], Awaitable[T]] | Callable[[Any], T],
        items: Iterable[Any],
        *,
        priority: int = 1,
        timeout: float | None = None,  # noqa: ASYNC109 - per item, as submit's timeout
        retry: RetryPolicy | int | None = None,
        pool: str | Pool | None = None,
        process: bool = False,
    ) -> list[T]:
        """Run ``fn(item)`` for each item under the scheduler's rules; return the results in
        input order.

        Items get no handle and do not appear in :attr:`tasks` (they are counted in
        :meth:`stats` and seen by subscribers). They are taken from ``items`` lazily, only
        as they can start: a long generator is never read ahead. When an item fails for
        good, the others are cancelled and its ``TaskFailed`` is raised (an error raised by
        ``items`` itself is raised as it is). From inside a running task it waits like
        :meth:`gather`; cancelling the call cancels its items.
        """
        decider = self._decider
        if decider.closed:
            raise SchedulerClosedError("the scheduler has finished; nothing more can be submitted")
        priority = check_int("priority", priority, minimum=-(2**63))
        spec = self._spec_for(fn, timeout, retry, pool, process)
        self._maps += 1
        context = contextvars.copy_context()
        run = MapRun(
            f"{getattr(fn, '__name__', 'map')}/map#{self._maps}",
            spec,
            items,
            priority,
            context if context != self._context else None,
        )
        decider.report_completions = True  # items end in _item_ended
        decider.queue.push(run.source, priority)
        self._start_workers()
        try:
            await self._waiting(run.done.wait)
        finally:
            if not run.finished():
                self._abandon(run)
        if run.error is not None:
            raise run.error
        return run.results

    # -- submit helpers ---------------------------------------------------------------------

    def _spec_for(
        self,
        fn: Callable[..., Any],
        timeout: object,
        retry: RetryPolicy | int | None,
        pool: str | Pool | None,
        process: bool = False,
    ) -> TaskSpec:
        last = self._last_spec
        if (
            last is not None
            and last.fn is fn
            and last.timeout is timeout
            and (last.retry is retry or (retry is None and last.retry is None))
            and pool is None
            and last.pool is None
            and last.process is process
        ):
            return last
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        checked_timeout = check_optional_number("timeout", timeout, positive=True, finite=False)
        policy = as_retry_policy(retry)
        is_async = is_async_callable(fn)
        if process is not False:
            check_process_call(fn, process, is_async)
        spec = TaskSpec(
            fn,
            is_async,
            checked_timeout,
            policy,
            pool=self._pool_state(pool),
            owner=self,
            process=process,
        )
        if checked_timeout is timeout and policy is retry and pool is None:
            self._last_spec = spec  # only when the identity checks above can find it again
        return spec

    def _pool_state(self, pool: str | Pool | None) -> PoolState[Any] | None:
        if pool is None:
            return None
        if isinstance(pool, Pool):
            return self._decider.pool_state(pool)
        if isinstance(pool, str):
            state = self._pools.get(pool)
            if state is None:
                known = ", ".join(map(repr, self._pools)) or "none"
                raise ValueError(f"unknown pool {pool!r} (pools: {known})")
            return state
        raise TypeError(f"pool must be a Pool, a pool name or None, got {pool!r}")

    def _add_with_inputs(
        self,
        task_id: Hashable,
        spec: TaskSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        depends_on: Iterable[TaskHandle[Any] | Settled[Any] | Hashable],
        context: contextvars.Context | None,
        priority: int,
        now: float,
    ) -> TaskHandle[Any]:
        """Submit a task that has inputs, dependencies, keyword arguments or a context of
        its own; everything is checked before anything is recorded."""
        if not kwargs and not depends_on:
            # Fast path (plain arguments, a chain, a fan-in): at most handles passed as
            # themselves. A container or a settled marker needs the closer look below.
            positions: list[int] = []
            handles: list[TaskHandle[Any]] = []
            for i, value in enumerate(args):
                kind = type(value)
                if kind is TaskHandle:
                    if value._spec.owner is not self:
                        raise UnknownDependencyError(task_id, value.id)
                    positions.append(i)
                    if value not in handles:
                        handles.append(value)
                elif kind is Settled or kind is list or kind is tuple or kind is dict:
                    break
            else:
                if not positions and context is None:
                    task: TaskHandle[Any] = TaskHandle(task_id, spec, args, priority, now)
                    self._decider.add(task, (), (), now)
                    return task
                if positions:
                    call = Call(args, None, tuple(positions), tuple([d.id for d in handles]))
                    call.context = context
                else:
                    call = Call(args, None, None, (), context)
                task = TaskHandle(task_id, spec, call, priority, now)
                self._decider.add(task, handles, (), now)
                return task
        call = Call(args, kwargs)
        call.context = context
        found, inputs = scan(args, kwargs, TaskHandle)
        if depends_on:
            if isinstance(depends_on, (str, bytes)):
                raise TypeError("depends_on must be an iterable of handles or ids, not a string")
            found.extend(depends_on)
        dependencies: dict[TaskHandle[Any], None] = {}
        settled: list[TaskHandle[Any]] = []
        for dependency in found:
            if type(dependency) is Settled:
                record = self._dependency(task_id, dependency.handle)
                settled.append(record)
            else:
                record = self._dependency(task_id, dependency)
            dependencies[record] = None
        call.inputs = inputs
        call.dependencies = tuple([d.id for d in dependencies])
        task = TaskHandle(task_id, spec, call, priority, now)
        if settled:
            # A task that depends on a dependency both plainly and settled waits plainly.
            plain = {d for d in found if type(d) is not Settled}
            settled = [d for d in settled if d not in plain]
        self._decider.add(task, list(dependencies), settled, now)
        return task

    def _dependency(self, task_id: Hashable, dependency: object) -> TaskHandle[Any]:
        if type(dependency) is TaskHandle:
            if dependency._spec.owner is not self:
                raise UnknownDependencyError(task_id, dependency.id)
            return dependency
        try:
            known = self._decider.tasks.get(dependency)
        except TypeError:
            raise TypeError(
                f"depends_on holds handles or ids (hashable), got {dependency!r}"
            ) from None
        if known is None:
            raise UnknownDependencyError(task_id, dependency)
        return known

    def _from_thread(self, call: Callable[[], U]) -> U:
        try:
            return trio.from_thread.run_sync(call, trio_token=self._token)
        except trio.RunFinishedError:
            raise SchedulerClosedError(
                "the scheduler has finished; nothing more can be submitted"
            ) from None

    def _own(self, handles: Iterable[TaskHandle[T]]) -> list[TaskHandle[T]]:
        tasks = list(handles)
        for task in tasks:
            if type(task) is not TaskHandle or task._spec.owner is not self:
                raise TypeError(f"expected a TaskHandle of this scheduler, got {task!r}")
        return tasks

    def _watch(self, task: TaskRecord, watcher: Callable[[TaskRecord], None]) -> None:
        """Call ``watcher(task)`` once ``task`` ends."""
        self._decider.report_completions = True
        self._watchers.setdefault(task, []).append(watcher)

    # -- hooks the decider calls --------------------------------------------------------------

    def _observe(self, task: TaskRecord, error: BaseException | None, now: float) -> None:
        if self._events:
            self._events.publish(
                _new_tuple(TaskEvent, (task.id, task.status, task.attempts, now, error))
            )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("task %r is %s (attempt %d)", task.id, task.status.value, task.attempts)

    def _on_settle(self, task: TaskRecord) -> None:
        status = task.status
        if status is _FAILED or status is _TIMEOUT:
            logger.warning("task %r ended %s: %r", task.id, status.value, task.error)
            if self._failures is not None and type(task) is TaskHandle:
                self._failures.append(task.failure())
        if self._watchers:
            watchers = self._watchers.pop(task, None)
            if watchers is not None:
                for watcher in watchers:
                    watcher(task)
        if type(task) is MapItem:
            self._item_ended(task)

    # -- waiting from inside a task -----------------------------------------------------------

    async def _wait_for(self, tasks: list[TaskHandle[Any]]) -> None:
        """Wait until every one of ``tasks`` has ended (giving the slot back if called from
        inside a running task of this scheduler)."""
        left = len(tasks)
        done = trio.Event()

        def on_end(_task: TaskRecord) -> None:
            nonlocal left
            left -= 1
            if not left:
                done.set()

        worker = self._by_trio_task.get(trio.lowlevel.current_task())
        if worker is not None and isinstance(worker.task, TaskRecord):
            me = worker.task
            if me in tasks:
                raise RuntimeError(f"task {me.id!r} cannot wait for itself")
            # Nor for a task that cannot start before this one ends: it would wait for ever.
            downstream = self._decider.graph.downstream(me)  # type: ignore[arg-type]
            for task in tasks if downstream else ():
                if task in downstream:
                    raise RuntimeError(
                        f"task {me.id!r} cannot wait for task {task.id!r}, which waits for"
                        " it to end"
                    )
        for task in tasks:
            self._watch(task, on_end)
        try:
            await self._waiting(done.wait)
        finally:
            if not done.is_set():
                for task in tasks:
                    watchers = self._watchers.get(task)
                    if watchers is not None and on_end in watchers:
                        watchers.remove(on_end)
                        if not watchers:
                            del self._watchers[task]

    async def _waiting(self, wait: Callable[[], Awaitable[None]]) -> None:
        """``await wait()``; from inside a running task of this scheduler, with its worker
        slot (and pool place) given back meanwhile and taken again before returning."""
        worker = self._by_trio_task.get(trio.lowlevel.current_task())
        if worker is None or worker.task is None or worker.token is None:
            await wait()
            return
        task = worker.task
        # A task, or a map() source whose item runs on the fast path (it has no pool there).
        pool = task._spec.pool if isinstance(task, TaskRecord) else None
        self._give_up_slot(worker)
        self._decider.pause(pool, self._now())
        self._start_workers()
        try:
            await wait()
        except BaseException:
            # Cancelled: the attempt ends here (its worker, holding no slot, ends with
            # it), and its end gives the pool place back, so it must hold one again.
            # (A task that catches this with a scope of its own goes on without a slot.)
            self._decider.unpause(pool)
            raise
        woken = trio.Event()
        ticket = Resume(task.priority, pool, waiter=(woken, worker))
        self._decider.resume(ticket)
        self._start_workers()
        if ticket.granted:
            await trio.lowlevel.checkpoint()
            return
        try:
            await woken.wait()
        except BaseException:
            self._decider.withdraw(ticket)
            # (Granted just as it was cancelled: the slot is the worker's; it goes on.)
            raise

    def _give_up_slot(self, worker: _Worker) -> None:
        self._limiter.release_on_behalf_of(worker.token)
        worker.token = None
        self._workers -= 1

    # -- running ----------------------------------------------------------------------------

    def _start_workers(self) -> None:
        """Start workers while there is queued work that no started worker will take, and a
        free slot for one. (A worker that has been started but has not run yet will take
        one queued entry; counting those keeps a burst of submits from starting more
        workers than there is work for.) A resume ticket at the head of the queue gets the
        free slot directly: waking its task is cheaper than a new worker."""
        decider = self._decider
        queue = decider.queue
        while self._workers < self._max_workers and len(queue) > self._starting:
            head = queue.peek()
            if type(head) is Resume:
                entry = decider.pop(self._now())
                if type(entry) is Resume:
                    self._grant(entry)
                    continue
                if entry is None:
                    break
                # Something better could start instead (the ticket was held by its pool).
                decider.queue.push_front(entry, entry.priority)
            token = object()
            self._limiter.acquire_on_behalf_of_nowait(token)
            self._workers += 1
            self._starting += 1
            self._context.run(self._nursery.start_soon, self._worker, token)
        if decider.rate_held:
            self._arm_timer()

    def _grant(self, ticket: Resume) -> None:
        """Give a free slot to the paused task whose ticket came up, and wake it."""
        woken: trio.Event
        worker: _Worker
        woken, worker = ticket.waiter  # type: ignore[misc]
        token = object()
        self._limiter.acquire_on_behalf_of_nowait(token)
        worker.token = token
        self._workers += 1
        woken.set()

    def _arm_timer(self) -> None:
        wakeup = self._decider.next_wakeup()
        if wakeup is None:
            return
        if self._timer is not None:
            if wakeup < self._timer.deadline:
                self._timer.deadline = wakeup
            return
        self._timer = trio.CancelScope(deadline=wakeup)
        self._context.run(self._nursery.start_soon, self._pool_timer, self._timer)

    async def _pool_timer(self, scope: trio.CancelScope) -> None:
        """Sleep until a rate-limited pool may start again; release its held work."""
        while True:
            with scope:
                await trio.sleep_forever()
            self._decider.pools_due(self._now())
            wakeup = self._decider.next_wakeup()
            if wakeup is None:
                self._timer = None
                self._start_workers()
                return
            scope = self._timer = trio.CancelScope(deadline=wakeup)
            self._start_workers()

    def _cancel(self, task: TaskRecord) -> None:
        if threading.get_ident() != self._thread:
            # From a worker thread (a plain-function task, say): the decider and the scopes
            # are the trio run's, so the cancel is carried there, as submit() is.
            # (Once the scheduler has finished every task is terminal: nothing to cancel.)
            with contextlib.suppress(SchedulerClosedError):
                self._from_thread(functools.partial(self._cancel, task))
            return
        scope = self._scopes.get(task)
        if self._decider.cancel(task, self._now()) and scope is not None:  # type: ignore[arg-type]
            scope.cancel()

    async def _retry_after(self, task: TaskRecord, delay: float) -> None:
        with trio.CancelScope() as scope:
            self._scopes[task] = scope
            await trio.sleep(delay)
        if self._scopes.get(task) is scope:
            del self._scopes[task]
        self._decider.retry_due(task, self._now())  # type: ignore[arg-type]
        self._start_workers()

    def _after_failure(self, task: TaskRecord, delay: float | None) -> None:
        if not task.status.is_terminal:
            logger.info(
                "task %r attempt %d failed (%r); retrying in %.3g s",
                task.id,
                task.attempts,
                task.error,
                delay or 0.0,
            )
        if delay is not None:
            self._context.run(self._nursery.start_soon, self._retry_after, task, delay)

    async def _worker(self, token: object) -> None:
        decider = self._decider
        worker = _Worker(token)
        me = trio.lowlevel.current_task()
        self._by_trio_task[me] = worker
        self._starting -= 1
        now = self._now
        try:
            while True:
                with trio.CancelScope() as scope:
                    done = 0
                    while True:
                        at = now()  # when pop() hands out the entry is when its attempt starts
                        entry = decider.pop(at)
                        if entry is None:
                            return
                        if type(entry) is Resume:
                            # Hand this worker's slot to the paused task and stop.
                            self._give_up_slot(worker)
                            self._grant(entry)
                            return
                        if type(entry) is Source:
                            run: MapRun = entry.runner  # type: ignore[assignment]
                            if run.fast and decider.on_change is None:
                                if await self._drain_source(worker, entry, scope):
                                    break
                                if worker.token is None:
                                    return
                                continue
                            item = self._next_item(entry)
                            if item is None:
                                continue
                            task: TaskRecord = item
                        else:
                            task = entry  # type: ignore[assignment]
                        if await self._attempt(worker, task, scope, at):
                            break  # the scope is spent; the next attempt needs a fresh one
                        if worker.token is None:
                            return  # its slot was given away while the task waited
                        done += 1
                        if done == CHECKPOINT_EVERY:
                            done = 0
                            await trio.lowlevel.checkpoint()
                if worker.token is None:
                    return
        finally:
            del self._by_trio_task[me]
            if worker.token is not None:
                self._workers -= 1
                self._limiter.release_on_behalf_of(worker.token)
            if decider.rate_held:
                self._arm_timer()

    async def _attempt(
        self, worker: _Worker, task: TaskRecord, scope: trio.CancelScope, now: float
    ) -> bool:
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
        decider.start(task, now)  # type: ignore[arg-type]
        scopes = self._scopes
        scopes[task] = scope
        worker.task = task
        spec = task._spec
        timeout = spec.timeout
        if timeout is not None:
            scope.deadline = now + timeout
        args = task._args
        kwargs: dict[str, Any] | None = None
        context: contextvars.Context | None = None
        if type(args) is Call:
            call = args
            args, kwargs, context = call.args, call.kwargs, call.context
            inputs = call.inputs
            if inputs is _FIRST_ARGUMENT:  # fn(handle): submit()'s fast path
                args = (args[0]._value,)  # type: ignore[index]  # (completed: its result)
            elif type(inputs) is tuple:  # handles passed as themselves: put their results in
                rebuilt = list(args)  # type: ignore[arg-type]
                for i in inputs:
                    rebuilt[i] = rebuilt[i]._value  # (completed: its value is its result)
                args = tuple(rebuilt)
            elif inputs is not None:
                args, kwargs = resolve(args, kwargs, inputs, TaskHandle)  # type: ignore[arg-type]
        if TYPE_CHECKING:  # (not cast(): at run time that is a call and a subscript per attempt)
            args = cast(tuple[Any, ...], args)  # never None while the task runs
        error: BaseException | None = None
        try:
            if spec.is_async:
                coro = spec.fn(*args, **kwargs) if kwargs else spec.fn(*args)
                value = await (coro if context is None else in_context(context, coro))
            elif spec.process:
                value = await run_in_process(functools.partial(spec.fn, *args, **(kwargs or {})))
            else:
                in_thread = functools.partial(spec.fn, *args, **(kwargs or {}))
                if context is not None:
                    in_thread = functools.partial(context.run, in_thread)
                value = await trio.to_thread.run_sync(in_thread)
                if inspect.isawaitable(value):
                    value = await value  # an async callable that inspect could not recognise
        except BaseException as exc:
            error = exc
            value = None
        worker.task = None
        del scopes[task]
        if context is None and contextvars.copy_context() != self._context:
            self._retire(worker)  # the task changed this worker's context: not for reuse
        now = self._now()
        # task._cancel_requested, inlined (a property is a Python call, and this is once per
        # attempt). Read again now: cancel() may have given the task its Call meanwhile.
        now_args = task._args
        cut_short = (
            type(now_args) is Call
            and now_args.trouble is not None
            and now_args.trouble.cancel_requested
        )
        if timeout is not None:
            # A deadline that passed while the attempt ran without a checkpoint (a thread,
            # or blocking code in an async task) was never delivered: it timed out all the
            # same.
            cut_short = cut_short or scope.cancel_called or now >= scope.deadline
            scope.deadline = math.inf
        if error is None:
            if cut_short:
                self._after_failure(task, decider.cut_short(task, now))  # type: ignore[arg-type]
            else:
                decider.complete(task, value, now)  # type: ignore[arg-type]
                self._start_workers()
            return cut_short
        cancelled, rest = split(error, trio.Cancelled)
        fatal, rest = split(rest, (KeyboardInterrupt, SystemExit))
        if cancelled is not None and not cut_short:
            # Not the attempt's own scope: the whole scheduler is being cancelled.
            task._troubled().cancel_requested = True
            decider.cut_short(task, now, rest or fatal)  # type: ignore[arg-type]
            raise fatal if fatal is not None else cancelled
        if cut_short:
            delay = decider.cut_short(task, now, rest)  # type: ignore[arg-type]
        else:
            delay = decider.attempt_failed(task, rest or fatal or error, now)  # type: ignore[arg-type]
        self._after_failure(task, delay)
        self._start_workers()
        if fatal is not None:
            raise fatal
        return cut_short

    def _retire(self, worker: _Worker) -> None:
        """Hand ``worker``'s slot to a fresh worker in the scheduler's own context."""
        if worker.token is None:
            return
        token = worker.token
        worker.token = None
        self._starting += 1
        self._context.run(self._nursery.start_soon, self._worker, token)

    # -- map ------------------------------------------------------------------------------------

    def _next_item(self, source: Source) -> MapItem | None:
        """Take the next item from a ``map()`` source that may start; ``None`` when it has
        run out (or failed)."""
        run: MapRun = source.runner  # type: ignore[assignment]
        try:
            item = next(run.items)
        except StopIteration:
            self._decider.ran_out(source, self._now())
            if not run.live:
                run.done.set()
            return None
        except Exception as exc:
            # The caller's iterable failed: that is the call's error.
            if run.error is None:
                run.error = exc
            self._decider.ran_out(source, self._now())
            self._abandon(run)
            return None
        self._decider.put_back(source)
        self._start_workers()  # the source stays in the queue: another worker may take more
        index = len(run.results)
        run.results.append(None)
        task = MapItem(run, index, item, self._now())
        run.live.add(task)
        self._decider.admit(task, task._created)  # type: ignore[arg-type]
        return task

    async def _drain_source(self, worker: _Worker, source: Source, scope: trio.CancelScope) -> bool:
        """Fast path for ``map()``: run the source's items one after another in this worker.

        It skips what a plain call does not need: no record, id, status event or timestamp
        per item (nobody subscribes: checked before each item), no timeout, retry, pool or
        context (``MapRun.fast``). Items are still taken only as they start, counted in
        ``stats()`` (running, then completed/failed/cancelled), and the source stays in the
        queue so other workers run its items too; the worker goes back to the queue as soon
        as something more urgent is ready. An item that raises fails the call as any
        failure does. Returns whether ``scope`` was cancelled (the call was abandoned).
        """
        run: MapRun = source.runner  # type: ignore[assignment]
        decider = self._decider
        counts = decider.counts
        by_status = counts.by_status
        queue = decider.queue
        fn = run.spec.fn
        results = run.results
        items = run.items
        decider.put_back(source)  # other workers may take items too
        self._start_workers()
        run.scopes.add(scope)
        worker.task = source
        done = 0
        try:
            while not source.exhausted and decider.on_change is None:
                try:
                    item = next(items)
                except StopIteration:
                    source.exhausted = True
                    break
                except Exception as exc:  # the caller's iterable failed: the call's error
                    if run.error is None:
                        run.error = exc
                    self._abandon(run)
                    break
                index = len(results)
                results.append(None)
                counts.total += 1
                by_status[_RUNNING] += 1
                run.running += 1
                try:
                    results[index] = await fn(item)
                except BaseException as exc:
                    run.running -= 1
                    by_status[_RUNNING] -= 1
                    cancelled, rest = split(exc, trio.Cancelled)
                    if cancelled is not None:
                        by_status[_CANCELLED] += 1
                        if scope.cancel_called:
                            break  # abandoned: the scope is spent
                        raise cancelled from None  # from outside: the scheduler is ending
                    by_status[_FAILED] += 1
                    if run.error is None:
                        error = rest if rest is not None else exc
                        run.error = TaskFailed((run.label, index), _FAILED, error)
                        logger.warning("task %r ended failed: %r", (run.label, index), error)
                    self._abandon(run)
                    break
                run.running -= 1
                by_status[_RUNNING] -= 1
                by_status[_COMPLETED] += 1
                done += 1
                if done == CHECKPOINT_EVERY:
                    done = 0
                    await trio.lowlevel.checkpoint()
                if queue and queue.peek_priority() < source.priority:
                    break  # something more urgent is ready: back to the queue
        finally:
            worker.task = None
            run.scopes.discard(scope)
            if run.finished():
                run.done.set()
        return scope.cancel_called

    def _item_ended(self, task: MapItem) -> None:
        run = task._run
        run.live.discard(task)
        if task.status is _COMPLETED:
            run.results[task._index] = task.result
        elif run.error is None:
            run.error = task.failure()
            self._abandon(run)
        if run.finished():
            run.done.set()

    def _abandon(self, run: MapRun) -> None:
        """Stop a ``map()``: take no more items, cancel those still running or waiting."""
        run.source.exhausted = True
        for task in list(run.live):
            self._cancel(task)
        for scope in run.scopes:
            scope.cancel()
        if run.finished():
            run.done.set()

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


@asynccontextmanager
async def open_scheduler(
    *,
    max_workers: int | None = 5,
    raise_on_failure: bool = False,
    pools: Mapping[str, Pool] | None = None,
    keep_finished: int | None = None,
) -> AsyncIterator[Scheduler]:
    """Open a :class:`Scheduler` that runs its tasks in a nursery of its own.

    Leaving the block waits until every task is in a terminal state. If the body raises, or
    the surrounding scope is cancelled, every unfinished task ends CANCELLED and the
    exception propagates as itself. With ``raise_on_failure=True``, a normal exit raises an
    ``ExceptionGroup`` of one :class:`TaskFailed` per task that ended FAILED or TIMEOUT.

    Args:
        max_workers: at most this many task attempts run at once; ``None`` for no limit
            but the pools' (a crawler limited per host, say).
        raise_on_failure: raise the failures on a normal exit, as above.
        pools: named :class:`Pool` limits that tasks join with ``submit(..., pool=name)``.
        keep_finished: ``None`` keeps every finished task in :attr:`Scheduler.tasks`; an
            int N keeps only the N most recently finished, so a long-lived scheduler's
            memory stays bounded. Handles the user holds keep working.

    Raises:
        TypeError, ValueError: ``max_workers`` is not ``None`` or an int >= 1, ``keep_finished`` is
            not ``None`` or an int >= 0, ``raise_on_failure`` is not a bool, or ``pools`` is
            not a mapping of names to pools.
    """
    workers = None if max_workers is None else check_int("max_workers", max_workers, minimum=1)
    keep = None if keep_finished is None else check_int("keep_finished", keep_finished, minimum=0)
    if not isinstance(raise_on_failure, bool):
        # A string such as "no" is truthy: it would turn failures into an error on exit.
        raise TypeError(f"raise_on_failure must be a bool, got {raise_on_failure!r}")
    named: dict[str, Pool] = {}
    if pools is not None:
        if not isinstance(pools, Mapping):
            raise TypeError(f"pools must be a mapping of names to Pool, got {pools!r}")
        for name, pool in pools.items():
            if not isinstance(name, str) or not isinstance(pool, Pool):
                raise TypeError(f"pools must map names (str) to Pool, got {name!r}: {pool!r}")
            named[name] = pool

    def make(nursery: trio.Nursery) -> Scheduler:
        return Scheduler(nursery, workers, named, keep, raise_on_failure)

    async with open_owner(make) as scheduler:
        yield scheduler
    failures = scheduler._failures
    if failures:
        raise ExceptionGroup(f"{len(failures)} task(s) did not complete", failures)
