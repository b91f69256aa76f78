"""Dispatch: which agent gets which task, and what happens when an attempt ends.

Pure and synchronous, like ``h11``: the coordinator feeds it events (a task submitted, an
agent registered, a result reported with its fencing token, an agent gone silent) and it
answers with the assignments to deliver and the tasks that are finished for good. No trio,
no I/O, so every rule here is unit-tested on its own.

The rules:

* A task goes to a capable, online agent with a free slot and the lowest load (tasks in
  flight / concurrency), ties to the agent that has been free longest. With no such agent it
  waits, first come first served, and goes out the moment one frees up or comes online.
* Every assignment carries a fresh *fencing token*. A report under any other token (from an
  agent already declared offline, or for an attempt that was superseded) is discarded, so
  every task completes exactly once.
* A failed attempt (the agent raised, or went offline mid-task) counts toward
  ``max_attempts``. The retry goes to a capable online agent that has not failed the task
  yet; when every one has, to any capable online agent.

Costs: submit and report are O(agents with the capability) at most; waiting tasks sit in a
FIFO deque per capability, and only tasks with a constraint (agents to avoid) sit in a short
list that is scanned.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from enum import Enum
from typing import Any, NamedTuple

import attrs

from .._errors import NoCapableAgentError


class AssignmentStatus(Enum):
    QUEUED = "queued"  # waiting for a capable agent with a free slot
    ASSIGNED = "assigned"  # an agent has it
    COMPLETED = "completed"
    FAILED = "failed"  # out of attempts
    CANCELLED = "cancelled"

    __hash__ = object.__hash__


_QUEUED = AssignmentStatus.QUEUED
_ASSIGNED = AssignmentStatus.ASSIGNED


@attrs.define(eq=False)
class AgentRecord:
    """The dispatcher's view of one agent."""

    id: Hashable
    capabilities: frozenset[Hashable]
    concurrency: int
    free_since: float
    last_heartbeat: float
    online: bool = True
    draining: bool = False
    in_flight: dict[int, TaskRecord] = attrs.field(factory=dict)  # token -> task
    completed: int = 0
    failed: int = 0

    @property
    def has_free_slot(self) -> bool:
        return self.online and not self.draining and len(self.in_flight) < self.concurrency


@attrs.define(eq=False)
class TaskRecord:
    """One submitted task and its attempts."""

    key: int
    capability: Hashable
    payload: Any
    excluded: Hashable = None  # an agent that must not take it (a delegating requester)
    status: AssignmentStatus = _QUEUED
    attempts: int = 0
    token: int = 0  # the current assignment's fencing token; 0 when not assigned
    agent_id: Hashable = None
    failed_agents: set[Hashable] | None = None
    errors: list[BaseException] = attrs.field(factory=list)
    reassigned: int = 0
    result: Any = None
    owner: Any = None  # whatever the I/O layer keeps for this task (its handle)

    @property
    def constrained(self) -> bool:
        return self.failed_agents is not None or self.excluded is not None


class Assignment(NamedTuple):
    """Deliver ``task.payload`` to ``agent_id``; its report must quote ``token``.
    (A named tuple: frozen, and cheap to make once per attempt.)"""

    task: TaskRecord
    agent_id: Hashable
    token: int
    attempt: int


class Outcome:
    """What a report or an event did: assignments to deliver, tasks finished for good.

    ``accepted`` is False for a stale report (discarded); ``task`` is the task a report was
    about, when it counted. (A plain slotted class: one is made per report, on the hot path.)
    """

    __slots__ = ("accepted", "assignments", "finished", "task")

    def __init__(
        self,
        assignments: list[Assignment] | None = None,
        finished: list[TaskRecord] | None = None,
        accepted: bool = True,
        task: TaskRecord | None = None,
    ) -> None:
        self.assignments = [] if assignments is None else assignments
        self.finished = [] if finished is None else finished
        self.accepted = accepted
        self.task = task


class Dispatcher:
    """Agents, waiting tasks and assignments, with no I/O."""

    def __init__(self, max_attempts: int = 3) -> None:
        if type(max_attempts) is not int or max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        self.max_attempts = max_attempts
        self.agents: dict[Hashable, AgentRecord] = {}
        self._capable: dict[Hashable, list[AgentRecord]] = {}
        self._fresh: dict[Hashable, deque[TaskRecord]] = {}
        self._constrained: dict[Hashable, list[TaskRecord]] = {}
        self._keys = itertools.count(1)
        self._tokens = itertools.count(1)
        self.queued = 0
        self.reassigned = 0

    # -- agents -----------------------------------------------------------------------------

    def register(
        self, agent_id: Hashable, capabilities: Iterable[Hashable], concurrency: int, now: float
    ) -> Outcome:
        """Add an agent (online) and give it waiting work."""
        if agent_id in self.agents:
            raise ValueError(f"an agent with id {agent_id!r} is already registered")
        if type(concurrency) is not int or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        caps = frozenset(capabilities)
        if not caps:
            raise ValueError(f"agent {agent_id!r} has no capabilities")
        agent = AgentRecord(agent_id, caps, concurrency, free_since=now, last_heartbeat=now)
        self.agents[agent_id] = agent
        for cap in caps:
            self._capable.setdefault(cap, []).append(agent)
        return Outcome(assignments=self._fill(agent))

    def set_online(self, agent_id: Hashable, now: float) -> Outcome:
        """An offline agent is back (restarted): it starts fresh and takes waiting work."""
        agent = self.agents[agent_id]
        agent.online = True
        agent.draining = False
        agent.free_since = agent.last_heartbeat = now
        return Outcome(assignments=self._fill(agent))

    def set_draining(self, agent_id: Hashable) -> None:
        """The agent is leaving: it gets no new work."""
        self.agents[agent_id].draining = True

    def set_offline(self, agent_id: Hashable, error: BaseException, now: float) -> Outcome:
        """The agent is gone (silent, crashed or left): its in-flight attempts fail with
        ``error`` and are reassigned while attempts remain."""
        agent = self.agents[agent_id]
        if not agent.online:
            return Outcome()
        agent.online = False
        lost = list(agent.in_flight.values())
        agent.in_flight.clear()
        outcome = Outcome()
        for task in lost:
            self.reassigned += 1
            task.reassigned += 1
            self._attempt_failed(task, agent, error, outcome)
        # Tasks that were avoiding agents may now be eligible elsewhere.
        for cap in agent.capabilities:
            self._retry_constrained(cap, outcome)
        return outcome

    def heartbeat(self, agent_id: Hashable, now: float) -> None:
        agent = self.agents[agent_id]
        if agent.online:
            agent.last_heartbeat = now

    def silent_agents(self, now: float, timeout: float) -> list[Hashable]:
        """Online agents whose last heartbeat is at least ``timeout`` old."""
        return [
            agent.id
            for agent in self.agents.values()
            if agent.online and now - agent.last_heartbeat >= timeout
        ]

    def next_silence_deadline(self, timeout: float) -> float | None:
        """When the next online agent will have been silent for ``timeout``."""
        times = [a.last_heartbeat for a in self.agents.values() if a.online]
        return min(times) + timeout if times else None

    def online_capable(self, capability: Hashable) -> list[AgentRecord]:
        return [a for a in self._capable.get(capability, ()) if a.online]

    def is_known_capability(self, capability: Hashable) -> bool:
        return capability in self._capable

    # -- tasks ------------------------------------------------------------------------------

    def submit(
        self, capability: Hashable, payload: Any, excluded: Hashable = None, owner: Any = None
    ) -> tuple[TaskRecord, Outcome]:
        """Add a task: assigned at once when an agent is free, else queued.

        Raises:
            NoCapableAgentError: no registered agent (online or not) has ``capability``,
                other than ``excluded``.
        """
        capable = self._capable.get(capability)
        if not capable or (excluded is not None and all(agent.id == excluded for agent in capable)):
            raise NoCapableAgentError(capability)
        task = TaskRecord(next(self._keys), capability, payload, excluded=excluded, owner=owner)
        outcome = Outcome()
        self._place(task, outcome)
        return task, outcome

    def _release(
        self, agent_id: Hashable, token: int, now: float
    ) -> tuple[AgentRecord | None, TaskRecord | None, Outcome | None]:
        """Free the agent's slot for ``token``. Returns the agent and the task when the report
        counts; otherwise the outcome to return: a stale report (a superseded or cancelled
        assignment) still frees the slot the agent really held, and the slot is refilled."""
        agent = self.agents.get(agent_id)
        task = None if agent is None else agent.in_flight.pop(token, None)
        if agent is None or task is None:
            return None, None, Outcome(accepted=False)
        agent.free_since = now
        if task.token != token:
            return None, None, Outcome(assignments=self._fill(agent), accepted=False)
        return agent, task, None

    def complete(self, agent_id: Hashable, token: int, result: Any, now: float) -> Outcome:
        """The agent reports that the assignment ``token`` returned ``result``."""
        agent, task, stale = self._release(agent_id, token, now)
        if stale is not None:
            return stale
        assert agent is not None and task is not None
        agent.completed += 1
        task.result = result
        task.status = AssignmentStatus.COMPLETED
        task.token = 0
        outcome = Outcome(finished=[task], task=task)
        outcome.assignments.extend(self._fill(agent))
        return outcome

    def fail(
        self,
        agent_id: Hashable,
        token: int,
        error: BaseException,
        now: float,
        *,
        retry: bool = True,
    ) -> Outcome:
        """The agent reports that the attempt ``token`` raised ``error``; with
        ``retry=False`` the task fails at once (the task is at fault, not the agent)."""
        agent, task, stale = self._release(agent_id, token, now)
        if stale is not None:
            return stale
        assert agent is not None and task is not None
        agent.failed += 1
        outcome = Outcome(task=task)
        self._attempt_failed(task, agent, error, outcome, retry=retry)
        outcome.assignments.extend(self._fill(agent))
        return outcome

    def hand_back(self, agent_id: Hashable, token: int, now: float) -> Outcome:
        """A leaving agent returns an assignment it never started: no attempt is charged."""
        agent, task, stale = self._release(agent_id, token, now)
        if stale is not None:
            return stale
        assert agent is not None and task is not None
        task.attempts -= 1
        task.token = 0
        task.agent_id = None
        task.status = _QUEUED
        outcome = Outcome()
        self._place(task, outcome)
        outcome.assignments.extend(self._fill(agent))
        return outcome

    def cancel(
        self,
        task: TaskRecord,
        error: BaseException | None,
        status: AssignmentStatus = AssignmentStatus.CANCELLED,
    ) -> Outcome:
        """End a task that has not finished (CANCELLED, or FAILED when no agent can ever run
        it); a later report for it is discarded."""
        if task.status is not _QUEUED and task.status is not _ASSIGNED:
            return Outcome(accepted=False)
        if task.status is _QUEUED:
            self.queued -= 1  # it stays in its queue and is skipped there
        task.status = status
        task.token = 0
        if error is not None:
            task.errors.append(error)
        return Outcome(finished=[task])

    def stranded(self) -> Iterator[TaskRecord]:
        """Queued tasks whose capability has no online agent left to run them."""
        for cap in set(self._fresh) | set(self._constrained):
            if not any(agent.online for agent in self._capable.get(cap, ())):
                for task in (*self._fresh.get(cap, ()), *self._constrained.get(cap, ())):
                    if task.status is _QUEUED:
                        yield task

    # -- internals ------------------------------------------------------------------------------

    def _eligible(self, task: TaskRecord, agent: AgentRecord) -> bool:
        if agent.id == task.excluded:
            return False
        failed = task.failed_agents
        if failed is None or agent.id not in failed:
            return True
        # Back to an agent that failed it only when every capable online agent has.
        return all(
            other.id in failed or other.id == task.excluded
            for other in self._capable[task.capability]
            if other.online
        )

    def _place(self, task: TaskRecord, outcome: Outcome) -> None:
        best = None
        best_key: tuple[float, float] | None = None
        for agent in self._capable.get(task.capability, ()):
            load = len(agent.in_flight)
            if (
                load < agent.concurrency
                and agent.online
                and not agent.draining
                and self._eligible(task, agent)
            ):
                key = (load / agent.concurrency, agent.free_since)
                if best_key is None or key < best_key:
                    best, best_key = agent, key
        if best is not None:
            outcome.assignments.append(self._assign(task, best))
            return
        task.status = _QUEUED
        self.queued += 1
        if task.constrained:
            waiting = self._constrained.setdefault(task.capability, [])
            waiting.append(task)
            waiting.sort(key=lambda t: t.key)
        else:
            self._fresh.setdefault(task.capability, deque()).append(task)

    def _assign(self, task: TaskRecord, agent: AgentRecord) -> Assignment:
        token = next(self._tokens)
        task.status = _ASSIGNED
        task.token = token
        task.agent_id = agent.id
        task.attempts += 1
        agent.in_flight[token] = task
        return Assignment(task, agent.id, token, task.attempts)

    def _attempt_failed(
        self,
        task: TaskRecord,
        agent: AgentRecord,
        error: BaseException,
        outcome: Outcome,
        retry: bool = True,
    ) -> None:
        task.errors.append(error)
        task.token = 0
        if task.failed_agents is None:
            task.failed_agents = {agent.id}
        else:
            task.failed_agents.add(agent.id)
        if not retry or task.attempts >= self.max_attempts:
            task.status = AssignmentStatus.FAILED
            outcome.finished.append(task)
        else:
            self._place(task, outcome)

    def _next_for(self, agent: AgentRecord) -> TaskRecord | None:
        """The oldest waiting task that ``agent`` may take, removed from its queue."""
        best: TaskRecord | None = None
        best_source: deque[TaskRecord] | list[TaskRecord] | None = None
        for cap in agent.capabilities:
            fresh = self._fresh.get(cap)
            while fresh and fresh[0].status is not _QUEUED:
                fresh.popleft()  # cancelled while queued
            if fresh and (best is None or fresh[0].key < best.key):
                best, best_source = fresh[0], fresh
            constrained = self._constrained.get(cap)
            if constrained:
                constrained[:] = [t for t in constrained if t.status is _QUEUED]
                for task in constrained:
                    if best is not None and task.key > best.key:
                        break
                    if self._eligible(task, agent):
                        best, best_source = task, constrained
                        break
        if best is None:
            return None
        if isinstance(best_source, deque):
            best_source.popleft()
        else:
            assert best_source is not None
            best_source.remove(best)
        self.queued -= 1
        return best

    def _fill(self, agent: AgentRecord) -> list[Assignment]:
        assignments = []
        while agent.has_free_slot:
            task = self._next_for(agent)
            if task is None:
                break
            assignments.append(self._assign(task, agent))
        return assignments

    def _retry_constrained(self, capability: Hashable, outcome: Outcome) -> None:
        waiting = self._constrained.get(capability)
        if not waiting:
            return
        self._constrained[capability] = []
        for task in waiting:
            if task.status is _QUEUED:
                self.queued -= 1
                self._place(task, outcome)
