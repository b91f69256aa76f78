"""open_coordinator: agents in a nursery, dispatch by capability, heartbeats and failover.

The coordinator owns a nursery. Each connected agent runs there under a supervisor loop, in
a cancel scope of its own; a monitor task sleeps until the next moment some agent would have
been silent for ``heartbeat_timeout``, and takes silent agents offline: it cancels their
scope and hands their in-flight work back to the dispatcher, which reassigns it under a new
fencing token. All decisions (who gets what, whether a report counts, when a task is out of
attempts) are the pure :class:`~trioflow.agents._dispatch.Dispatcher`'s; this module only
moves them through the transport and turns them into handles, events and counters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, final

import attrs
import trio

from .._errors import (
    AgentGone,
    AgentUnavailableError,
    NoCapableAgentError,
    SchedulerClosedError,
    TaskFailed,
    TaskRejected,
    UnknownAgentError,
)
from .._events import EventFanout
from ._agent import Agent
from ._dispatch import AssignmentStatus, Dispatcher, Outcome, TaskRecord
from ._messages import Message
from ._supervision import RestartBudget, RestartPolicy
from .transport._memory import InMemoryTransport, WorkItem


@attrs.frozen
class AgentInfo:
    """A snapshot of one agent, as the seed chapter names it."""

    id: Hashable
    capabilities: frozenset[Hashable]
    status: str  # "idle" | "busy" | "offline"
    tasks_completed: int
    last_heartbeat: float
    in_flight: int


@attrs.frozen
class AgentStats:
    id: Hashable
    status: str
    in_flight: int
    completed: int
    failed: int
    last_heartbeat: float
    restarts: int


@attrs.frozen
class CoordinatorStats:
    """Totals and a row per agent (``Coordinator.stats()``)."""

    submitted: int
    queued: int
    in_flight: int
    completed: int
    failed: int
    cancelled: int
    reassigned: int
    heartbeats_missed: int
    restarts: int
    stale_results: int
    agents: Mapping[Hashable, AgentStats]

    def to_dict(self) -> dict[str, Any]:
        return {
            **{f.name: getattr(self, f.name) for f in attrs.fields(CoordinatorStats)[:-1]},
            "agents": {aid: attrs.asdict(row) for aid, row in self.agents.items()},
        }


@attrs.frozen
class CoordinatorEvent:
    """Something that happened: ``kind`` is one of ``agent_online``, ``agent_offline``,
    ``agent_restarted``, ``heartbeat``, ``task_queued``, ``task_assigned``,
    ``attempt_failed``, ``task_completed``, ``task_failed``, ``task_cancelled``,
    ``stale_result``. (Heartbeat events are made only while someone subscribes.)"""

    kind: str
    at: float
    agent_id: Hashable = None
    task_id: int | None = None
    attempt: int = 0
    error: BaseException | None = None


@final
class AssignmentHandle:
    """One task submitted to a coordinator: its status, outcome and ``wait()``."""

    __slots__ = ("_batch", "_coordinator", "_done", "_record")

    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator
        self._record: TaskRecord = None  # type: ignore[assignment]  # set right after
        self._done: trio.Event | None = None
        self._batch: _Batch | None = None

    def __repr__(self) -> str:
        return f"<AssignmentHandle {self.id} {self.status.value}>"

    @property
    def id(self) -> int:
        return self._record.key

    @property
    def task(self) -> Any:
        return self._record.payload

    @property
    def capability(self) -> Hashable:
        return self._record.capability

    @property
    def status(self) -> AssignmentStatus:
        return self._record.status

    @property
    def agent_id(self) -> Hashable:
        """The agent that has it now, or that finished it."""
        return self._record.agent_id

    @property
    def attempts(self) -> int:
        return self._record.attempts

    @property
    def result(self) -> Any:
        return self._record.result

    @property
    def error(self) -> BaseException | None:
        errors = self._record.errors
        return errors[-1] if errors else None

    @property
    def errors(self) -> tuple[BaseException, ...]:
        """Every failed attempt's error, in order."""
        return tuple(self._record.errors)

    @property
    def done(self) -> bool:
        return self._record.status not in (AssignmentStatus.QUEUED, AssignmentStatus.ASSIGNED)

    async def wait(self) -> Any:
        """Wait for the task to end; return its result.

        Raises:
            TaskFailed: it failed or was cancelled; ``errors`` holds every attempt's error.
        """
        if self.done:
            await trio.lowlevel.checkpoint()
        else:
            if self._done is None:
                self._done = trio.Event()
            await self._done.wait()
        return self._outcome()

    def cancel(self) -> None:
        """Cancel the task if it has not finished; a later result from an agent is discarded.
        (An agent already working on it finishes that work; the result is dropped.)"""
        self._coordinator._cancel(self, None)

    def _outcome(self) -> Any:
        if self._record.status is AssignmentStatus.COMPLETED:
            return self._record.result
        raise TaskFailed(self.id, self._record.status, self.error, self._record.errors)


class _Batch:
    """Counts down the unfinished tasks of one ``run_all``: one event, not one per task."""

    __slots__ = ("event", "remaining")

    def __init__(self, remaining: int) -> None:
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
        heartbeat_interval: float,
        heartbeat_timeout: float,
        max_attempts: int,
        task_timeout: float | None,
        restart: RestartPolicy | None,
        inbox_size: int,
    ) -> None:
        self._nursery = nursery
        self._interval = heartbeat_interval
        self._timeout = heartbeat_timeout
        self._task_timeout = task_timeout
        self._restart = restart
        self._dispatch = Dispatcher(max_attempts)
        self._transport = InMemoryTransport(self, inbox_size)
        self._now = trio.lowlevel.current_clock().current_time
        self._agents: dict[Hashable, Agent] = {}
        self._scopes: dict[Hashable, trio.CancelScope] = {}
        self._budgets: dict[Hashable, RestartBudget] = {}
        self._restarts: dict[Hashable, int] = {}
        self._restarting: set[Hashable] = set()
        self._left: set[Hashable] = set()
        self._drained: dict[Hashable, trio.Event] = {}
        self._active: dict[int, AssignmentHandle] = {}
        self._events: EventFanout[CoordinatorEvent] = EventFanout()
        self._monitor_wakeup = trio.Event()
        self._all_done = trio.Event()
        self._draining = False
        self._closed = False
        self._submitted = self._completed = self._failed = self._cancelled = 0
        self._heartbeats_missed = self._stale = 0

    # -- public -------------------------------------------------------------------------------

    @property
    def agents(self) -> dict[Hashable, AgentInfo]:
        """Every registered agent by id (a snapshot)."""
        infos = {}
        for agent_id, record in self._dispatch.agents.items():
            infos[agent_id] = AgentInfo(
                agent_id,
                record.capabilities,
                _status(record.online, len(record.in_flight)),
                record.completed,
                record.last_heartbeat,
                len(record.in_flight),
            )
        return infos

    def find_agents(self, capability: Hashable) -> list[AgentInfo]:
        """The online agents that have ``capability``."""
        agents = self.agents
        return [agents[record.id] for record in self._dispatch.online_capable(capability)]

    def submit(self, task: Mapping[str, Any]) -> AssignmentHandle:
        """Queue ``task`` (a mapping whose ``"type"`` is the capability it needs) for a
        capable agent; never blocks.

        Raises:
            TypeError: ``task`` is not a mapping. ValueError: it has no ``"type"``.
            NoCapableAgentError: no registered agent has that capability.
            SchedulerClosedError: the coordinator has finished.
        """
        return self._submit(task, None)

    async def run_all(
        self, tasks: Iterable[Mapping[str, Any]], *, return_exceptions: bool = False
    ) -> list[Any]:
        """Submit every task, wait for all, and return their results in input order.

        Every task is checked before any is submitted. With ``return_exceptions=False`` a
        failure raises an ``ExceptionGroup`` of :class:`TaskFailed` once all have ended;
        with ``True`` the failures take their place in the list.
        """
        payloads = list(tasks)
        for payload in payloads:
            capability = self._check_task(payload)
            if not self._dispatch.is_known_capability(capability):
                raise NoCapableAgentError(capability)
        handles = [self._submit(payload, None) for payload in payloads]
        batch = _Batch(sum(not h.done for h in handles))
        for handle in handles:
            if not handle.done:
                handle._batch = batch
        if batch.remaining:
            await batch.event.wait()
        else:
            await trio.lowlevel.checkpoint()
        results: list[Any] = []
        failures: list[TaskFailed] = []
        for handle in handles:
            try:
                results.append(handle._outcome())
            except TaskFailed as failure:
                failures.append(failure)
                results.append(failure)
        if failures and not return_exceptions:
            raise ExceptionGroup(f"{len(failures)} of {len(handles)} task(s) failed", failures)
        return results

    def stats(self) -> CoordinatorStats:
        dispatch = self._dispatch
        rows = {
            agent_id: AgentStats(
                agent_id,
                _status(record.online, len(record.in_flight)),
                len(record.in_flight),
                record.completed,
                record.failed,
                record.last_heartbeat,
                self._restarts.get(agent_id, 0),
            )
            for agent_id, record in dispatch.agents.items()
        }
        return CoordinatorStats(
            submitted=self._submitted,
            queued=dispatch.queued,
            in_flight=sum(row.in_flight for row in rows.values()),
            completed=self._completed,
            failed=self._failed,
            cancelled=self._cancelled,
            reassigned=dispatch.reassigned,
            heartbeats_missed=self._heartbeats_missed,
            restarts=sum(self._restarts.values()),
            stale_results=self._stale,
            agents=rows,
        )

    def subscribe(self) -> trio.MemoryReceiveChannel[CoordinatorEvent]:
        """A channel of :class:`CoordinatorEvent` from now on, closed when the coordinator
        finishes; unbounded, so a slow reader delays nothing and loses nothing."""
        return self._events.subscribe()

    # -- tasks --------------------------------------------------------------------------------

    def _check_task(self, task: Any) -> Hashable:
        if self._closed:
            raise SchedulerClosedError(
                "the coordinator has finished; nothing more can be submitted"
            )
        if type(task) is not dict and not isinstance(task, Mapping):
            raise TypeError(f"a task must be a mapping, got {task!r}")
        if "type" not in task:
            raise ValueError(f"a task needs a 'type' (the capability it needs): {task!r}")
        return task["type"]

    def _submit(self, task: Mapping[str, Any], excluded: Hashable) -> AssignmentHandle:
        capability = self._check_task(task)
        handle = AssignmentHandle(self)
        record, outcome = self._dispatch.submit(capability, task, excluded, owner=handle)
        handle._record = record
        self._active[record.key] = handle
        self._submitted += 1
        if self._events and record.status is AssignmentStatus.QUEUED:
            self._publish("task_queued", task_id=record.key)
        self._apply(outcome)
        return handle

    def _apply(self, outcome: Outcome) -> None:
        for task in outcome.finished:
            self._finished(task)
        transport = self._transport
        for assignment in outcome.assignments:
            task = assignment.task
            transport.deliver_work(
                assignment.agent_id, WorkItem(assignment.token, assignment.attempt, task.payload)
            )
            if self._events:
                self._publish("task_assigned", assignment.agent_id, task.key, assignment.attempt)

    def _finished(self, record: TaskRecord) -> None:
        handle: AssignmentHandle = record.owner
        del self._active[record.key]
        status = record.status
        if status is AssignmentStatus.COMPLETED:
            self._completed += 1
            kind = "task_completed"
        elif status is AssignmentStatus.FAILED:
            self._failed += 1
            kind = "task_failed"
        else:
            self._cancelled += 1
            kind = "task_cancelled"
        if self._events:
            error = record.errors[-1] if record.errors and kind != "task_completed" else None
            self._publish(kind, record.agent_id, record.key, record.attempts, error)
        if handle._done is not None:
            handle._done.set()
        batch = handle._batch
        if batch is not None:
            batch.remaining -= 1
            if not batch.remaining:
                batch.event.set()
        if self._draining and not self._active:
            self._all_done.set()

    def _cancel(
        self, handle: AssignmentHandle, error: BaseException | None, failed: bool = False
    ) -> None:
        status = AssignmentStatus.FAILED if failed else AssignmentStatus.CANCELLED
        self._apply(self._dispatch.cancel(handle._record, error, status))

    # -- reports from agents ----------------------------------------------------------------------

    def _on_result(self, agent_id: Hashable, token: int, result: Any) -> None:
        outcome = self._dispatch.complete(agent_id, token, result, self._now())
        self._after_report(agent_id, outcome)

    def _on_failure(self, agent_id: Hashable, token: int, error: BaseException) -> None:
        retry = not isinstance(error, TaskRejected)
        outcome = self._dispatch.fail(agent_id, token, error, self._now(), retry=retry)
        task = outcome.task
        if task is not None and self._events:
            self._publish("attempt_failed", agent_id, task.key, task.attempts, error)
        self._after_report(agent_id, outcome)

    def _on_hand_back(self, agent_id: Hashable, token: int) -> None:
        self._after_report(agent_id, self._dispatch.hand_back(agent_id, token, self._now()))

    def _after_report(self, agent_id: Hashable, outcome: Outcome) -> None:
        if not outcome.accepted:
            self._stale += 1
            if self._events:
                self._publish("stale_result", agent_id)
        self._apply(outcome)
        drained = self._drained.get(agent_id)
        if drained is not None and not self._dispatch.agents[agent_id].in_flight:
            drained.set()

    def _on_heartbeat(self, agent_id: Hashable) -> None:
        self._dispatch.heartbeat(agent_id, self._now())
        if self._events:
            self._publish("heartbeat", agent_id)

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

    async def _request(self, agent_id: Hashable, capability: Hashable, task: Any) -> Any:
        if not isinstance(task, Mapping):
            raise TypeError(f"a task must be a mapping, got {task!r}")
        if task.get("type", capability) != capability:
            raise ValueError(f"task type {task['type']!r} does not match {capability!r}")
        handle = self._submit({**task, "type": capability}, excluded=agent_id)
        try:
            return await handle.wait()
        finally:
            if not handle.done:  # the requester was cancelled (a timeout, say)
                handle.cancel()

    # -- agents ---------------------------------------------------------------------------------

    async def _connect(self, agent: Agent) -> None:
        if self._closed:
            raise SchedulerClosedError("the coordinator has finished")
        if not isinstance(agent, Agent):
            raise TypeError(f"connect takes an Agent, got {agent!r}")
        if agent.coordinator is not None:
            raise RuntimeError(f"agent {agent.id!r} is already connected")
        if agent.id in self._dispatch.agents:
            raise ValueError(f"an agent with id {agent.id!r} is already registered")
        endpoint = self._transport.open_endpoint(agent.id, agent.concurrency)
        outcome = self._dispatch.register(
            agent.id, agent.capabilities, agent.concurrency, self._now()
        )
        agent.coordinator = self
        self._agents[agent.id] = agent
        if self._restart is not None:
            self._budgets[agent.id] = RestartBudget(self._restart)
        self._apply(outcome)
        self._publish("agent_online", agent.id)
        self._monitor_wakeup.set()
        await self._nursery.start(self._supervise, agent, endpoint)

    async def _supervise(
        self, agent: Agent, endpoint: Any, task_status: trio.TaskStatus[None]
    ) -> None:
        task_status.started()
        while True:
            with trio.CancelScope() as scope:
                self._scopes[agent.id] = scope
                try:
                    await agent._run(endpoint, self._interval, self._task_timeout)
                except Exception as exc:
                    crash = AgentGone(f"agent {agent.id!r} crashed: {_innermost(exc)!r}")
                    crash.__cause__ = exc
                    self._take_offline(agent.id, crash)
            if agent.id in self._left or self._closed or self._restart is None:
                return
            delay = self._budgets[agent.id].next_delay(self._now())
            if delay is None:  # restarted too often in the window: leave it offline
                self._fail_stranded()
                return
            self._restarting.add(agent.id)
            try:
                await trio.sleep(delay)
            finally:
                self._restarting.discard(agent.id)
            endpoint = self._transport.open_endpoint(agent.id, agent.concurrency)
            self._restarts[agent.id] = self._restarts.get(agent.id, 0) + 1
            outcome = self._dispatch.set_online(agent.id, self._now())
            self._publish("agent_restarted", agent.id)
            self._monitor_wakeup.set()
            self._apply(outcome)

    def _take_offline(self, agent_id: Hashable, error: BaseException) -> None:
        """Declare the agent gone: reassign its work, close its inboxes, cancel it."""
        outcome = self._dispatch.set_offline(agent_id, error, self._now())
        self._transport.close_endpoint(agent_id)
        scope = self._scopes.get(agent_id)
        if scope is not None:
            scope.cancel()
        drained = self._drained.get(agent_id)
        if drained is not None:  # a disconnect() waiting for this agent's work: it was reassigned
            drained.set()
        self._publish("agent_offline", agent_id, error=error)
        self._apply(outcome)
        self._fail_stranded()

    async def _disconnect(self, agent: Agent) -> None:
        agent_id = agent.id
        record = self._dispatch.agents.get(agent_id)
        if record is None or agent.coordinator is not self:
            raise RuntimeError(f"agent {agent_id!r} is not connected here")
        self._left.add(agent_id)
        if record.online:
            self._dispatch.set_draining(agent_id)
            self._transport.set_draining(agent_id)
            if record.in_flight:
                drained = self._drained[agent_id] = trio.Event()
                try:
                    await drained.wait()
                finally:
                    del self._drained[agent_id]
            else:
                await trio.lowlevel.checkpoint()
            if record.online:  # (it may have gone silent while draining)
                self._take_offline(agent_id, AgentGone(f"agent {agent_id!r} left"))
        else:
            await trio.lowlevel.checkpoint()
        agent.coordinator = None

    async def _monitor(self) -> None:
        """Sleep until some agent would have been silent for ``heartbeat_timeout``; take
        the silent ones offline."""
        dispatch = self._dispatch
        while True:
            deadline = dispatch.next_silence_deadline(self._timeout)
            if deadline is None:
                self._monitor_wakeup = trio.Event()
                await self._monitor_wakeup.wait()
                continue
            await trio.sleep_until(deadline)
            for agent_id in dispatch.silent_agents(self._now(), self._timeout):
                self._heartbeats_missed += 1
                self._take_offline(
                    agent_id,
                    AgentGone(f"agent {agent_id!r} sent no heartbeat for {self._timeout} s"),
                )

    def _fail_stranded(self) -> None:
        """Once the block has ended, fail queued tasks that no agent can ever run: none with
        the capability is online or about to restart."""
        if not self._draining:
            return
        restarting_caps = {
            cap for agent_id in self._restarting for cap in self._agents[agent_id].capabilities
        }
        for record in list(self._dispatch.stranded()):
            if record.capability not in restarting_caps:
                error = AgentGone(f"no online agent is left with capability {record.capability!r}")
                self._cancel(record.owner, error, failed=True)

    # -- lifetime -------------------------------------------------------------------------------

    def _publish(
        self,
        kind: str,
        agent_id: Hashable = None,
        task_id: int | None = None,
        attempt: int = 0,
        error: BaseException | None = None,
    ) -> None:
        if self._events:
            self._events.publish(
                CoordinatorEvent(kind, self._now(), agent_id, task_id, attempt, error)
            )

    def _close(self, reason: BaseException | None) -> None:
        self._closed = True
        for handle in list(self._active.values()):
            self._cancel(handle, reason)
        for agent_id in list(self._dispatch.agents):
            self._transport.close_endpoint(agent_id)
        self._events.close()


def _innermost(error: BaseException) -> BaseException:
    """The error inside the nursery's single-exception groups, for a readable message."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _status(online: bool, in_flight: int) -> str:
    if not online:
        return "offline"
    return "busy" if in_flight else "idle"


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


@asynccontextmanager
async def open_coordinator(
    *,
    heartbeat_interval: float = 1.0,
    heartbeat_timeout: float = 3.0,
    max_attempts: int = 3,
    task_timeout: float | None = None,
    restart: RestartPolicy | None = None,
    inbox_size: int = 100,
) -> AsyncIterator[Coordinator]:
    """Open a :class:`Coordinator` whose agents run in a nursery of its own.

    Args:
        heartbeat_interval: how often each agent calls its ``heartbeat()``.
        heartbeat_timeout: silence after which an agent is offline and its work reassigned.
        max_attempts: attempts per task, across agents, before it fails.
        task_timeout: optional limit on one ``process_task`` call (a failed attempt).
        restart: a :class:`RestartPolicy` to restart crashed or silent agents; ``None``
            leaves them offline.
        inbox_size: each agent's message inbox; senders wait while it is full.

    Leaving the block waits until every submitted task has ended, then stops the agents. If
    the body raises or the block is cancelled, unfinished tasks end with :class:`TaskFailed`
    and the agents are cancelled; the body's exception propagates as itself.
    """
    interval = _positive("heartbeat_interval", heartbeat_interval)
    timeout = _positive("heartbeat_timeout", heartbeat_timeout)
    if timeout <= interval:
        raise ValueError(
            f"heartbeat_timeout ({timeout}) must be longer than heartbeat_interval ({interval})"
        )
    if task_timeout is not None:
        task_timeout = _positive("task_timeout", task_timeout)
    for name, value in (("max_attempts", max_attempts), ("inbox_size", inbox_size)):
        if type(value) is not int or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if restart is not None and not isinstance(restart, RestartPolicy):
        raise TypeError(f"restart must be a RestartPolicy or None, got {restart!r}")
    body_error: BaseException | None = None
    coordinator: Coordinator | None = None
    try:
        async with trio.open_nursery() as nursery:
            coordinator = Coordinator(
                nursery,
                heartbeat_interval=interval,
                heartbeat_timeout=timeout,
                max_attempts=max_attempts,
                task_timeout=task_timeout,
                restart=restart,
                inbox_size=inbox_size,
            )
            nursery.start_soon(coordinator._monitor)
            try:
                yield coordinator
            except BaseException as exc:
                # Kept out of the nursery so that it propagates as itself, not in a group.
                body_error = exc
            else:
                coordinator._draining = True
                coordinator._fail_stranded()
                if coordinator._active:
                    await coordinator._all_done.wait()
            nursery.cancel_scope.cancel()
    finally:
        if coordinator is not None:
            coordinator._close(AgentGone("the coordinator shut down before the task finished"))
    if body_error is not None:
        try:
            raise body_error
        finally:
            body_error = None
