"""RunView: what a person watching a run wants to know, folded from its events.

Pure and synchronous: it takes the scheduler's ``TaskEvent``s and the coordinator's
``CoordinatorEvent``s one at a time and keeps counts, the running tasks, recent failures and a
row per agent. Rendering it is another module's business.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable
from typing import Any

import attrs

_TERMINAL = {"completed", "failed", "timeout", "cancelled"}
_FAILED = {"failed", "timeout", "cancelled"}


@attrs.define
class Running:
    task_id: Hashable
    attempt: int
    since: float
    agent_id: Hashable = None


@attrs.define
class Failure:
    at: float
    what: str  # a task id or an agent id, as text
    status: str
    error: str


@attrs.define
class AgentRow:
    status: str = "idle"
    in_flight: int = 0
    completed: int = 0
    failed: int = 0
    reassigned: int = 0
    restarts: int = 0
    last_event: float = 0.0
    last_heartbeat: float | None = None


class RunView:
    """Counts, progress, running tasks, recent failures and agents, kept from events."""

    def __init__(self, started: float, recent_failures: int = 5) -> None:
        self.started = started
        self.last_at = started
        self.total = 0
        self.finished = 0
        self.counts: Counter[str] = Counter()
        self.running: dict[Hashable, Running] = {}
        self.failures: deque[Failure] = deque(maxlen=recent_failures)
        self.agents: dict[Hashable, AgentRow] = {}
        self.reassigned = 0
        self.failure_count = 0  # every failure ever recorded; ``failures`` keeps the recent
        self._status: dict[Hashable, str] = {}

    # -- derived ---------------------------------------------------------------------------

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.started)

    def rate(self, now: float) -> float:
        """Finished tasks per second so far."""
        elapsed = self.elapsed(now)
        return self.finished / elapsed if elapsed > 0 else 0.0

    def eta(self, now: float) -> float | None:
        """Seconds to finish the known tasks at the current rate, or ``None``."""
        rate = self.rate(now)
        remaining = self.total - self.finished
        if remaining <= 0:
            return 0.0
        return remaining / rate if rate > 0 else None

    # -- folding events -----------------------------------------------------------------------

    def _record_failure(self, failure: Failure) -> None:
        self.failures.append(failure)
        self.failure_count += 1

    def apply(self, event: Any) -> None:
        """Fold one scheduler or coordinator event into the view."""
        self.last_at = max(self.last_at, event.at)
        if hasattr(event, "kind"):
            self._coordinator_event(event)
        else:
            self._task_event(event)

    def _move(self, task_id: Hashable, status: str) -> bool:
        """Record ``task_id``'s new status; True if it just finished."""
        old = self._status.get(task_id)
        if old is None:
            self.total += 1
        else:
            self.counts[old] -= 1
        self._status[task_id] = status
        self.counts[status] += 1
        if status in _TERMINAL and old not in _TERMINAL:
            self.finished += 1
            self.running.pop(task_id, None)
            return True
        return False

    def _task_event(self, event: Any) -> None:
        status = event.status.value
        finished = self._move(event.task_id, status)
        if status == "running":
            self.running[event.task_id] = Running(event.task_id, event.attempt, event.at)
        else:
            self.running.pop(event.task_id, None)
        if (finished and status in _FAILED) or (status == "waiting" and event.error):
            label = status if finished else "retrying"
            self._record_failure(
                Failure(event.at, str(event.task_id), label, _describe(event.error))
            )

    def _agent(self, agent_id: Hashable, at: float) -> AgentRow:
        row = self.agents.get(agent_id)
        if row is None:
            row = self.agents[agent_id] = AgentRow()
        row.last_event = at
        return row

    def _coordinator_event(self, event: Any) -> None:
        kind, agent_id, task_id = event.kind, event.agent_id, event.task_id
        if kind == "heartbeat":
            self._agent(agent_id, event.at).last_heartbeat = event.at
        elif kind == "agent_online":
            row = self._agent(agent_id, event.at)
            row.status = "idle"
            row.last_heartbeat = event.at
        elif kind == "agent_restarted":
            row = self._agent(agent_id, event.at)
            row.status = "idle"
            row.restarts += 1
        elif kind == "agent_offline":
            row = self._agent(agent_id, event.at)
            row.status = "offline"
            row.reassigned += row.in_flight
            self.reassigned += row.in_flight
            row.in_flight = 0
            for running in [r for r in self.running.values() if r.agent_id == agent_id]:
                del self.running[running.task_id]
            self._record_failure(
                Failure(event.at, str(agent_id), "offline", _describe(event.error))
            )
        elif kind == "task_queued":
            self._move(task_id, "queued")
        elif kind == "task_assigned":
            self._move(task_id, "running")
            self.running[task_id] = Running(task_id, event.attempt, event.at, agent_id)
            row = self._agent(agent_id, event.at)
            row.in_flight += 1
            row.status = "busy"
        elif kind in ("attempt_failed", "stale_result"):
            row = self._agent(agent_id, event.at)
            row.in_flight = max(0, row.in_flight - 1)
            if kind == "attempt_failed":
                row.failed += 1
                self.running.pop(task_id, None)
                self._record_failure(
                    Failure(event.at, str(task_id), "attempt failed", _describe(event.error))
                )
            row.status = "busy" if row.in_flight else "idle"
        elif kind == "task_completed":
            self._move(task_id, "completed")
            row = self._agent(agent_id, event.at)
            row.in_flight = max(0, row.in_flight - 1)
            row.completed += 1
            row.status = "busy" if row.in_flight else "idle"
        elif kind in ("task_failed", "task_cancelled"):
            status = "failed" if kind == "task_failed" else "cancelled"
            if self._move(task_id, status):
                self._record_failure(
                    Failure(event.at, str(task_id), status, _describe(event.error))
                )


def _describe(error: BaseException | None) -> str:
    if error is None:
        return ""
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if str(error) else text
