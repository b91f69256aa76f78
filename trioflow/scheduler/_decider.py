"""The scheduler's rules, as a pure state machine: what happens to a task at each event.

Pure and synchronous, like ``h11``'s connection state machine: no trio, no clock, no I/O.
The runner (:mod:`trioflow.scheduler._runner`) tells the decider what happened (a task was
submitted, an attempt started, returned, raised, was cut short, a retry delay ran out, a
task was cancelled, a running task paused to wait for others, the scheduler closed), always
with the current time, and the decider updates the task's record, the dependency graph, the
ready queue, the pools and the counters. What is left for the runner to do is small and
visible in the return values: run what :meth:`Decider.pop` hands out, sleep out a retry
delay, interrupt a running attempt, wake up when a rate-limited pool may start again.

Status changes go through one place, :meth:`Decider._move`, which keeps the counters and
calls the observer, so the rule "each status change is one event" holds by construction.

The ready queue holds three kinds of entry, all ordered by (priority, arrival):

* a :class:`TaskRecord` that is ready to run;
* a :class:`Resume` ticket: a running task that waited for other tasks (giving its worker
  slot back meanwhile) and now wants a slot again, at its own priority;
* a :class:`Source`: a ``map()`` call whose next item may start; it stays at its place in
  the queue until its items run out, so items are taken only as they can start.

The record of a task is :class:`TaskRecord`; the runner's public ``TaskHandle`` subclasses
it, so there is one object per task, not a record and a handle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final, Generic, TypeVar

from .._errors import DependencyFailed, DuplicateTaskError, TaskFailed
from .._retry import RetryPolicy
from ._graph import DependencyGraph
from ._pools import Pool, PoolState
from ._ready_queue import ReadyQueue
from ._records import StatusCounts, TaskStatus

__all__ = ["Call", "Decider", "Resume", "Source", "TaskRecord", "TaskSpec", "Trouble"]

# Module constants, not ``TaskStatus.X`` at each use: on CPython 3.11 an enum member lookup
# through the class costs about ten times a global lookup, and these are on the per-task path.
_PENDING: Final = TaskStatus.PENDING
_WAITING: Final = TaskStatus.WAITING
_RUNNING: Final = TaskStatus.RUNNING
_COMPLETED: Final = TaskStatus.COMPLETED
_FAILED: Final = TaskStatus.FAILED
_TIMEOUT: Final = TaskStatus.TIMEOUT
_CANCELLED: Final = TaskStatus.CANCELLED
_NO_DEPENDENCIES: Final[frozenset[Hashable]] = frozenset()
# ``status in _ENDED``, not ``status.is_terminal``: a property call is a Python call.
_ENDED: Final = frozenset({_COMPLETED, _FAILED, _TIMEOUT, _CANCELLED})


class TaskSpec:
    """How to run a task: what is the same for every task submitted with the same function
    and options. Shared between such tasks, so a queued task carries one reference instead
    of six fields."""

    __slots__ = ("fn", "is_async", "name", "owner", "pool", "process", "retry", "timeout")

    def __init__(
        self,
        fn: Callable[..., Any],
        is_async: bool,
        timeout: float | None,
        retry: RetryPolicy | None,
        pool: PoolState[Any] | None = None,
        owner: object = None,
        process: bool = False,
    ) -> None:
        self.fn = fn
        self.process = process  # a plain function run in a worker process
        self.name: str = getattr(fn, "__name__", None) or "task"
        self.is_async = is_async
        self.timeout = timeout
        self.retry = retry
        self.pool = pool
        self.owner = owner  # whoever runs the task (the runner keeps its scheduler here)


class Call:
    """Everything about a task beyond ``fn(*args)``: keyword arguments, the inputs to put in
    place before it runs, the context it runs in, the ids of its dependencies, and (made
    when it first happens) the :class:`Trouble` it ran into.

    Most tasks need none of it, so a record holds its positional arguments as a plain tuple
    and only a task that needs more holds a ``Call`` in the same place: one slot instead of
    five on every queued task. (The record is the unit of the scheduler's memory use: a
    million queued tasks are a million records.)
    """

    __slots__ = ("args", "context", "dependencies", "inputs", "kwargs", "trouble")

    def __init__(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None = None,
        inputs: Any = None,
        dependencies: tuple[Hashable, ...] = (),
        context: Any = None,
    ) -> None:
        self.args: tuple[Any, ...] | None = args
        self.kwargs = kwargs
        #: Where inputs sit among the arguments (the runner's): ``None``, the positions of
        #: handles passed as themselves, or a fuller description.
        self.inputs = inputs
        #: The ids of the dependencies, distinct: a tuple, not the frozenset that
        #: :attr:`TaskRecord.dependencies` makes of it, because every waiting task has one
        #: and a one-id tuple is a quarter of the size (and a fifth of the time to make).
        self.dependencies = dependencies
        self.context = context  # the context to run in, when not the scheduler's own
        self.trouble: Trouble | None = None


class Trouble:
    """What only a task that failed an attempt or was cancelled needs to remember."""

    __slots__ = ("cancel_requested", "errors")

    def __init__(self) -> None:
        self.cancel_requested = False
        self.errors: list[BaseException] = []


class TaskRecord:
    """One task: what to run, where it stands, how it went.

    Attributes the user reads (the handle's public face): ``id``, ``priority``, ``status``,
    ``result``, ``error``, ``attempts``, ``dependencies``. The rest is the decider's and
    the runner's. A queued task is kept small (it is the unit of the scheduler's memory
    use): what most tasks never need lives in a :class:`Call` or a :class:`Trouble`, made
    only for the tasks that need one.
    """

    __slots__ = (
        "_args",
        "_completed",
        "_created",
        "_spec",
        "_started",
        "_value",
        "attempts",
        "id",
        "priority",
        "status",
    )

    def __init__(
        self,
        task_id: Hashable,
        spec: TaskSpec,
        args: tuple[Any, ...] | Call,
        priority: int,
        now: float,
    ) -> None:
        self.id = task_id
        self.priority = priority
        self.status = _PENDING
        self._value: Any = None  # the result once COMPLETED, else the last error (or None)
        self.attempts = 0
        self._spec: TaskSpec = spec
        self._args: tuple[Any, ...] | Call | None = args
        self._created = now
        self._started: float | None = None
        self._completed: float | None = None

    @property
    def result(self) -> Any:
        """The task's value once it has ``COMPLETED``, else ``None``."""
        return self._value if self.status is _COMPLETED else None

    @property
    def error(self) -> BaseException | None:
        """The last attempt's exception (or why the task was cancelled), else ``None``;
        kept while a retry waits and runs. (One slot holds the result or the error: a
        task never needs both, and the slot saved is on every queued task.)"""
        return None if self.status is _COMPLETED else self._value

    @property
    def dependencies(self) -> frozenset[Hashable]:
        """The ids of every task this one depends on (data, settled and ordering alike)."""
        call = self._args
        return frozenset(call.dependencies) if type(call) is Call else _NO_DEPENDENCIES

    @property
    def retries(self) -> int:
        """Retries made: attempts started beyond the first."""
        return self.attempts - 1 if self.attempts > 1 else 0

    @property
    def done(self) -> bool:
        """Whether the task is in a terminal state."""
        return self.status.is_terminal

    @property
    def _cancel_requested(self) -> bool:
        call = self._args
        return type(call) is Call and call.trouble is not None and call.trouble.cancel_requested

    def _troubled(self) -> Trouble:
        """The task's :class:`Trouble`, made (with the :class:`Call` that holds it) on first
        use."""
        call = self._args
        if type(call) is not Call:
            call = self._args = Call(call if call is not None else ())  # type: ignore[arg-type]
        trouble = call.trouble
        if trouble is None:
            trouble = call.trouble = Trouble()
        return trouble

    def failure(self) -> TaskFailed:
        """The :class:`TaskFailed` that stands for this task not completing."""
        call = self._args
        errors = call.trouble.errors if type(call) is Call and call.trouble is not None else ()
        return TaskFailed(self.id, self.status, self.error, errors)


R = TypeVar("R", bound=TaskRecord)


class Resume:
    """A running task that paused to wait for other tasks and wants a worker slot back (at
    its own priority, and its pool place if it has a pool)."""

    __slots__ = ("cancelled", "granted", "pool", "priority", "status", "waiter")

    def __init__(self, priority: int, pool: PoolState[Any] | None, waiter: object = None) -> None:
        self.status = None  # not a task: never taken for a ready one by pop()'s fast path
        self.priority = priority
        self.pool = pool
        self.granted = False
        self.cancelled = False
        self.waiter = waiter  # the runner's (what to wake)


class Source:
    """A ``map()`` call in the ready queue: its next item may start when it is popped."""

    __slots__ = ("exhausted", "pool", "priority", "runner", "status")

    def __init__(self, priority: int, pool: PoolState[Any] | None, runner: object) -> None:
        self.status = None  # not a task: never taken for a ready one by pop()'s fast path
        self.priority = priority
        self.pool = pool
        self.exhausted = False
        self.runner = runner  # the runner's (the iterator and the results)


Entry = TaskRecord | Resume | Source
Observer = Callable[[R, BaseException | None, float], None]


class Decider(Generic[R]):
    """The tasks of one scheduler and the rules that move them.

    Args:
        random: a source of floats in ``[0, 1)`` for retry jitter.
        on_settle: called with each task that ends without completing, and with each one
            that completes too once :attr:`report_completions` is set; after the status
            change is observed.
        on_change: called as ``on_change(task, error, now)`` after every status change
            (``task.status`` is the new one); ``None`` when nobody watches.
        keep_finished: how many finished tasks stay in :attr:`tasks` (``None``: all).
    """

    def __init__(
        self,
        *,
        random: Callable[[], float],
        on_settle: Callable[[R], None],
        on_change: Observer[R] | None = None,
        keep_finished: int | None = None,
    ) -> None:
        self.tasks: dict[Hashable, R] = {}
        self.queue: ReadyQueue[Any] = ReadyQueue()
        self.graph: DependencyGraph[R] = DependencyGraph()
        self.counts = StatusCounts()
        self._by_status = self.counts.by_status
        self.closed = False
        #: Whether :meth:`_settle` reports completed tasks to ``on_settle`` (failures are
        #: always reported); the runner sets it once something waits for completions.
        self.report_completions = False
        self.on_change = on_change
        self._on_settle = on_settle
        self._random = random
        self._keep = keep_finished
        self._finished: deque[R] = deque()
        self._pools: dict[Pool, PoolState[Any]] = {}
        #: Set when something was held back by a rate limit: the runner should ask
        #: :meth:`next_wakeup` when to call :meth:`pools_due`.
        self.rate_held = False

    # -- pools ----------------------------------------------------------------------------

    def pool_state(self, pool: Pool) -> PoolState[Any]:
        """The state of ``pool`` in this scheduler (made on first use)."""
        state = self._pools.get(pool)
        if state is None:
            state = self._pools[pool] = PoolState(pool)
        return state

    def next_wakeup(self) -> float | None:
        """The earliest time at which a pool held back only by its rate may start again."""
        self.rate_held = False
        times = [t for s in self._pools.values() if (t := s.wakeup()) is not None]
        return min(times) if times else None

    def pools_due(self, now: float) -> None:
        """Time has passed: send held work back to the queue where its pool allows now."""
        for state in self._pools.values():
            self._release_held(state, now)

    # -- events from the runner ---------------------------------------------------------------

    def add(
        self,
        task: R,
        dependencies: Sequence[R] = (),
        settled: Sequence[R] = (),
        now: float = 0.0,
    ) -> None:
        """A task was submitted, depending on ``dependencies`` (records of this decider,
        distinct) of which those also in ``settled`` release it however they end.

        Raises:
            DuplicateTaskError: its id is in use; nothing changes.
            TypeError: its id is not hashable; nothing changes.
        """
        tasks = self.tasks
        try:
            in_use = task.id in tasks
        except TypeError:
            raise TypeError(f"id must be hashable, got {task.id!r}") from None
        if in_use:
            raise DuplicateTaskError(task.id)
        tasks[task.id] = task
        counts = self.counts
        counts.total += 1
        self._by_status[_PENDING] += 1
        if not dependencies:
            if self.on_change is not None:
                self.on_change(task, None, now)
            self.queue.push(task, task.priority)
            return
        unfinished = []
        for dependency in dependencies:
            status = dependency.status
            if status is _COMPLETED:
                continue
            if status in _ENDED:
                if dependency in settled:
                    continue
                self._settle(task, _CANCELLED, None, self._doomed_by(task, dependency), now)
                return
            unfinished.append(dependency)
        if self.graph.add(
            task, unfinished, [d for d in settled if d in unfinished] if settled else ()
        ):
            # _move(task, _WAITING), inlined: a chain or a pipeline does this once per task.
            by_status = self._by_status
            by_status[_PENDING] -= 1
            by_status[_WAITING] += 1
            task.status = _WAITING
            if self.on_change is not None:
                self.on_change(task, None, now)
        else:
            if self.on_change is not None:
                self.on_change(task, None, now)
            self.queue.push(task, task.priority)

    def admit(self, task: R, now: float) -> None:
        """A ``map()`` item was taken from its source and starts at once: it is counted and
        observed like any task, but not kept in :attr:`tasks`."""
        self.counts.add(_PENDING)
        if self.on_change is not None:
            self.on_change(task, None, now)

    def pop(self, now: float) -> Entry | None:
        """The best entry that may start at ``now``, taken off the queue; ``None`` when there
        is none. Entries whose pool is full (or not due yet) are held back in the pool."""
        queue = self.queue
        while True:
            try:
                entry = queue.pop()
            except IndexError:  # (not ``while queue``: ReadyQueue.__bool__ is a Python call)
                return None
            if entry.status is _PENDING and entry._spec.pool is None:
                return entry  # type: ignore[no-any-return]  # the common case: a plain task
            kind = type(entry)
            if kind is Resume:
                live, pool = not entry.cancelled, entry.pool
            elif kind is Source:
                live, pool = not entry.exhausted, entry.pool
            else:  # a task, cancelled while it was queued unless PENDING
                live, pool = entry.status is _PENDING, entry._spec.pool
            if pool is not None:
                if pool.returned:
                    pool.returned -= 1  # it may be one its pool sent back: see _release_held
                if not live:
                    # Dropped. If its pool had sent it back, the place it was sent back for
                    # is free again: the next held entry gets it.
                    self._release_held(pool, now)
                    continue
                if kind is Resume:
                    if not pool.has_place():
                        pool.resumes.push(entry, entry.priority)
                        continue
                    pool.running += 1  # a place, not a start: the rate does not apply
                    if pool.held:
                        # While this ticket was on its way back (counted in ``returned``)
                        # no wake-up was asked for the work the rate holds: ask now.
                        self.rate_held = True
                elif not pool.may_start(now):
                    pool.held.push(entry, entry.priority)
                    if pool.has_place():
                        self.rate_held = True  # only the rate holds it back: wake up then
                    continue
            elif not live:
                continue
            if kind is Resume:
                entry.granted = True
            return entry  # type: ignore[no-any-return]

    def ran_out(self, source: Source, now: float) -> None:
        """``pop()`` handed out ``source`` and it had no item left: it is done, and the
        start its pool let it through for goes to the pool's held work."""
        source.exhausted = True
        if source.pool is not None:
            self._release_held(source.pool, now)

    def put_back(self, source: Source) -> None:
        """The source gave out an item and has more: it keeps its place at the front."""
        self.queue.push_front(source, source.priority)

    def start(self, task: R, now: float) -> None:
        """An attempt of ``task`` (just popped, or a ``map()`` item) starts."""
        task.attempts += 1
        if task.attempts == 1:
            task._started = now
        else:
            self.counts.retries += 1
        pool = task._spec.pool
        if pool is not None:
            pool.started(now)
            if pool.held:
                self.rate_held = True  # the next held one may be due one interval from now
        # _move(task, _RUNNING), inlined: this and complete() run once per task.
        by_status = self._by_status
        by_status[task.status] -= 1
        by_status[_RUNNING] += 1
        task.status = _RUNNING
        if self.on_change is not None:
            self.on_change(task, None, now)

    def pause(self, pool: PoolState[Any] | None, now: float) -> None:
        """A running task (of ``pool``, if any) waits for other tasks: its pool place is free
        meanwhile (its worker slot is the runner's to give back)."""
        if pool is not None:
            pool.running -= 1
            self._release_held(pool, now)

    def resume(self, ticket: Resume) -> None:
        """The paused task wants to go on: queue its ticket at its priority."""
        self.queue.push(ticket, ticket.priority)

    def unpause(self, pool: PoolState[Any] | None) -> None:
        """The paused task's wait was cut short (cancelled) before it queued to go on: it
        holds its pool place again at once, without queueing for it.

        Its attempt gave the place back in :meth:`pause`, and the attempt's end (almost
        always right after: the cancellation unwinds it) gives it back again: without
        this the pool would count one place too many as free, for good. Until then the
        pool may be over its limit by this task; nothing else of the pool starts
        meanwhile."""
        if pool is not None:
            pool.running += 1

    def withdraw(self, ticket: Resume) -> None:
        """The paused task was cancelled while it queued to go on: drop its ticket. Not
        granted, it holds its pool place again at once, as for :meth:`unpause`; granted,
        it already does."""
        ticket.cancelled = True
        if not ticket.granted:
            self.unpause(ticket.pool)

    def complete(self, task: R, value: object, now: float) -> None:
        """The attempt returned ``value``: the task completed; release its dependents."""
        if task._spec.pool is not None:
            self._attempt_ended(task, now)
        if self.on_change is None and self._keep is None and not self.report_completions:
            # _settle(task, _COMPLETED), inlined for the case where nobody watches.
            task._value = value
            task._completed = now
            if type(task._args) is Call:
                task._args.args = task._args.kwargs = task._args.context = None
            else:
                task._args = None
            by_status = self._by_status
            by_status[task.status] -= 1
            by_status[_COMPLETED] += 1
            task.status = _COMPLETED
        else:
            self._settle(task, _COMPLETED, value, None, now)
        for ready in self.graph.completed(task):
            # _move(ready, _PENDING), inlined: a chain or a pipeline does this once per task.
            by_status = self._by_status
            by_status[_WAITING] -= 1
            by_status[_PENDING] += 1
            ready.status = _PENDING
            if self.on_change is not None:
                self.on_change(ready, None, now)
            self.queue.push(ready, ready.priority)

    def attempt_failed(
        self, task: R, error: BaseException, now: float, *, timed_out: bool = False
    ) -> float | None:
        """The attempt raised ``error`` (or timed out with it, when ``timed_out``).

        Returns the retry delay when the task will be retried after a wait: it is WAITING
        and the runner calls :meth:`retry_due` once the delay is over. Returns ``None``
        when there is nothing to wait for: the task failed for good, or is retried at once
        (back in the queue).
        """
        if task._spec.pool is not None:
            self._attempt_ended(task, now)
        final = _TIMEOUT if timed_out else _FAILED
        policy = task._spec.retry
        if policy is None:
            self._fail(task, final, error, now)
            return None
        task._troubled().errors.append(error)
        if not policy.should_retry(error, task.attempts - 1):
            self._fail(task, final, error, now)
            return None
        task._value = error
        self._move(task, _WAITING, error, now)
        delay = policy.delay_for(task.attempts, self._random)
        if delay > 0:
            return delay
        self.retry_due(task, now)
        return None

    def cut_short(self, task: R, now: float, raised: BaseException | None = None) -> float | None:
        """The attempt was cut short: ``cancel()`` or its timeout. ``raised`` is what the
        task raised on its way out besides the cancellation (its own nursery's errors, say),
        if anything; it is kept as the context of the recorded error. Returns what
        :meth:`attempt_failed` returns."""
        if task._cancel_requested:
            if task._spec.pool is not None:
                self._attempt_ended(task, now)
            self._fail(task, _CANCELLED, raised, now)
            return None
        error = TimeoutError(
            f"task {task.id!r} timed out after {task._spec.timeout} s (attempt {task.attempts})"
        )
        error.__context__ = raised
        return self.attempt_failed(task, error, now, timed_out=True)

    def retry_due(self, task: R, now: float) -> None:
        """A retry delay is over: the task is ready again, behind its equals."""
        if task.status is _WAITING:
            self._move(task, _PENDING, None, now)
            self.queue.push(task, task.priority)

    def cancel(self, task: R, now: float) -> bool:
        """``handle.cancel()``: returns True when something runs for the task (an attempt
        or a retry delay) that the runner must interrupt; otherwise the task is CANCELLED
        now, and so is everything that depends on it."""
        if task.status.is_terminal:
            return False
        task._troubled().cancel_requested = True
        if task.status is _RUNNING:
            return True
        retrying = task.status is _WAITING and not self.graph.is_waiting(task)
        self._fail(task, _CANCELLED, None, now)
        return retrying

    def close(self, now: float) -> None:
        """The scheduler is finished: every task not yet terminal ends CANCELLED."""
        self.closed = True
        counts = self.counts
        if counts.finished == counts.total:
            return
        for task in list(self.tasks.values()):
            if not task.status.is_terminal:
                task._troubled().cancel_requested = True
                self.graph.failed(task)
                self._settle(task, _CANCELLED, None, None, now)

    def failures(self) -> list[R]:
        """The tasks still in :attr:`tasks` that ended FAILED or TIMEOUT, in order."""
        counts = self.counts
        if not (counts[_FAILED] or counts[_TIMEOUT]):
            return []
        return [t for t in self.tasks.values() if t.status is _FAILED or t.status is _TIMEOUT]

    # -- the one place where statuses change ---------------------------------------------------

    def _move(self, task: R, status: TaskStatus, error: BaseException | None, now: float) -> None:
        by_status = self._by_status
        by_status[task.status] -= 1
        by_status[status] += 1
        task.status = status
        if self.on_change is not None:
            self.on_change(task, error, now)

    def _settle(
        self,
        task: R,
        status: TaskStatus,
        result: object,
        error: BaseException | None,
        now: float,
    ) -> None:
        """Put ``task`` in terminal ``status``; the graph is the caller's business."""
        if status is _COMPLETED:
            task._value = result
        elif error is not None:
            task._value = error  # (else the last attempt's error stays)
        task._completed = now
        call = task._args
        if type(call) is Call:  # let the arguments be collected, keep the dependencies
            call.args = call.kwargs = call.context = None
        else:
            task._args = None
        self._move(task, status, error, now)
        if self._keep is not None:
            self._forget_old(task)
        if status is not _COMPLETED or self.report_completions:
            self._on_settle(task)

    def _fail(self, task: R, status: TaskStatus, error: BaseException | None, now: float) -> None:
        """End ``task`` without completing it, and everything that depends on it."""
        self._settle(task, status, None, error, now)
        ready, doomed = self.graph.failed(task)
        for dependent, upstream in doomed:
            self._settle(dependent, _CANCELLED, None, self._doomed_by(dependent, upstream), now)
        for dependent in ready:
            self._move(dependent, _PENDING, None, now)
            self.queue.push(dependent, dependent.priority)

    def _forget_old(self, task: R) -> None:
        """Keep only the ``keep_finished`` most recently finished tasks in :attr:`tasks`."""
        if self.tasks.get(task.id) is not task:
            return  # a map() item, or a task already forgotten
        finished = self._finished
        finished.append(task)
        while len(finished) > self._keep:  # type: ignore[operator]
            old = finished.popleft()
            if self.tasks.get(old.id) is old:
                del self.tasks[old.id]

    @staticmethod
    def _doomed_by(task: TaskRecord, dependency: TaskRecord) -> DependencyFailed:
        upstream_error = dependency.error
        root = upstream_error.root if isinstance(upstream_error, DependencyFailed) else None
        return DependencyFailed(task.id, dependency.id, dependency.id if root is None else root)

    # -- pools, inside ---------------------------------------------------------------------------

    def _attempt_ended(self, task: R, now: float) -> None:
        pool = task._spec.pool
        assert pool is not None
        pool.running -= 1
        self._release_held(pool, now)

    def _release_held(self, pool: PoolState[Any], now: float) -> None:
        """Send held work back to the ready queue while the pool has room for it: paused
        tasks (a place is all they need) and held work (a start: the rate must allow it),
        the better priority first."""
        held, resumes = pool.held, pool.resumes
        if not (held or resumes) or not pool.has_room():
            return
        back = []
        may_start = now >= pool.next_start
        while pool.has_room():
            if resumes and not (
                may_start and held and held.peek_priority() < resumes.peek_priority()
            ):
                back.append(resumes.pop())
            elif may_start and held:
                back.append(held.pop())
                if pool.interval:
                    may_start = False  # one start per interval: the rest wait for the next one
            else:
                break
            pool.returned += 1
        if held and not pool.returned and pool.has_place():
            self.rate_held = True  # only the rate holds it back: a wake-up is needed
        for entry in reversed(back):
            self.queue.push_front(entry, entry.priority)
