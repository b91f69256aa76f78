"""The scheduler's rules, as a pure state machine: what happens to a task at each event.

Pure and synchronous, like ``h11``'s connection state machine: no trio, no clock, no I/O.
The runner (:mod:`trioflow.scheduler._runner`) tells the decider what happened — a task was
submitted, an attempt started, returned, raised, was cut short, a retry delay ran out, a
task was cancelled, the scheduler closed — always with the current time, and the decider
updates the task's record, the dependency graph, the ready queue and the counters. What is
left for the runner to do is small and visible in the return values: run what is in the
ready queue, sleep out a retry delay, interrupt a running attempt.

Status changes go through one place, :meth:`Decider._move`, which keeps the counters and
calls the observer hooks, so the rule "each status change is one event" holds by
construction.

The record of a task is :class:`TaskRecord`; the runner's public ``TaskHandle`` subclasses
it, so there is one object per task, not a record and a handle.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final, Generic, TypeVar

from .._errors import DependencyFailed, DuplicateTaskError, TaskFailed
from .._retry import RetryPolicy
from ._graph import DependencyGraph
from ._ready_queue import ReadyQueue
from ._records import StatusCounts, TaskStatus

__all__ = ["Decider", "TaskRecord", "TaskSpec"]

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


class TaskSpec:
    """How to run a task: what is the same for every task submitted with the same function
    and options. Shared between such tasks, so a queued task carries one reference instead
    of five fields."""

    __slots__ = ("fn", "is_async", "owner", "pool", "retry", "timeout")

    def __init__(
        self,
        fn: Callable[..., Any],
        is_async: bool,
        timeout: float | None,
        retry: RetryPolicy | None,
        pool: object = None,
        owner: object = None,
    ) -> None:
        self.fn = fn
        self.is_async = is_async
        self.timeout = timeout
        self.retry = retry
        self.pool = pool
        self.owner = owner  # whoever runs the task (the runner keeps its scheduler here)


class TaskRecord:
    """One task: what to run, where it stands, how it went.

    Attributes the user reads (the handle's public face): ``id``, ``priority``, ``status``,
    ``result``, ``error``, ``attempts``, ``dependencies``. The rest is the decider's.
    """

    __slots__ = (
        "_args",
        "_cancel_requested",
        "_completed",
        "_created",
        "_errors",
        "_kwargs",
        "_resolve",
        "_spec",
        "_started",
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
        task_id: Hashable,
        spec: TaskSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        priority: int,
        now: float,
    ) -> None:
        self.id = task_id
        self.priority = priority
        self.status = _PENDING
        self.result: Any = None
        self.error: BaseException | None = None
        self.attempts = 0
        self.dependencies: frozenset[Hashable] = _NO_DEPENDENCIES
        self._spec: TaskSpec | None = spec
        self._args: tuple[Any, ...] | None = args
        self._kwargs = kwargs
        self._resolve = False  # whether args/kwargs hold inputs to resolve before a run
        self._errors: list[BaseException] | None = None
        self._cancel_requested = False
        self._created = now
        self._started: float | None = None
        self._completed: float | None = None

    @property
    def retries(self) -> int:
        """Retries made: attempts started beyond the first."""
        return self.attempts - 1 if self.attempts > 1 else 0

    @property
    def done(self) -> bool:
        """Whether the task is in a terminal state."""
        return self.status.is_terminal

    def failure(self) -> TaskFailed:
        """The :class:`TaskFailed` that stands for this task not completing."""
        return TaskFailed(self.id, self.status, self.error, self._errors or ())


R = TypeVar("R", bound=TaskRecord)
Observer = Callable[[R, BaseException | None, float], None]


class Decider(Generic[R]):
    """The tasks of one scheduler and the rules that move them.

    Args:
        random: a source of floats in ``[0, 1)`` for retry jitter.
        on_change: called as ``on_change(task, error, now)`` after every status change
            (``task.status`` is the new one); ``None`` when nobody watches.
        on_settle: called with each task that reaches a terminal state, after
            ``on_change``.
    """

    def __init__(
        self,
        *,
        random: Callable[[], float],
        on_settle: Callable[[R], None],
        on_change: Observer[R] | None = None,
    ) -> None:
        self.tasks: dict[Hashable, R] = {}
        self.queue: ReadyQueue[R] = ReadyQueue()
        self.graph: DependencyGraph[R] = DependencyGraph()
        self.counts = StatusCounts()
        self.closed = False
        self.on_change = on_change
        self._on_settle = on_settle
        self._random = random

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
        """
        tasks = self.tasks
        if task.id in tasks:
            raise DuplicateTaskError(task.id)
        tasks[task.id] = task
        self.counts.add(_PENDING)
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
            if status.is_terminal and dependency not in settled:
                self._settle(task, _CANCELLED, None, self._doomed_by(task, dependency), now)
                return
            if not status.is_terminal:
                unfinished.append(dependency)
        if self.graph.add(task, unfinished, [d for d in settled if d in unfinished]):
            self._move(task, _WAITING, None, now)
        else:
            if self.on_change is not None:
                self.on_change(task, None, now)
            self.queue.push(task, task.priority)

    def pop(self) -> R | None:
        """The best ready task, taken off the queue; ``None`` when there is none."""
        queue = self.queue
        while queue:
            task = queue.pop()
            if task.status is _PENDING:
                return task
            # Cancelled while it was queued: it stayed in the queue and is dropped here.
        return None

    def start(self, task: R, now: float) -> None:
        """An attempt of ``task`` (just popped) starts."""
        task.attempts += 1
        if task.attempts == 1:
            task._started = now
        else:
            self.counts.retries += 1
        self._move(task, _RUNNING, None, now)

    def complete(self, task: R, value: object, now: float) -> None:
        """The attempt returned ``value``: the task completed; release its dependents."""
        self._settle(task, _COMPLETED, value, None, now)
        for ready in self.graph.completed(task):
            self._move(ready, _PENDING, None, now)
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
        final = _TIMEOUT if timed_out else _FAILED
        policy = task._spec.retry if task._spec is not None else None
        if policy is None:
            self._fail(task, final, error, now)
            return None
        if task._errors is None:
            task._errors = []
        task._errors.append(error)
        if not policy.should_retry(error, task.attempts - 1):
            self._fail(task, final, error, now)
            return None
        task.error = error
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
            self._fail(task, _CANCELLED, raised, now)
            return None
        timeout = task._spec.timeout if task._spec is not None else None
        error = TimeoutError(
            f"task {task.id!r} timed out after {timeout} s (attempt {task.attempts})"
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
        task._cancel_requested = True
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
                task._cancel_requested = True
                self.graph.failed(task)
                self._settle(task, _CANCELLED, None, None, now)

    def failures(self) -> list[R]:
        """The tasks that ended FAILED or TIMEOUT, in submission order."""
        counts = self.counts
        if not (counts[_FAILED] or counts[_TIMEOUT]):
            return []
        return [t for t in self.tasks.values() if t.status is _FAILED or t.status is _TIMEOUT]

    # -- the one place where statuses change ---------------------------------------------------

    def _move(self, task: R, status: TaskStatus, error: BaseException | None, now: float) -> None:
        self.counts.move(task.status, status)
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
        task.result = result
        if error is not None:
            task.error = error
        task._completed = now
        task._args = task._kwargs = None  # let the arguments be collected
        self._move(task, status, error, now)
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

    @staticmethod
    def _doomed_by(task: TaskRecord, dependency: TaskRecord) -> DependencyFailed:
        upstream_error = dependency.error
        root = upstream_error.root if isinstance(upstream_error, DependencyFailed) else None
        return DependencyFailed(task.id, dependency.id, dependency.id if root is None else root)
