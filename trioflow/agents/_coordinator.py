"""open_coordinator: tasks routed to agents by capability, reports turned into outcomes.

The coordinator is the thin trio layer over two deciders. The pure
:class:`~trioflow.agents._dispatch.Dispatcher` decides who gets which task, whether a report
counts (fencing tokens), and what a failed attempt leads to; the
:class:`~trioflow.agents._supervisor.Supervisor` runs the agents' lifecycle. What is left
here is routing: ``submit`` and ``run_all`` hand tasks to the dispatcher, every report from
the transport goes to the dispatcher, and each :class:`~trioflow.agents._dispatch.Outcome`
that comes back is carried out by :meth:`Coordinator._apply`: assignments are delivered
through the transport, finished tasks wake their handles and batches, retries that must
wait are put on a timer. Messages and delegated requests are routed here too.

**The report path** is the hot path of every run (a task costs one submit and one report).
With agents in this trio run it is one synchronous call from the agent's work loop,
:meth:`Coordinator._on_result_and_next`, the one marked fast path: the dispatcher finishes the
task and picks the agent's next one (``Dispatcher.complete_and_take``), and that assignment
is the call's return value, so it never goes through the transport's work channel. Every
other report goes report -> ``Dispatcher.complete`` (or ``fail`` ...) -> ``_apply``, which
carries out the :class:`~trioflow.agents._dispatch.Outcome`. ``run_all`` submits in batches
(``Dispatcher.submit_many``) with no handle per task. No event is made unless someone
subscribed. Statuses and event kinds are read from module constants: on CPython 3.11 an
enum class attribute lookup costs about ten times a global's.

**Retry delays** hold no agent slot: a task waiting out its delay sits in one heap here, and
one timer task (started the first time a delay is needed) sleeps until the earliest is due,
under a cancel scope whose deadline moves when an earlier one arrives.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import threading
import weakref
from collections.abc import AsyncIterator, Hashable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, final

import trio

from .._errors import (
    AgentGone,
    AgentUnavailableError,
    DelegationDeadlock,
    DuplicateTaskError,
    NoCapableAgentError,
    SchedulerClosedError,
    TaskFailed,
    TaskRejected,
    UnknownAgentError,
    UnknownTaskError,
)
from .._events import EventChannel, EventFanout
from .._owner import open_owner
from .._retry import RetryPolicy
from .._validate import check_hashable, check_number, check_optional_number
from ._agent import Agent
from ._dispatch import DEFAULT_RETRY, Dispatcher, Outcome, TaskRecord, resolve_retry
from ._messages import Message
from ._records import (
    AgentInfo,
    AgentStats,
    AgentStatus,
    AssignmentStatus,
    CoordinatorEvent,
    CoordinatorStats,
    EventKind,
    RunningTask,
)
from ._supervision import RestartPolicy
from ._supervisor import Supervisor
from .transport._memory import InMemoryTransport
from .transport._protocol import (
    AgentRegistration,
    AgentSettings,
    Inbound,
    Transport,
    WorkItem,
)
from .transport._store import TaskStore

__all__ = ["AssignmentHandle", "Coordinator", "open_coordinator"]

logger = logging.getLogger("trioflow.agents")

_QUEUED: Final = AssignmentStatus.QUEUED
_ASSIGNED: Final = AssignmentStatus.ASSIGNED
_COMPLETED: Final = AssignmentStatus.COMPLETED
_FAILED: Final = AssignmentStatus.FAILED
_TIMEOUT: Final = AssignmentStatus.TIMEOUT
_CANCELLED: Final = AssignmentStatus.CANCELLED
_TASK_QUEUED: Final = EventKind.TASK_QUEUED
_TASK_ASSIGNED: Final = EventKind.TASK_ASSIGNED
_TASK_WAITING: Final = EventKind.TASK_WAITING
_ATTEMPT_FAILED: Final = EventKind.ATTEMPT_FAILED
_TASK_COMPLETED: Final = EventKind.TASK_COMPLETED
_TASK_FAILED: Final = EventKind.TASK_FAILED
_TASK_TIMEOUT: Final = EventKind.TASK_TIMEOUT
_TASK_CANCELLED: Final = EventKind.TASK_CANCELLED
_STALE_RESULT: Final = EventKind.STALE_RESULT
_HEARTBEAT: Final = EventKind.HEARTBEAT

# A named tuple made without its generated ``__new__`` (a Python function): half the cost.
_new_tuple: Final = tuple.__new__

#: ``run_all`` submits this many tasks between checkpoints, so a huge batch does not hold
#: the event loop (and with it every agent's heartbeat) for its whole length.
SUBMIT_CHECKPOINT_EVERY: Final = 1024


@final
class AssignmentHandle:
    """One task submitted to a coordinator: its status, outcome and ``wait()``."""

    __slots__ = ("__weakref__", "_coordinator", "_done", "_record")

    def __init__(self, coordinator: Coordinator, record: TaskRecord) -> None:
        self._coordinator = coordinator
        self._record = record
        self._done: trio.Event | None = None

    def __repr__(self) -> str:
        return f"<AssignmentHandle {self.id} {self.status.value}>"

    @property
    def id(self) -> Hashable:
        """The task's id: the one given to ``submit(task, id=...)``, or one made for it."""
        return self._record.id

    @property
    def task(self) -> Mapping[str, Any]:
        """The task as submitted (a mapping whose ``"type"`` is its capability)."""
        return self._record.payload

    @property
    def capability(self) -> Hashable:
        """The capability the task needs (its ``"type"``)."""
        return self._record.capability

    @property
    def status(self) -> AssignmentStatus:
        """Where the task stands: an :class:`AssignmentStatus`."""
        return self._record.status

    @property
    def agent_id(self) -> Hashable:
        """The agent that has it now, or that finished it."""
        return self._record.agent_id

    @property
    def attempts(self) -> int:
        """Attempts started, on any agent (one cut short by a lost agent included)."""
        return self._record.attempts

    @property
    def result(self) -> Any:
        """The agent's result once the task has completed, else ``None``."""
        return self._record.result

    @property
    def error(self) -> BaseException | None:
        """The last failed attempt's error, else ``None``."""
        errors = self._record.errors
        return errors[-1] if errors else None

    @property
    def errors(self) -> tuple[BaseException, ...]:
        """Every failed attempt's error, in order."""
        return tuple(self._record.errors)

    @property
    def done(self) -> bool:
        """Whether the task has ended (completed, failed, timed out or cancelled)."""
        return self._record.status.is_terminal

    async def wait(self) -> Any:
        """Wait for the task to end; return its result.

        Raises:
            TaskFailed: it failed, timed out or was cancelled; ``errors`` holds every
                attempt's error, ``status`` how it ended.
        """
        if self.done:
            await trio.lowlevel.checkpoint()
        else:
            if self._done is None:
                self._done = trio.Event()
            await self._done.wait()
        return self._outcome()

    def cancel(self) -> None:
        """Cancel the task if it has not finished. An agent working on it has that attempt
        cancelled; a result that still arrives is discarded."""
        self._coordinator._cancel(self._record, None)

    def _outcome(self) -> Any:
        record = self._record
        if record.status is _COMPLETED:
            return record.result
        raise _failure(record)


def _failure(record: TaskRecord) -> TaskFailed:
    """The :class:`TaskFailed` that a task which did not complete stands for."""
    errors = record.errors
    return TaskFailed(record.id, record.status, errors[-1] if errors else None, errors)


@final
class _Batch:
    """The tasks of one ``run_all``: it owns their records (no handle per task) and counts
    down the unfinished ones, with one event for them all."""

    __slots__ = ("event", "records", "remaining")

    def __init__(self, remaining: int) -> None:
        self.records: list[TaskRecord] = []
        self.remaining = remaining
        self.event = trio.Event()


@final
class Coordinator:
    """Registers agents, dispatches tasks, routes messages. Get one from
    :func:`open_coordinator`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        settings: AgentSettings,
        retry: RetryPolicy | None,
        restart: RestartPolicy | None,
        transport: Transport,
        slow_after: float | None = None,
    ) -> None:
        self._nursery = nursery
        self._settings = settings
        self._slow_after = slow_after
        self._dispatch = Dispatcher(retry, random=random.Random().random)
        self._transport = transport
        self._check_wire = transport.check_task
        #: The transport's task store, if it keeps tasks outside this process (Redis).
        self._store: TaskStore | None = transport if isinstance(transport, TaskStore) else None
        # Tasks submitted alone under a name (the user's, or the store's), by id, while
        # their handles live: what coord.result() finds once they have finished.
        self._named: weakref.WeakValueDictionary[Hashable, AssignmentHandle] = (
            weakref.WeakValueDictionary()
        )
        self._now = trio.lowlevel.current_clock().current_time
        self._thread = threading.get_ident()
        # The unfinished tasks: those submitted alone by id (their ``owner`` is their
        # handle), those of a run_all in its batch (their ``owner``); and how many in all.
        self._active: dict[Hashable, TaskRecord] = {}
        self._batches: set[_Batch] = set()
        self._unfinished = 0
        self._events: EventFanout[CoordinatorEvent] = EventFanout()
        # Whether anyone may be subscribed: an attribute the hot path reads for free. It is
        # raised by subscribe() and lowered by the first publish that finds nobody left.
        self._listening = False
        self._supervisor = Supervisor(
            nursery,
            self,
            self._dispatch,
            transport,
            settings,
            restart,
            apply=self._apply,
            publish=self._publish_agent,
            fail_stranded=self._fail_stranded,
        )
        self._leaving = self._supervisor.leaving
        self._delayed: list[tuple[float, int, TaskRecord]] = []
        self._timer: trio.CancelScope | None = None
        self._timer_started = False
        self._all_done = trio.Event()
        self._draining = False
        self._closed = False
        self._submitted = self._completed = self._failed = self._timed_out = 0
        self._cancelled = self._stale = 0

    async def _start(self) -> None:
        self._nursery.start_soon(self._supervisor.monitor)
        if self._slow_after is not None:
            self._nursery.start_soon(self._watch_slow, self._slow_after)
        inbound = Inbound(
            register=self._on_register,
            leave=self._supervisor.leave,
            result=self._on_result,
            failure=self._on_failure,
            timeout=self._on_timeout,
            hand_back=self._on_hand_back,
            heartbeat=self._on_heartbeat,
            send_message=self._route,
            request=self._request,
            result_and_next=self._on_result_and_next,
        )
        await self._transport.start(inbound, self._nursery, self._settings)
        if self._store is not None:
            # Tasks an earlier coordinator of the store accepted and did not finish.
            for task_id, task in await self._store.recover():
                self._submit(task, None, task_id=task_id, adopt=True)

    # -- public -------------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """How this coordinator reaches its agents (``open_coordinator(transport=...)``)."""
        return self._transport

    @property
    def agents(self) -> dict[Hashable, AgentInfo]:
        """Every registered agent by id (a snapshot), with how long each of its attempts in
        progress has run (``AgentInfo.running``)."""
        infos = {}
        now = self._now()
        for agent_id, member in self._supervisor.members.items():
            state = member.state
            infos[agent_id] = AgentInfo(
                agent_id,
                state.capabilities,
                _status(state.online, len(state.in_flight)),
                state.completed,
                state.last_heartbeat,
                len(state.in_flight),
                self._running(agent_id, now),
            )
        return infos

    def _running(self, agent_id: Hashable, now: float) -> tuple[RunningTask, ...]:
        return tuple(
            RunningTask(task.id, task.attempts, task.assigned_at, now - task.assigned_at)
            for task in self._dispatch.running(agent_id)
        )

    def find_agents(self, capability: Hashable) -> list[AgentInfo]:
        """The online agents that have ``capability``."""
        agents = self.agents
        return [agents[record.id] for record in self._dispatch.online_capable(capability)]

    async def connect(self, agent: Agent) -> None:
        """Register ``agent`` and run it in this coordinator's nursery, in a cancel scope of
        its own (``agent.connect(coord)`` says the same).

        Raises:
            SchedulerClosedError: the coordinator has finished.
            TypeError: not an :class:`Agent`. RuntimeError: it is connected already.
            ValueError: another agent has its id.
        """
        await self._supervisor.connect(agent)

    async def disconnect(self, agent: Agent) -> None:
        """Let ``agent`` leave: it takes no new work, hands back what it has not started,
        finishes what it has, then stops (``agent.disconnect()`` says the same). Waits for
        that, except when called from inside the agent's own work.

        Raises:
            RuntimeError: the agent is not connected here.
        """
        await self._supervisor.disconnect(agent)

    def submit(
        self,
        task: Mapping[str, Any],
        *,
        id: Hashable = None,  # noqa: A002 - the name section 6 of the spec gives it
    ) -> AssignmentHandle:
        """Queue ``task`` (a mapping whose ``"type"`` is the capability it needs) for a
        capable agent; never blocks.

        ``id`` names the task (``AssignmentHandle.id``; ``coord.result(id)``); one is made
        when it is ``None``. With a transport that keeps tasks (Redis), the id is how a
        restarted coordinator's caller finds the task's result again.

        Raises:
            TypeError: ``task`` is not a mapping, its ``"type"`` or ``id`` is not hashable
                (or the transport cannot carry it).
            ValueError: it has no ``"type"``.
            DuplicateTaskError: ``id`` is the id of an unfinished task.
            NoCapableAgentError: no registered agent has that capability.
            SchedulerClosedError: the coordinator has finished.
            RuntimeError: called from another thread than the coordinator's.
        """
        return self._submit(task, None, task_id=id)

    async def run(self, task: Mapping[str, Any], *, id: Hashable = None) -> Any:  # noqa: A002
        """Submit ``task``, wait for it and return its result; if this call is cancelled (a
        timeout around it, or the scheduler task it runs in being cancelled), the task is
        cancelled too, so no agent goes on working for nobody.

        This is how a step of a scheduler pipeline hands its work to agents, local or on
        other machines::

            sched.submit(coord.run, {"type": "render", "page": n}, timeout=30, retry=2)

        Raises:
            TaskFailed: the task failed, timed out or was cancelled.
            And whatever :meth:`submit` raises for a task it refuses.
        """
        handle = self._submit(task, None, task_id=id)
        try:
            return await handle.wait()
        finally:
            if not handle.done:  # the caller was cancelled: so is the work it asked for
                handle.cancel()

    async def result(self, task_id: Hashable) -> Any:
        """Wait for the task ``task_id`` to end and return its result: a task of this
        coordinator, or, with a transport that keeps tasks (Redis), one that an earlier
        coordinator of the namespace accepted.

        Raises:
            TaskFailed: the task failed, timed out or was cancelled.
            UnknownTaskError: no such task is known here (nor to the transport).
        """
        record = self._active.get(task_id)
        handle = record.owner if record is not None else self._named.get(task_id)
        if isinstance(handle, AssignmentHandle):
            return await handle.wait()
        stored = None if self._store is None else await self._store.lookup(task_id)
        if stored is None or not stored.status.is_terminal:
            await trio.lowlevel.checkpoint()
            raise UnknownTaskError(task_id)
        if stored.status is _COMPLETED:
            return stored.result
        errors = () if stored.error is None else (stored.error,)
        raise TaskFailed(task_id, stored.status, stored.error, errors)

    async def run_all(
        self, tasks: Iterable[Mapping[str, Any]], *, return_exceptions: bool = False
    ) -> list[Any]:
        """Submit every task, wait for all, and return their results in input order.

        Every task is checked before any is submitted. With ``return_exceptions=False`` a
        failure raises an ``ExceptionGroup`` of :class:`TaskFailed` once all have ended;
        with ``True`` the failures take their place in the list.

        The tasks are checked, submitted and their results gathered in batches of
        :data:`SUBMIT_CHECKPOINT_EVERY` with a checkpoint between batches, so a huge
        ``run_all`` never holds the event loop (and the agents' heartbeats) for long: under
        a millisecond at a time here, for 300,000 tasks. They get no
        :class:`AssignmentHandle` each: their records count down one shared batch.

        Cancelling the call (a timeout around it, say) cancels every task it submitted
        that has not finished, as :meth:`run` cancels its task: no agent goes on working
        for nobody.
        """
        payloads = list(tasks)
        self._check_open()
        check_wire = self._check_wire
        capabilities = []
        step = SUBMIT_CHECKPOINT_EVERY
        for start in range(0, len(payloads), step):
            if start:
                await trio.lowlevel.checkpoint()
            for payload in payloads[start : start + step]:
                # _check_task, but for the thread and the closed flag (checked once).
                if type(payload) is not dict and not isinstance(payload, Mapping):
                    raise TypeError(f"a task must be a mapping, got {payload!r}")
                if "type" not in payload:
                    raise ValueError(
                        f"a task needs a 'type' (the capability it needs): {payload!r}"
                    )
                check_wire(payload)
                capabilities.append(payload["type"])
        known = self._dispatch.is_known_capability
        try:
            distinct = set(capabilities)
        except TypeError:
            for capability in capabilities:
                check_hashable("a task's 'type'", capability)
            raise
        for capability in distinct:
            if not known(capability):
                raise NoCapableAgentError(capability)
        batch = _Batch(len(payloads))
        records = batch.records
        if payloads:
            self._batches.add(batch)
        try:
            for start in range(0, len(payloads), step):
                if start:
                    await trio.lowlevel.checkpoint()
                    self._check_open()
                end = start + step
                now = self._now()
                chunk, outcome = self._dispatch.submit_many(
                    capabilities[start:end], payloads[start:end], batch, now=now
                )
                store = self._store
                if store is not None:
                    for record in chunk:
                        record.id = store.new_task_id(record.key)
                        store.submitted(record.id, record.payload)
                records += chunk
                self._submitted += len(chunk)
                self._unfinished += len(chunk)
                if self._listening:
                    self._publish_submitted(chunk, outcome, now)
                else:
                    self._apply(outcome)
            if batch.remaining:
                await batch.event.wait()
            else:
                await trio.lowlevel.checkpoint()
        except BaseException:
            # Cancelled (or closed) part-way: the work the call asked for ends with it, as
            # run()'s does, so no agent goes on working for nobody.
            batch.remaining -= len(payloads) - len(records)
            if not batch.remaining:
                self._batches.discard(batch)
            for record in records:
                if not record.status.is_terminal:
                    self._cancel(record, None)
            raise
        results: list[Any] = []
        failures: list[TaskFailed] = []
        for start in range(0, len(records), step):
            if start:
                await trio.lowlevel.checkpoint()
            for record in records[start : start + step]:
                if record.status is _COMPLETED:
                    results.append(record.result)
                else:
                    failure = _failure(record)
                    failures.append(failure)
                    results.append(failure)
        if failures and not return_exceptions:
            raise ExceptionGroup(f"{len(failures)} of {len(records)} task(s) failed", failures)
        return results

    def stats(self) -> CoordinatorStats:
        """Totals (submitted, queued, in flight, completed, failed, timed out, cancelled,
        retries, reassignments, missed heartbeats, restarts) and a row per agent; a
        snapshot, O(agents)."""
        dispatch = self._dispatch
        now = self._now()
        rows = {
            agent_id: AgentStats(
                agent_id,
                _status(member.state.online, len(member.state.in_flight)),
                len(member.state.in_flight),
                member.state.completed,
                member.state.failed,
                member.state.last_heartbeat,
                member.restarts,
                self._running(agent_id, now),
            )
            for agent_id, member in self._supervisor.members.items()
        }
        return CoordinatorStats(
            submitted=self._submitted,
            queued=dispatch.queued,
            waiting=dispatch.waiting,
            in_flight=sum(row.in_flight for row in rows.values()),
            completed=self._completed,
            failed=self._failed,
            timeout=self._timed_out,
            cancelled=self._cancelled,
            retries=dispatch.retries,
            reassigned=dispatch.reassigned,
            heartbeats_missed=self._supervisor.heartbeats_missed,
            restarts=self._supervisor.restarts,
            stale_results=self._stale,
            agents=rows,
        )

    def subscribe(self) -> EventChannel[CoordinatorEvent]:
        """A channel of :class:`CoordinatorEvent` from now on, ended when the coordinator
        finishes; unbounded, so a slow reader delays nothing and loses nothing."""
        channel = self._events.subscribe()
        self._listening = bool(self._events)
        return channel

    # -- tasks --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SchedulerClosedError(
                "the coordinator has finished; nothing more can be submitted"
            )
        if threading.get_ident() != self._thread:
            raise RuntimeError(
                "submit() must be called from the coordinator's own trio thread "
                "(from another thread, use trio.from_thread.run_sync(coord.submit, task))"
            )

    def _check_task(self, task: object) -> Hashable:
        self._check_open()
        if type(task) is not dict and not isinstance(task, Mapping):
            raise TypeError(f"a task must be a mapping, got {task!r}")
        if "type" not in task:
            raise ValueError(f"a task needs a 'type' (the capability it needs): {task!r}")
        capability: Hashable = task["type"]
        check_hashable("a task's 'type'", capability)
        self._check_wire(task)
        return capability

    def _submit(
        self,
        task: Mapping[str, Any],
        excluded: Hashable,
        waiter: int = 0,
        *,
        task_id: Hashable = None,
        adopt: bool = False,
    ) -> AssignmentHandle:
        if adopt:
            capability: Hashable = task["type"]
        else:
            capability = self._check_task(task)
            if task_id is not None:
                check_hashable("a task's id", task_id)
        if task_id is not None and task_id in self._active:
            raise DuplicateTaskError(task_id)
        record, outcome = self._dispatch.submit(
            capability, task, excluded, now=self._now(), waiter=waiter, adopt=adopt
        )
        handle = record.owner = AssignmentHandle(self, record)
        store = self._store
        if task_id is not None:
            record.id = task_id
            self._named[task_id] = handle
        elif store is not None:
            record.id = store.new_task_id(record.key)
            self._named[record.id] = handle
        elif record.key in self._active:
            # The made-up id is the task's number; a task the user named with that very
            # number is still running: this one gets a name that cannot clash.
            record.id = f"task-{record.key}"
        if store is not None and not adopt:
            store.submitted(record.id, task)
        self._active[record.id] = record
        self._submitted += 1
        self._unfinished += 1
        if record.status is _QUEUED:
            if self._listening:
                self._publish(_TASK_QUEUED, task_id=record.id)
            if self._draining and self._dispatch.is_stranded(record):
                self._fail_stranded()  # a request made while the coordinator drains
        self._apply(outcome)
        return handle

    def _apply(self, outcome: Outcome) -> None:
        """Carry out what the dispatcher decided: finish tasks, deliver assignments, put
        delayed retries on the timer."""
        for task in outcome.finished:
            self._finished(task)
        if outcome.assignments:
            deliver = self._transport.deliver_work
            for assignment in outcome.assignments:
                record = assignment.task
                deliver(
                    assignment.agent_id,
                    WorkItem(assignment.token, assignment.attempt, record.payload, record.id),
                )
                if self._listening:
                    self._publish(
                        _TASK_ASSIGNED, assignment.agent_id, record.id, assignment.attempt
                    )
        if outcome.delayed is not None:
            self._delay(outcome.delayed)

    def _publish_submitted(self, records: list[TaskRecord], outcome: Outcome, now: float) -> None:
        """Carry out a batch's outcome with its events in submission order, as if each
        task had been submitted alone: queued, or assigned (and delivered). They were all
        submitted in one synchronous step, at ``now``."""
        deliver = self._transport.deliver_work
        assignments = iter(outcome.assignments)
        event = self._event
        for record in records:
            if record.status is _QUEUED:
                event(_TASK_QUEUED, now, None, record.id, 0, None)
            else:
                assignment = next(assignments)
                deliver(
                    assignment.agent_id,
                    WorkItem(assignment.token, assignment.attempt, record.payload, record.id),
                )
                event(_TASK_ASSIGNED, now, assignment.agent_id, record.id, assignment.attempt, None)

    def _finished(self, record: TaskRecord, now: float | None = None) -> None:
        owner = record.owner
        if type(owner) is _Batch:
            owner.remaining -= 1
            if not owner.remaining:
                self._batches.discard(owner)
                owner.event.set()
        else:
            del self._active[record.id]
            if owner._done is not None:
                owner._done.set()
        self._unfinished -= 1
        status = record.status
        if status is _COMPLETED:
            self._completed += 1
            kind = _TASK_COMPLETED
        elif status is _FAILED:
            self._failed += 1
            kind = _TASK_FAILED
        elif status is _TIMEOUT:
            self._timed_out += 1
            kind = _TASK_TIMEOUT
        else:
            self._cancelled += 1
            kind = _TASK_CANCELLED
        if status is not _COMPLETED and self._store is not None:
            self._store.finished(record.id, status, record.errors[-1] if record.errors else None)
        if self._listening:
            error = record.errors[-1] if record.errors and status is not _COMPLETED else None
            at = self._now() if now is None else now
            self._event(kind, at, record.agent_id, record.id, record.attempts, error)
        if self._draining and not self._unfinished:
            self._all_done.set()

    def _cancel(
        self,
        record: TaskRecord,
        error: BaseException | None,
        status: AssignmentStatus = _CANCELLED,
        *,
        revoke: bool = True,
    ) -> None:
        """End an unfinished task; an agent working on it has that attempt revoked."""
        assigned_to, token = record.agent_id, record.token
        was_assigned = record.status is _ASSIGNED
        outcome = self._dispatch.cancel(record, error, status)
        if was_assigned and revoke and outcome.accepted:
            self._transport.revoke(assigned_to, token)
        self._apply(outcome)

    def _fail_stranded(self) -> None:
        """Fail queued tasks that no agent can ever run: delegated tasks in a deadlock
        (at any time), and, once the block has ended, tasks that no agent that may take
        them is online or about to be restarted for."""
        self._fail_deadlocked()
        if not self._draining:
            return
        restarting: set[Hashable] | None = None
        for record in list(self._dispatch.stranded()):
            if restarting is None:
                restarting = self._supervisor.restarting_capabilities()
            if record.capability in restarting:
                continue
            other = "" if record.excluded is None else f" other than {record.excluded!r}"
            error = AgentGone(
                f"no online agent{other} is left with capability {record.capability!r}"
            )
            self._cancel(record, error, _FAILED)

    # -- retry delays -----------------------------------------------------------------------------

    def _delay(self, delayed: list[tuple[TaskRecord, float]]) -> None:
        now = self._now()
        earliest = math.inf
        for record, delay in delayed:
            due = now + delay
            earliest = min(earliest, due)
            heapq.heappush(self._delayed, (due, record.key, record))
            if self._listening:
                error = record.errors[-1] if record.errors else None
                self._publish(_TASK_WAITING, None, record.id, record.attempts, error)
        if not self._timer_started:
            self._timer_started = True
            self._nursery.start_soon(self._retry_timer)
        elif self._timer is not None and earliest < self._timer.deadline:
            self._timer.deadline = earliest

    async def _retry_timer(self) -> None:
        """Place delayed retries when they are due (one task for all of them)."""
        heap = self._delayed
        while True:
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                self._timer = scope
                await trio.sleep_forever()
            self._timer = None
            now = self._now()
            while heap and heap[0][0] <= now:
                _, _, record = heapq.heappop(heap)
                self._apply(self._dispatch.retry_due(record, now))
            self._fail_stranded()

    async def _watch_slow(self, slow_after: float) -> None:
        """Log a warning, once per attempt, for each attempt that runs longer than
        ``slow_after``: hung work (a ``process_task`` that never returns while its agent
        keeps beating) would otherwise go unnoticed, without a ``task_timeout``.

        It costs nothing per task: it sleeps until the oldest attempt it has not warned
        about reaches ``slow_after`` (or ``slow_after`` from now, when none is running;
        whatever starts meanwhile is due later), then looks at every attempt in progress,
        O(the agents' total concurrency)."""
        warned: set[int] = set()  # tokens of the attempts warned about, still running
        while True:
            now = self._now()
            wake = now + slow_after
            still: set[int] = set()
            for agent in self._dispatch.agents.values():
                for token, task in agent.in_flight.items():
                    if task.token != token:
                        continue  # cancelled or superseded: its task is over or elsewhere
                    if token in warned:
                        still.add(token)
                        continue
                    due = task.assigned_at + slow_after
                    if due > now:
                        wake = min(wake, due)
                        continue
                    still.add(token)
                    logger.warning(
                        "task %r (attempt %d) has run on agent %r for %.1f s; it may be hung%s",
                        task.id,
                        task.attempts,
                        agent.id,
                        now - task.assigned_at,
                        ""
                        if self._settings.task_timeout is None
                        else f" (task_timeout: {self._settings.task_timeout} s)",
                    )
            warned = still
            await trio.sleep_until(wake)

    # -- reports from the transport ---------------------------------------------------------------

    def _on_result(self, agent_id: Hashable, token: int, result: Any) -> None:
        outcome = self._dispatch.complete(agent_id, token, result, self._now())
        if not outcome.accepted:
            self._stale_report(agent_id)
        self._apply(outcome)
        if self._leaving:
            self._supervisor.check_drained(agent_id)

    def _on_result_and_next(self, agent_id: Hashable, token: int, result: Any) -> WorkItem | None:
        """A result from an agent of this trio run (the in-memory transport), answered with
        the agent's next assignment: the round trip every task of a run makes.

        FAST PATH: what it skips, and why nothing else changes. The dispatcher's
        ``complete_and_take`` makes exactly the decision ``complete`` makes (the same fencing
        check, the same next task for the freed slot) but hands that task back instead of an
        ``Outcome`` holding an ``Assignment``; the finished task is finished as ``_apply``
        would finish it; and the next assignment goes back to the reporting work loop as
        this call's return value instead of through ``deliver_work`` and the agent's work
        channel. That skips three objects and a channel send and receive per task (cProfile:
        the report path was 44% of a run, ~30 Python calls per task). Events come in the same
        order: the completion, then the assignment. Every other report (stale, from an agent
        that is leaving or below its full concurrency) takes the general path.
        """
        now = self._now()
        taken = self._dispatch.complete_and_take(agent_id, token, result, now)
        if taken is None:
            self._on_result(agent_id, token, result)
            return None
        record, after = taken
        self._finished(record, now)
        if after is None:
            return None
        if self._listening:
            self._event(_TASK_ASSIGNED, now, agent_id, after.id, after.attempts, None)
        return _new_tuple(WorkItem, (after.token, after.attempts, after.payload, after.id))

    def _on_failure(self, agent_id: Hashable, token: int, error: BaseException) -> None:
        self._attempt_failed(agent_id, token, error, timed_out=False)

    def _on_timeout(self, agent_id: Hashable, token: int, error: TimeoutError) -> None:
        self._attempt_failed(agent_id, token, error, timed_out=True)

    def _attempt_failed(
        self, agent_id: Hashable, token: int, error: BaseException, *, timed_out: bool
    ) -> None:
        retry = not isinstance(error, TaskRejected)
        outcome = self._dispatch.fail(
            agent_id, token, error, self._now(), retry=retry, timed_out=timed_out
        )
        task = outcome.task
        if not outcome.accepted:
            self._stale_report(agent_id)
        elif task is not None and self._listening:
            self._publish(_ATTEMPT_FAILED, agent_id, task.id, outcome.attempt, error)
        self._apply(outcome)
        if task is not None and task.excluded is not None and task.status is _QUEUED:
            self._fail_deadlocked(task)  # a delegated task's retry waits: it may never run
        if self._leaving:
            self._supervisor.check_drained(agent_id)

    def _on_hand_back(self, agent_id: Hashable, token: int) -> None:
        outcome = self._dispatch.hand_back(agent_id, token, self._now())
        if not outcome.accepted:  # the attempt was revoked, or superseded
            self._stale_report(agent_id)
        self._apply(outcome)
        if self._leaving:
            self._supervisor.check_drained(agent_id)

    def _stale_report(self, agent_id: Hashable) -> None:
        self._stale += 1
        if self._listening:
            self._publish(_STALE_RESULT, agent_id)

    def _on_heartbeat(self, agent_id: Hashable) -> None:
        self._dispatch.heartbeat(agent_id, self._now())
        if self._listening:
            self._publish(_HEARTBEAT, agent_id)

    def _on_register(self, registration: AgentRegistration) -> None:
        self._supervisor.register(registration)

    # -- messages -------------------------------------------------------------------------------

    async def _route(self, message: Message) -> None:
        if not isinstance(message, Message):
            raise TypeError(f"send_message takes a Message, got {message!r}")
        record = self._dispatch.agents.get(message.receiver)
        if record is None:
            raise UnknownAgentError(message.receiver)
        if not record.online:
            raise AgentUnavailableError(message.receiver)
        await self._transport.deliver_message(message.receiver, message)

    async def _request(
        self,
        agent_id: Hashable,
        capability: Hashable,
        task: Mapping[str, Any],
        waiter: int = 0,
        /,
    ) -> Any:
        if not isinstance(task, Mapping):
            raise TypeError(f"a task must be a mapping, got {task!r}")
        if task.get("type", capability) != capability:
            raise ValueError(f"task type {task['type']!r} does not match {capability!r}")
        handle = self._submit({**task, "type": capability}, excluded=agent_id, waiter=waiter)
        if handle.status is _QUEUED:
            self._fail_deadlocked(handle._record)
        try:
            return await handle.wait()
        finally:
            if not handle.done:  # the requester was cancelled (a timeout, say)
                handle.cancel()

    def _fail_deadlocked(self, new: TaskRecord | None = None) -> None:
        """Fail the delegated tasks that can never be served (``Dispatcher.deadlocked``),
        newest first, one at a time: failing one ends the wait of the attempt that asked
        for it, which may free a slot that others were waiting for. ``new``: the request
        just queued, when that is what may have closed a cycle."""
        while True:
            stuck = self._dispatch.deadlocked(self._supervisor.restarting_agents(), new)
            if not stuck:
                return
            newest = max(stuck, key=lambda record: record.key)
            cycle = self._dispatch.deadlock_cycle(newest)
            error = DelegationDeadlock(newest.excluded, newest.capability, cycle)
            self._cancel(newest, error, _FAILED)
            new = None

    # -- events -----------------------------------------------------------------------------------

    def _publish(
        self,
        kind: EventKind,
        agent_id: Hashable = None,
        task_id: Hashable = None,
        attempt: int = 0,
        error: BaseException | None = None,
    ) -> None:
        self._event(kind, self._now(), agent_id, task_id, attempt, error)

    def _event(
        self,
        kind: EventKind,
        at: float,
        agent_id: Hashable,
        task_id: Hashable,
        attempt: int,
        error: BaseException | None,
    ) -> None:
        event = _new_tuple(CoordinatorEvent, (kind, at, agent_id, task_id, attempt, error))
        if not self._events.publish(event):
            self._listening = False  # every subscriber has gone

    def _publish_agent(
        self, kind: EventKind, agent_id: Hashable, error: BaseException | None
    ) -> None:
        if self._listening:
            self._publish(kind, agent_id, None, 0, error)

    # -- lifetime (the three hooks of open_owner) -------------------------------------------------

    def _abort(self, error: BaseException) -> None:
        self._nursery.cancel_scope.cancel()

    async def _drain(self) -> None:
        """Leaving the block: wait until every submitted task has ended, then stop the
        agents (and the monitor and timer)."""
        self._draining = True
        self._fail_stranded()
        if self._unfinished:
            await self._all_done.wait()
        if self._store is not None:
            await self._store.flush()  # what it was told is written before it stops
        self._nursery.cancel_scope.cancel()

    def _close(self, error: BaseException | None) -> None:
        """Every task of the nursery has exited: fail what is unfinished, stop everything."""
        self._closed = True
        self._supervisor.close()
        shutdown = AgentGone("the coordinator shut down before the task finished")
        unfinished = [*self._active.values()]
        for batch in self._batches:
            unfinished += [record for record in batch.records if not record.status.is_terminal]
        for record in unfinished:
            self._cancel(record, shutdown, revoke=False)
        self._transport.close()
        self._events.close()


def _status(online: bool, in_flight: int) -> AgentStatus:
    if not online:
        return AgentStatus.OFFLINE
    return AgentStatus.BUSY if in_flight else AgentStatus.IDLE


@asynccontextmanager
async def open_coordinator(
    *,
    heartbeat_interval: float = 1.0,
    heartbeat_timeout: float = 3.0,
    retry: RetryPolicy | int | None = DEFAULT_RETRY,
    max_attempts: int | None = None,
    task_timeout: float | None = None,
    slow_after: float | None = 60.0,
    restart: RestartPolicy | None = None,
    transport: Transport | None = None,
    inbox_size: int | None = None,
) -> AsyncIterator[Coordinator]:
    """Open a :class:`Coordinator` whose agents run in a nursery of its own.

    Args:
        heartbeat_interval: how often each agent calls its ``heartbeat()``.
        heartbeat_timeout: silence after which an agent is offline and its work reassigned.
        retry: how failed attempts are retried, as the scheduler's ``submit(retry=...)``
            says it: ``None`` (never), an int (that many retries with the default
            :class:`~trioflow.RetryPolicy`, its delays included) or a policy. Its
            ``retry_on`` applies to the errors of ``process_task`` (and timeouts); an
            attempt lost with its agent is retried whatever it says. A retry waits out the
            policy's delay holding no agent slot. The default: two retries, no delay.
        max_attempts: the seed chapter's spelling: ``max_attempts=n`` is
            ``retry=RetryPolicy(max_retries=n - 1, delay=0)``. Not with ``retry``.
        task_timeout: optional limit on one ``process_task`` call. An attempt that overruns
            it is cancelled and fails with a ``TimeoutError`` (and is retried like any
            failure); a task whose last attempt timed out ends ``TIMEOUT``. With the default
            ``None`` nothing limits an attempt: a ``process_task`` that never returns runs,
            and holds its agent's slot, until the task is cancelled or the block is left
            by an error, while the agent keeps beating. Such work is not invisible:
            ``coord.agents`` (and each row of ``coord.stats()``) shows how long each
            attempt in progress has run, and see ``slow_after``. There is no finite
            default because no single limit suits every kind of agent (a search in
            milliseconds, a model call in minutes), and a limit the user did not choose
            would cut the long ones short; set one that suits your agents.
        slow_after: log a warning (logger ``"trioflow.agents"``, level WARNING), once per
            attempt, naming the task, the agent and how long it has run, when an attempt
            has run this many seconds (default 60); ``None``: never. It stops nothing.
        restart: a :class:`RestartPolicy` to restart crashed or silent agents; ``None``
            leaves them offline.
        transport: how agents are reached (:class:`~trioflow.agents.transport.Transport`);
            default: a new :class:`~trioflow.agents.InMemoryTransport`.
        inbox_size: each agent's message inbox in the default transport (default 100);
            senders wait while it is full.

    Leaving the block waits until every submitted task has ended, then stops the agents. If
    the body raises or the block is cancelled, unfinished tasks end with :class:`TaskFailed`
    and the agents are cancelled; the body's exception propagates as itself.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: an argument out of range, ``heartbeat_timeout <= heartbeat_interval``,
            ``retry`` together with ``max_attempts``, or ``inbox_size`` with ``transport``.
    """
    interval = check_number("heartbeat_interval", heartbeat_interval, positive=True)
    timeout = check_number("heartbeat_timeout", heartbeat_timeout, positive=True)
    if timeout <= interval:
        raise ValueError(
            f"heartbeat_timeout ({timeout}) must be longer than heartbeat_interval ({interval})"
        )
    policy = resolve_retry(retry, max_attempts)
    limit = check_optional_number("task_timeout", task_timeout, positive=True)
    slow = check_optional_number("slow_after", slow_after, positive=True)
    if restart is not None and not isinstance(restart, RestartPolicy):
        raise TypeError(f"restart must be a RestartPolicy or None, got {restart!r}")
    if transport is None:
        transport = InMemoryTransport(inbox_size=100 if inbox_size is None else inbox_size)
    elif inbox_size is not None:
        raise ValueError(
            "inbox_size sets up the default transport; with transport=, configure that "
            "transport instead (InMemoryTransport(inbox_size=...))"
        )
    elif not isinstance(transport, Transport):
        raise TypeError(f"transport must implement the Transport protocol, got {transport!r}")
    settings = AgentSettings(interval, timeout, limit)
    chosen = transport

    def make(nursery: trio.Nursery) -> Coordinator:
        return Coordinator(
            nursery,
            settings=settings,
            retry=policy,
            restart=restart,
            transport=chosen,
            slow_after=slow,
        )

    async with open_owner(make) as coordinator:
        await coordinator._start()
        yield coordinator
