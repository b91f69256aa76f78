"""Dispatch: which agent gets which task, and what happens when an attempt ends.

Pure and synchronous, like ``h11``: the coordinator feeds it events (a task submitted, an
agent registered, a result reported with its fencing token, an agent gone silent, a retry
delay over) and it answers with an :class:`Outcome`: the assignments to deliver, the tasks
that are finished for good, the retries that must first wait. No trio, no I/O, so every
rule here is unit-tested on its own.

The rules:

* A task goes to a capable, online agent with a free slot and the lowest load (tasks in
  flight / concurrency), ties to the agent that has been free longest. With no such agent it
  waits, first come first served, and goes out the moment one frees up or comes online.
* Every assignment carries a fresh *fencing token*. A report under any other token (from an
  agent already declared offline, or for an attempt that was superseded or cancelled) is
  discarded, so every task completes exactly once. It still frees the slot the agent held.
* A failed attempt is retried under the coordinator's :class:`~trioflow.RetryPolicy`, with
  the scheduler's meaning: ``max_retries`` retries after the first attempt, an error that
  does not match ``retry_on`` fails the task at once, and the policy's delay is waited out
  (status ``WAITING``, holding no agent slot) before the retry is placed. An attempt cut
  short because its agent went away is not the task's fault: it is retried whatever
  ``retry_on`` says, while retries remain. A task whose last attempt timed out ends
  ``TIMEOUT``; otherwise it ends ``FAILED``.
* The retry goes to a capable online agent that has not failed the task yet; when every one
  has, to any capable online agent. A task delegated with ``request()`` never goes to the
  agent that asked for it.

Costs: a submit or a report is O(agents with the capability) at most, never a function of
the number of tasks. Waiting tasks without a constraint sit in a FIFO deque per capability.
Tasks with one (agents that failed them, or a requester to avoid) sit in a heap per
*avoid set* (the same agents to avoid: the same heap), ordered by submission; an agent
looking for work looks only at the head of each heap it may take from. A fast-failing agent
next to a healthy one therefore costs one heap operation per retried task, not a rescan of
every waiting retry on every report.
"""

from __future__ import annotations

import heapq
import itertools
import random as _random
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, NamedTuple

import attrs

from .._errors import NoCapableAgentError
from .._retry import RetryPolicy, as_retry_policy
from .._validate import check_hashable, check_int
from ._records import AssignmentStatus

__all__ = [
    "DEFAULT_RETRY",
    "AgentRecord",
    "Assignment",
    "check_agent_id",
    "Dispatcher",
    "Outcome",
    "TaskRecord",
    "resolve_retry",
]

#: The coordinator's default: two retries (three attempts), placed at once.
DEFAULT_RETRY: Final = RetryPolicy(max_retries=2, delay=0.0)

# Module constants: on 3.11 an ``Enum.MEMBER`` lookup costs ~10x a global, on every report.
_QUEUED: Final = AssignmentStatus.QUEUED
_WAITING: Final = AssignmentStatus.WAITING
_ASSIGNED: Final = AssignmentStatus.ASSIGNED
_COMPLETED: Final = AssignmentStatus.COMPLETED
_FAILED: Final = AssignmentStatus.FAILED
_TIMEOUT: Final = AssignmentStatus.TIMEOUT
_CANCELLED: Final = AssignmentStatus.CANCELLED


def resolve_retry(
    retry: RetryPolicy | int | None, max_attempts: int | None = None
) -> RetryPolicy | None:
    """The retry policy that ``open_coordinator(retry=..., max_attempts=...)`` asks for.

    ``retry`` has the scheduler's meaning: ``None`` (no retry), an int (that many retries
    with the default :class:`~trioflow.RetryPolicy`, delays included) or a policy.
    ``max_attempts=n`` is the seed chapter's spelling of
    ``retry=RetryPolicy(max_retries=n - 1, delay=0)``; it may not be given with ``retry``
    (an explicit ``retry`` other than the default object counts as given).

    Raises:
        TypeError, ValueError: a bad ``retry`` or ``max_attempts``, or both given.
    """
    if max_attempts is None:
        return as_retry_policy(retry)
    attempts = check_int("max_attempts", max_attempts, minimum=1)
    if retry is not DEFAULT_RETRY:
        raise ValueError("give retry= or max_attempts=, not both")
    return RetryPolicy(max_retries=attempts - 1, delay=0.0)


def check_agent_id(agent_id: object) -> None:
    """Refuse an id no agent may have: ``None`` means "no agent" here (a task's
    ``agent_id`` before it is assigned, a task that avoids no requester), so an agent with
    that id could be given its own delegated task, and wait on itself for ever.

    Raises:
        ValueError: ``agent_id`` is ``None``. TypeError: it is not hashable.
    """
    if agent_id is None:
        raise ValueError("an agent's id may not be None")
    check_hashable("an agent's id", agent_id)


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
    #: For an agent with a single capability: that capability and its FIFO of waiting
    #: tasks, so that the report path finds its next task without a loop.
    sole: tuple[Hashable, deque[TaskRecord]] | None = None

    @property
    def has_free_slot(self) -> bool:
        return self.online and not self.draining and len(self.in_flight) < self.concurrency


_NO_ERRORS: tuple[BaseException, ...] = ()


class TaskRecord:
    """One submitted task and its attempts.

    A plain slotted class rather than an attrs one: one is made per task, and its
    hand-written ``__init__`` costs half of what the generated one did (0.28 against
    0.57 µs). ``errors`` is an empty tuple until the first failed attempt, when it becomes
    a list: most tasks never fail.
    """

    __slots__ = (
        "agent_id",
        "assigned_at",
        "attempts",
        "capability",
        "errors",
        "excluded",
        "failed_agents",
        "id",
        "key",
        "owner",
        "payload",
        "reassigned",
        "result",
        "status",
        "token",
        "waiter",
    )

    def __init__(
        self,
        key: int,
        capability: Hashable,
        payload: Mapping[str, Any],
        excluded: Hashable = None,
        owner: Any = None,
    ) -> None:
        self.key = key
        #: The public id (``AssignmentHandle.id``): ``key`` unless the coordinator names it.
        self.id: Hashable = key
        self.capability = capability
        self.payload = payload
        #: An agent that must not take it (the requester of a delegated task).
        self.excluded = excluded
        #: A delegated task's: the token of the requester's attempt that waits for it.
        self.waiter = 0
        self.status: AssignmentStatus = _QUEUED
        self.attempts = 0
        #: The current assignment's fencing token; 0 when not assigned.
        self.token = 0
        #: When the current (or last) attempt went out.
        self.assigned_at = 0.0
        self.agent_id: Hashable = None
        self.failed_agents: set[Hashable] | None = None
        self.errors: list[BaseException] | tuple[BaseException, ...] = _NO_ERRORS
        self.reassigned = 0
        self.result: Any = None
        #: Whatever the I/O layer keeps for this task (its handle, say).
        self.owner = owner

    def __repr__(self) -> str:
        return f"<TaskRecord {self.key} {self.capability!r} {self.status.value}>"

    @property
    def constrained(self) -> bool:
        return self.failed_agents is not None or self.excluded is not None

    def add_error(self, error: BaseException) -> None:
        errors = self.errors
        if isinstance(errors, list):
            errors.append(error)
        else:
            self.errors = [error]


# The agents a constrained task avoids: (the requester, the agents that failed it).
_Avoid = tuple[Hashable, frozenset[Hashable]]


class Assignment(NamedTuple):
    """Deliver ``task.payload`` to ``agent_id``; its report must quote ``token``.
    (A named tuple: frozen, and cheap to make once per attempt.)"""

    task: TaskRecord
    agent_id: Hashable
    token: int
    attempt: int


class Outcome:
    """What a report or an event did.

    ``assignments`` to deliver; ``finished``: tasks finished for good; ``delayed``: retries
    to hand back through :meth:`Dispatcher.retry_due` after their delay (``None`` when
    there are none). ``accepted`` is False for a stale report (discarded); ``task`` is the
    task a report was about when it counted, and ``attempt`` the number of the attempt it
    ended. (A plain slotted class: one is made per report, on the hot path.)
    """

    __slots__ = ("accepted", "assignments", "attempt", "delayed", "finished", "task")

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
        self.attempt = 0 if task is None else task.attempts
        self.delayed: list[tuple[TaskRecord, float]] | None = None


class Dispatcher:
    """Agents, waiting tasks and assignments, with no I/O.

    Args:
        retry: the retry policy (``None``: one attempt per task); see :func:`resolve_retry`.
        random: a source of floats in ``[0, 1)`` for the policy's jitter.
    """

    def __init__(
        self,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        *,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy or None, got {retry!r}")
        self.retry = retry
        self._random = random
        self.agents: dict[Hashable, AgentRecord] = {}
        self._capable: dict[Hashable, list[AgentRecord]] = {}
        self._fresh: dict[Hashable, deque[TaskRecord]] = {}
        self._constrained: dict[Hashable, dict[_Avoid, list[tuple[int, TaskRecord]]]] = {}
        # Unfinished delegated tasks (``request()``) by key, and for each attempt that waits
        # on some, how many: what the deadlock check reads (see :meth:`deadlocked`).
        self._requests: dict[int, TaskRecord] = {}
        self._blocking: dict[int, int] = {}
        self._keys = itertools.count(1)
        self._tokens = itertools.count(1)
        self.queued = 0
        self.waiting = 0
        self.retries = 0
        self.reassigned = 0

    @property
    def max_attempts(self) -> int:
        return 1 + (self.retry.max_retries if self.retry is not None else 0)

    # -- agents -----------------------------------------------------------------------------

    def register(
        self, agent_id: Hashable, capabilities: Iterable[Hashable], concurrency: int, now: float
    ) -> Outcome:
        """Add an agent (online) and give it waiting work.

        Raises:
            ValueError: the id is registered already, or ``None`` (see
                :func:`check_agent_id`); no capabilities; ``concurrency < 1``.
            TypeError: an unhashable id, or a ``concurrency`` that is not an int.
        """
        check_agent_id(agent_id)
        if agent_id in self.agents:
            raise ValueError(f"an agent with id {agent_id!r} is already registered")
        concurrency = check_int("concurrency", concurrency, minimum=1)
        caps = frozenset(capabilities)
        if not caps:
            raise ValueError(f"agent {agent_id!r} has no capabilities")
        agent = AgentRecord(agent_id, caps, concurrency, free_since=now, last_heartbeat=now)
        self.agents[agent_id] = agent
        for cap in caps:
            self._capable.setdefault(cap, []).append(agent)
        if len(caps) == 1:
            (cap,) = caps
            agent.sole = (cap, self._fresh.setdefault(cap, deque()))
        return Outcome(assignments=self._fill(agent, now))

    def set_online(self, agent_id: Hashable, now: float) -> Outcome:
        """An offline agent is back (restarted): it starts fresh and takes waiting work."""
        agent = self.agents[agent_id]
        agent.online = True
        agent.draining = False
        agent.free_since = agent.last_heartbeat = now
        return Outcome(assignments=self._fill(agent, now))

    def set_draining(self, agent_id: Hashable) -> None:
        """The agent is leaving: it gets no new work."""
        self.agents[agent_id].draining = True

    def set_offline(self, agent_id: Hashable, error: BaseException, now: float) -> Outcome:
        """The agent is gone (silent, crashed or left): its in-flight attempts fail with
        ``error`` and are retried while retries remain. (Idempotent.)"""
        agent = self.agents[agent_id]
        if not agent.online:
            return Outcome()
        agent.online = False
        # Only live attempts are lost: a slot may still be held for an attempt that was
        # cancelled or superseded (it is freed when the agent reports), and its task is
        # finished or elsewhere already.
        lost = [task for token, task in agent.in_flight.items() if task.token == token]
        agent.in_flight.clear()
        outcome = Outcome()
        for task in lost:
            self.reassigned += 1
            task.reassigned += 1
            self._attempt_failed(task, agent.id, error, outcome, now, lost=True)
        # A waiting retry that avoided only this agent's peers may now go to one of them (an
        # agent that failed it takes it back once every capable online agent has).
        for cap in agent.capabilities:
            if self._constrained.get(cap):
                for other in self._capable[cap]:
                    if other.has_free_slot:
                        outcome.assignments.extend(self._fill(other, now))
        return outcome

    def heartbeat(self, agent_id: Hashable, now: float) -> None:
        agent = self.agents.get(agent_id)
        if agent is not None and agent.online:
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

    def running(self, agent_id: Hashable) -> list[TaskRecord]:
        """The agent's attempts in progress that a report would still count for (not those
        cancelled or superseded), longest-running first."""
        live = [t for token, t in self.agents[agent_id].in_flight.items() if t.token == token]
        live.sort(key=lambda task: task.assigned_at)
        return live

    def online_capable(self, capability: Hashable) -> list[AgentRecord]:
        return [a for a in self._capable.get(capability, ()) if a.online]

    def is_known_capability(self, capability: Hashable) -> bool:
        return capability in self._capable

    # -- tasks ------------------------------------------------------------------------------

    def submit(
        self,
        capability: Hashable,
        payload: Mapping[str, Any],
        excluded: Hashable = None,
        owner: Any = None,
        *,
        now: float = 0.0,
        waiter: int = 0,
        adopt: bool = False,
    ) -> tuple[TaskRecord, Outcome]:
        """Add a task: assigned at once when an agent is free, else queued.

        ``adopt``: a task an earlier coordinator accepted (found in a transport's store after
        a restart): it is queued even when no agent with its capability has registered yet,
        since the agents of the earlier coordinator register again once they see the new one.

        Raises:
            NoCapableAgentError: no registered agent (online or not) has ``capability``,
                other than ``excluded`` (not raised when adopting).
        """
        capable = self._capable.get(capability)
        if not adopt and (
            not capable or (excluded is not None and all(agent.id == excluded for agent in capable))
        ):
            raise NoCapableAgentError(capability)
        task = TaskRecord(next(self._keys), capability, payload, excluded=excluded, owner=owner)
        outcome = Outcome()
        if excluded is None:
            self._place_new(task, outcome, now)
        else:
            task.waiter = waiter
            self._requests[task.key] = task
            if waiter:
                self._blocking[waiter] = self._blocking.get(waiter, 0) + 1
            self._place(task, outcome, now)
        return task, outcome

    def submit_many(
        self,
        capabilities: Sequence[Hashable],
        payloads: Sequence[Mapping[str, Any]],
        owner: Any = None,
        *,
        now: float = 0.0,
    ) -> tuple[list[TaskRecord], Outcome]:
        """Add several tasks (``run_all``), placed exactly as :meth:`submit` would place them
        one after the other, with one outcome for them all. Every capability must be known
        (the caller has checked: nothing is added when one is not).

        Raises:
            NoCapableAgentError: a capability no registered agent has.
        """
        for capability in set(capabilities):
            if capability not in self._capable:
                raise NoCapableAgentError(capability)
        outcome = Outcome()
        records = []
        keys = self._keys
        fresh_queues = self._fresh
        queued = 0
        for capability, payload in zip(capabilities, payloads, strict=True):
            task = TaskRecord(next(keys), capability, payload, None, owner)
            records.append(task)
            # _place_new, inlined: this loop runs once per task of a run_all.
            fresh = fresh_queues.get(capability)
            if fresh and fresh[-1].status is _QUEUED:
                queued += 1
                fresh.append(task)
            else:
                self._place(task, outcome, now)
        self.queued += queued
        return records, outcome

    def complete_and_take(
        self, agent_id: Hashable, token: int, result: Any, now: float
    ) -> tuple[TaskRecord, TaskRecord | None] | None:
        """:meth:`complete` for the common report, handing back the agent's next assignment
        in the same call instead of an :class:`Outcome` (the in-memory transport's fast path).

        It applies when the report counts and the agent is online, not leaving and at its
        full concurrency. Then the slot this report frees is the agent's only free one, so
        :meth:`complete` would assign it at most one task: this returns ``(the finished task,
        that next task or None)``, the next task already assigned (its ``token`` and
        ``attempts`` are the assignment's). In any other case it returns ``None`` having
        changed nothing, and the caller reports through :meth:`complete`.
        """
        agent = self.agents.get(agent_id)
        if agent is None:
            return None
        in_flight = agent.in_flight
        task = in_flight.get(token)
        if (
            task is None
            or task.token != token
            or len(in_flight) != agent.concurrency
            or not agent.online
            or agent.draining
        ):
            return None
        del in_flight[token]
        agent.free_since = now
        agent.completed += 1
        task.result = result
        task.status = _COMPLETED
        task.token = 0
        if task.excluded is not None:
            self._request_ended(task)
        sole = agent.sole
        if sole is None or self._constrained.get(sole[0]):
            after = self._next_for(agent)
        else:
            # What _next_for decides for an agent with one capability and no task waiting
            # under constraints for it: the head of that capability's FIFO.
            fresh = sole[1]
            while fresh and fresh[0].status is not _QUEUED:
                fresh.popleft()  # cancelled while queued
            if not fresh:
                return task, None
            after = fresh.popleft()
            self.queued -= 1
            # _take, inlined
            token = next(self._tokens)
            after.status = _ASSIGNED
            after.token = token
            after.assigned_at = now
            after.agent_id = agent_id
            after.attempts += 1
            in_flight[token] = after
            return task, after
        if after is not None:
            self._take(after, agent, now)
        return task, after

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
            return None, None, Outcome(assignments=self._fill(agent, now), accepted=False)
        return agent, task, None

    def complete(self, agent_id: Hashable, token: int, result: Any, now: float) -> Outcome:
        """The agent reports that the assignment ``token`` returned ``result``."""
        agent, task, stale = self._release(agent_id, token, now)
        if stale is not None:
            return stale
        assert agent is not None and task is not None
        agent.completed += 1
        task.result = result
        task.status = _COMPLETED
        task.token = 0
        if task.excluded is not None:
            self._request_ended(task)
        outcome = Outcome(finished=[task], task=task)
        outcome.assignments.extend(self._fill(agent, now))
        return outcome

    def fail(
        self,
        agent_id: Hashable,
        token: int,
        error: BaseException,
        now: float,
        *,
        retry: bool = True,
        timed_out: bool = False,
    ) -> Outcome:
        """The agent reports that the attempt ``token`` raised ``error`` (or, with
        ``timed_out``, overran its time limit). With ``retry=False`` the task fails at once:
        the task is at fault, not the agent."""
        agent, task, stale = self._release(agent_id, token, now)
        if stale is not None:
            return stale
        assert agent is not None and task is not None
        agent.failed += 1
        outcome = Outcome(task=task)
        self._attempt_failed(task, agent.id, error, outcome, now, retry=retry, timed_out=timed_out)
        outcome.assignments.extend(self._fill(agent, now))
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
        outcome = Outcome()
        self._place(task, outcome, now)
        outcome.assignments.extend(self._fill(agent, now))
        return outcome

    def retry_due(self, task: TaskRecord, now: float = 0.0) -> Outcome:
        """The retry delay of ``task`` (from :attr:`Outcome.delayed`) is over: place it.
        Nothing happens if it was cancelled meanwhile."""
        if task.status is not _WAITING:
            return Outcome(accepted=False)
        self.waiting -= 1
        outcome = Outcome()
        self._place(task, outcome, now)
        return outcome

    def cancel(
        self,
        task: TaskRecord,
        error: BaseException | None,
        status: AssignmentStatus = _CANCELLED,
    ) -> Outcome:
        """End a task that has not finished (CANCELLED, or FAILED when no agent can ever run
        it); a later report for it is discarded. An agent working on it keeps its slot until
        it reports."""
        current = task.status
        if current is _QUEUED:
            self.queued -= 1  # it stays in its queue and is skipped there
        elif current is _WAITING:
            self.waiting -= 1
        elif current is not _ASSIGNED:
            return Outcome(accepted=False)
        task.status = status
        task.token = 0
        if error is not None:
            task.add_error(error)
        if task.excluded is not None:
            self._request_ended(task)
        return Outcome(finished=[task])

    def deadlocked(
        self, restarting: Collection[Hashable] = (), new: TaskRecord | None = None
    ) -> list[TaskRecord]:
        """Delegated tasks waiting in a queue that no agent will ever take.

        A deadlock detector over the wait-for graph, as for resources with several units
        (an agent's ``concurrency`` slots). Every attempt that waits on no request is
        assumed to finish some day and free its slot; an agent that has, or will have, a
        free slot takes every queued task it may take, one after the other; a request
        finishes once an agent that may take it will have a free slot (or once its own
        attempt can finish, if it runs already); an attempt that waits on requests
        finishes once they all can. What cannot be concluded to finish is deadlocked:
        every agent that may take it is busy, in every slot, with attempts that wait
        (perhaps through other agents' requests) on it or on others like it.

        Only agents as they are count, and those offline in ``restarting`` (they come back
        with every slot free): an agent that may connect later does not. But a request no
        online agent may take at all is not deadlocked: it waits for one to come online,
        as any task does while the coordinator's block runs. A request whose
        waiting attempt is not known (``waiter`` 0: made outside a work loop, or through
        a transport that does not say) holds no slot here, so it can be found deadlocked
        but never causes a false alarm. With ``new`` (a request just queued), the check
        stops at once if ``new`` can be served without anything that waits: adding it then
        changes nothing for the others.

        O(attempts in progress + requests x agents with their capability) per pass; a
        pass resolves at least one request or ends.
        """
        requests = self._requests
        if not any(task.status is _QUEUED for task in requests.values()):
            return []
        # The attempts that wait on requests, and their agents. A superseded or cancelled
        # attempt counts as any other: until it answers, it holds its slot, and if it waits
        # on requests (it did not see its cancellation yet, or shields itself from it),
        # it holds the slot until they finish.
        holder: dict[int, AgentRecord] = {}
        for agent in self.agents.values():
            for token in agent.in_flight:
                if token in self._blocking:
                    holder[token] = agent
        remaining = {token: self._blocking[token] for token in holder}
        frees: set[Hashable] = set()
        for agent in self.agents.values():
            if not agent.online:
                if agent.id in restarting:
                    frees.add(agent.id)
            elif len(agent.in_flight) < agent.concurrency or any(
                token not in remaining for token in agent.in_flight
            ):
                frees.add(agent.id)
        if new is not None and new.status is _QUEUED and self._served_by(new, frees, restarting):
            return []
        unresolved = dict(requests)
        changed = True
        while changed:
            changed = False
            for key, task in list(unresolved.items()):
                if task.status is _ASSIGNED:
                    finishes = task.token not in remaining
                else:  # queued, or waiting out a retry delay before it is queued
                    finishes = self._served_by(task, frees, restarting)
                if not finishes:
                    continue
                del unresolved[key]
                changed = True
                waiter = task.waiter
                if waiter in remaining:
                    remaining[waiter] -= 1
                    if not remaining[waiter]:
                        del remaining[waiter]
                        frees.add(holder[waiter].id)
        return [task for task in unresolved.values() if task.status is _QUEUED]

    def deadlock_cycle(self, task: TaskRecord) -> list[Hashable]:
        """For an error message: agents in the wait that keeps ``task`` from being served,
        from its requester on (an agent that may take it, one its slot waits on...), until
        one repeats."""
        path: list[Hashable] = [task.excluded]
        seen = {task.excluded}
        while True:
            takers = [
                agent
                for agent in self._capable.get(task.capability, ())
                if agent.id != task.excluded and agent.online
            ]
            if not takers:
                return path
            agent = takers[0]
            path.append(agent.id)
            if agent.id in seen:
                return path
            seen.add(agent.id)
            waited = [
                request
                for request in self._requests.values()
                if request.waiter in agent.in_flight and request is not task
            ]
            if not waited:
                return path
            task = waited[0]
            if task.status is _ASSIGNED:
                path.append(task.agent_id)
                if task.agent_id in seen:
                    return path
                seen.add(task.agent_id)
                inner = [r for r in self._requests.values() if r.waiter == task.token]
                if not inner:
                    return path
                task = inner[0]

    def _served_by(
        self, task: TaskRecord, frees: set[Hashable], restarting: Collection[Hashable]
    ) -> bool:
        """Whether ``task`` can be concluded to be served: an agent that may take it (not
        its requester, not leaving) is online or about to be restarted, and will have a
        free slot. A task that no online agent may take waits for one to connect or come
        back: not a deadlock (it is stranded, and failed as such once the block ends), so
        it counts as served here."""
        avoid = (task.excluded, frozenset(task.failed_agents or ()))
        blocked_taker = False
        for agent in self._capable.get(task.capability, ()):
            if agent.draining or agent.id == task.excluded:
                continue
            if not agent.online:
                if agent.id in restarting:
                    return True
            elif self._may_take(avoid, agent, task.capability):
                if agent.id in frees:
                    return True
                blocked_taker = True
        return not blocked_taker

    def _request_ended(self, task: TaskRecord) -> None:
        """A delegated task reached its end: its waiting attempt waits on one fewer."""
        if self._requests.pop(task.key, None) is None:
            return
        waiter = task.waiter
        if waiter:
            left = self._blocking[waiter] - 1
            if left:
                self._blocking[waiter] = left
            else:
                del self._blocking[waiter]

    def stranded(self) -> Iterator[TaskRecord]:
        """Queued tasks that no online agent may run: none with the capability is online,
        or the only one is the requester the task must avoid."""
        for cap in set(self._fresh) | set(self._constrained):
            online = [agent.id for agent in self._capable.get(cap, ()) if agent.online]
            if len(online) > 1:
                continue
            groups = self._constrained.get(cap, {})
            waiting = [*self._fresh.get(cap, ()), *(t for h in groups.values() for _, t in h)]
            for task in waiting:
                if task.status is _QUEUED and (not online or online[0] == task.excluded):
                    yield task

    def is_stranded(self, task: TaskRecord) -> bool:
        """Whether ``task`` is queued with no online agent that may run it."""
        return task.status is _QUEUED and not any(
            agent.online and agent.id != task.excluded
            for agent in self._capable.get(task.capability, ())
        )

    # -- internals ------------------------------------------------------------------------------

    def _may_retake(self, task_avoid: _Avoid, capability: Hashable) -> bool:
        """Whether every capable online agent (but the requester) has failed the task, so an
        agent that failed it may take it again."""
        excluded, failed = task_avoid
        return all(
            other.id in failed or other.id == excluded
            for other in self._capable[capability]
            if other.online
        )

    def _may_take(self, avoid: _Avoid, agent: AgentRecord, capability: Hashable) -> bool:
        excluded, failed = avoid
        if agent.id == excluded:
            return False
        return agent.id not in failed or self._may_retake(avoid, capability)

    def _place_new(self, task: TaskRecord, outcome: Outcome, now: float) -> None:
        """Place a new task that avoids no agent. While a live task waits in the FIFO of its
        capability, no capable agent has a free slot (a slot is filled from the FIFOs the
        moment it frees, and an agent that comes online is filled at once), so the new task
        joins the end of the FIFO without a scan of the agents: it is what :meth:`_place`
        would decide, in O(1)."""
        fresh = self._fresh.get(task.capability)
        if fresh and fresh[-1].status is _QUEUED:
            self.queued += 1  # a new record is QUEUED already
            fresh.append(task)
        else:
            self._place(task, outcome, now)

    def _place(self, task: TaskRecord, outcome: Outcome, now: float) -> None:
        avoid: _Avoid | None = None
        retake = False
        if task.constrained:
            avoid = (task.excluded, frozenset(task.failed_agents or ()))
            retake = self._may_retake(avoid, task.capability)
        best = None
        best_key: tuple[float, float] | None = None
        for agent in self._capable.get(task.capability, ()):
            load = len(agent.in_flight)
            if load >= agent.concurrency or not agent.online or agent.draining:
                continue
            if avoid is not None and (
                agent.id == avoid[0] or (agent.id in avoid[1] and not retake)
            ):
                continue
            key = (load / agent.concurrency, agent.free_since)
            if best_key is None or key < best_key:
                best, best_key = agent, key
        if best is not None:
            outcome.assignments.append(self._assign(task, best, now))
            return
        task.status = _QUEUED
        self.queued += 1
        if avoid is None:
            self._fresh.setdefault(task.capability, deque()).append(task)
        else:
            groups = self._constrained.setdefault(task.capability, {})
            heapq.heappush(groups.setdefault(avoid, []), (task.key, task))

    def _assign(self, task: TaskRecord, agent: AgentRecord, now: float) -> Assignment:
        return Assignment(task, agent.id, self._take(task, agent, now), task.attempts)

    def _take(self, task: TaskRecord, agent: AgentRecord, now: float) -> int:
        """Start an attempt of ``task`` on ``agent`` under a fresh fencing token."""
        token = next(self._tokens)
        task.status = _ASSIGNED
        task.token = token
        task.assigned_at = now
        task.agent_id = agent.id
        task.attempts += 1
        agent.in_flight[token] = task
        return token

    def _attempt_failed(
        self,
        task: TaskRecord,
        agent_id: Hashable,
        error: BaseException,
        outcome: Outcome,
        now: float,
        *,
        retry: bool = True,
        timed_out: bool = False,
        lost: bool = False,
    ) -> None:
        task.add_error(error)
        task.token = 0
        if task.failed_agents is None:
            task.failed_agents = {agent_id}
        else:
            task.failed_agents.add(agent_id)
        policy = self.retry
        retries_done = task.attempts - 1
        if (
            not retry
            or policy is None
            or retries_done >= policy.max_retries
            or not (lost or policy.should_retry(error, retries_done))
        ):
            task.status = _TIMEOUT if timed_out else _FAILED
            if task.excluded is not None:
                self._request_ended(task)
            outcome.finished.append(task)
            return
        self.retries += 1
        delay = policy.delay_for(retries_done + 1, self._random) if policy.delay else 0.0
        if delay > 0:
            task.status = _WAITING
            self.waiting += 1
            if outcome.delayed is None:
                outcome.delayed = []
            outcome.delayed.append((task, delay))
        else:
            self._place(task, outcome, now)

    def _next_for(self, agent: AgentRecord) -> TaskRecord | None:
        """The oldest waiting task that ``agent`` may take, removed from its queue."""
        best: TaskRecord | None = None
        best_fresh: deque[TaskRecord] | None = None
        best_heap: list[tuple[int, TaskRecord]] | None = None
        for cap in agent.capabilities:
            fresh = self._fresh.get(cap)
            if fresh:
                while fresh and fresh[0].status is not _QUEUED:
                    fresh.popleft()  # cancelled while queued
                if fresh and (best is None or fresh[0].key < best.key):
                    best, best_fresh, best_heap = fresh[0], fresh, None
            groups = self._constrained.get(cap)
            if groups:
                empty = None
                for avoid, heap in groups.items():
                    while heap and heap[0][1].status is not _QUEUED:
                        heapq.heappop(heap)
                    if not heap:
                        empty = [*(empty or ()), avoid]
                        continue
                    head = heap[0][1]
                    if (best is None or head.key < best.key) and self._may_take(avoid, agent, cap):
                        best, best_fresh, best_heap = head, None, heap
                if empty:
                    for avoid in empty:
                        del groups[avoid]
        if best is None:
            return None
        if best_fresh is not None:
            best_fresh.popleft()
        else:
            assert best_heap is not None
            heapq.heappop(best_heap)
        self.queued -= 1
        return best

    def _fill(self, agent: AgentRecord, now: float) -> list[Assignment]:
        assignments = []
        while agent.has_free_slot:
            task = self._next_for(agent)
            if task is None:
                break
            assignments.append(self._assign(task, agent, now))
        return assignments
