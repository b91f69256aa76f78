"""Values that describe a coordinator's run: statuses, event kinds, events and statistics.

Pure, like the scheduler's records: frozen snapshots and enums, no trio. The coordinator
makes them; monitors, tests and users read them.

The two enums a user compares with strings (:class:`AgentStatus` and :class:`EventKind`) are
string enums, so ``info.status == "offline"`` and ``event.kind == "task_completed"`` keep
working. :class:`AssignmentStatus` is a plain ``Enum`` compared by identity, like the
scheduler's ``TaskStatus``: its members are read on every report, and identity hashing is
the cheapest there is.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from enum import Enum, StrEnum
from typing import Any, NamedTuple

import attrs

__all__ = [
    "AgentInfo",
    "RunningTask",
    "AgentStats",
    "AgentStatus",
    "AssignmentStatus",
    "CoordinatorEvent",
    "CoordinatorStats",
    "EventKind",
]


class AssignmentStatus(Enum):
    """Where a submitted task stands. The last four are terminal."""

    QUEUED = "queued"  # waiting for a capable agent with a free slot
    WAITING = "waiting"  # waiting out a retry delay; holds no agent slot
    ASSIGNED = "assigned"  # an agent has it
    COMPLETED = "completed"
    FAILED = "failed"  # out of attempts (or rejected); the last attempt raised
    TIMEOUT = "timeout"  # out of attempts; the last attempt overran ``task_timeout``
    CANCELLED = "cancelled"

    # Members are singletons compared by identity; hashing them by identity too (in C)
    # instead of Enum's hash-of-name keeps the per-report status checks cheap.
    __hash__ = object.__hash__

    @property
    def is_terminal(self) -> bool:
        """Whether a task in this status has ended for good."""
        return self not in _LIVE


_LIVE = frozenset({AssignmentStatus.QUEUED, AssignmentStatus.WAITING, AssignmentStatus.ASSIGNED})


class AgentStatus(StrEnum):
    """An agent as the coordinator sees it."""

    IDLE = "idle"  # online, nothing in flight
    BUSY = "busy"  # online, at least one task in flight
    OFFLINE = "offline"  # crashed, silent, left, or waiting to be restarted


class EventKind(StrEnum):
    """What a :class:`CoordinatorEvent` reports."""

    AGENT_ONLINE = "agent_online"  # connected (or registered through the transport)
    AGENT_OFFLINE = "agent_offline"  # crashed, silent or left; ``error`` says which
    AGENT_RESTARTED = "agent_restarted"  # back online under the restart policy
    HEARTBEAT = "heartbeat"  # made only while someone subscribes
    TASK_QUEUED = "task_queued"  # submitted with no free capable agent
    TASK_ASSIGNED = "task_assigned"  # an attempt went out; ``attempt`` is its number
    ATTEMPT_FAILED = "attempt_failed"  # ``attempt`` is the number of the attempt that failed
    TASK_WAITING = "task_waiting"  # a retry waits out its delay (a delayed ``RetryPolicy``)
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_TIMEOUT = "task_timeout"  # failed for good, the last attempt having timed out
    TASK_CANCELLED = "task_cancelled"
    STALE_RESULT = "stale_result"  # a report under a superseded fencing token, discarded


@attrs.frozen
class RunningTask:
    """An attempt in progress on an agent: which task, which attempt, since when
    (``trio.current_time()`` when it went out) and for how long so far."""

    task_id: Hashable
    attempt: int
    started: float
    running_for: float


@attrs.frozen
class AgentInfo:
    """A snapshot of one agent, as the seed chapter names it.

    ``running`` lists its attempts in progress, longest-running first, with how long each
    has run: work that hangs (a ``process_task`` that never returns, while the agent keeps
    beating) shows here as an ever longer ``running_for``. ``in_flight`` counts the slots
    it has taken, which includes an attempt that was cancelled or superseded and has not
    answered yet (such an attempt is not in ``running``).
    """

    id: Hashable
    capabilities: frozenset[Hashable]
    status: AgentStatus
    tasks_completed: int
    last_heartbeat: float
    in_flight: int
    running: tuple[RunningTask, ...] = ()

    @property
    def longest_running(self) -> float:
        """How long its longest-running attempt has run so far (0.0 when it runs none)."""
        return self.running[0].running_for if self.running else 0.0


@attrs.frozen
class AgentStats:
    """One agent's row in :class:`CoordinatorStats`."""

    id: Hashable
    status: AgentStatus
    in_flight: int
    completed: int
    failed: int
    last_heartbeat: float
    restarts: int
    running: tuple[RunningTask, ...] = ()
    """Its attempts in progress, longest-running first (as in :class:`AgentInfo`)."""


@attrs.frozen
class CoordinatorStats:
    """Totals and a row per agent (``Coordinator.stats()``).

    ``failed`` and ``timeout`` count tasks by how they ended (as the scheduler's ``failed``
    and ``timeout`` do); ``retries`` counts attempts after the first, ``reassigned`` those
    of them that were cut short because their agent went away.
    """

    submitted: int
    queued: int
    waiting: int
    in_flight: int
    completed: int
    failed: int
    timeout: int
    cancelled: int
    retries: int
    reassigned: int
    heartbeats_missed: int
    restarts: int
    stale_results: int
    agents: Mapping[Hashable, AgentStats]

    @property
    def finished(self) -> int:
        """Tasks in a terminal state."""
        return self.completed + self.failed + self.timeout + self.cancelled

    def to_dict(self) -> dict[str, Any]:
        """The totals and the agents' rows as plain dicts (for JSON, logs, a dashboard)."""
        counts = {
            field.name: getattr(self, field.name)
            for field in attrs.fields(CoordinatorStats)
            if field.name != "agents"
        }
        return {**counts, "agents": {aid: attrs.asdict(row) for aid, row in self.agents.items()}}


class CoordinatorEvent(NamedTuple):
    """Something that happened in a coordinator (``Coordinator.subscribe()``).

    ``at`` is ``trio.current_time()``; ``attempt`` is the attempt the event is about (0 when
    none); ``error`` is set for ``agent_offline``, ``attempt_failed`` and the unsuccessful
    ends of a task.

    A named tuple, not an attrs class: immutable all the same, and a run makes a few per
    task for each subscriber, so the cost of making one counts (0.17 µs through
    ``tuple.__new__``, against 0.58 for the frozen attrs class, which sets each field with
    ``object.__setattr__``). It also unpacks as ``(kind, at, agent_id, task_id, attempt,
    error)``.
    """

    kind: EventKind
    at: float
    agent_id: Hashable = None
    task_id: Hashable = None
    attempt: int = 0
    error: BaseException | None = None
