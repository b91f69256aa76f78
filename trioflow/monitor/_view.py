"""RunView: what a person watching a run wants to know, folded from its events.

Pure and synchronous: it takes the scheduler's ``TaskEvent``s and the coordinator's
``CoordinatorEvent``s one at a time and keeps counts, the running tasks, recent failures and a
row per agent. Rendering it is another module's business.

**Sources.** One view can watch several schedulers and coordinators at once, and their ids
are theirs alone: two schedulers may both have a ``"job-1"``, and every coordinator numbers
its tasks from 0. So every task and agent is keyed by ``(source, id)``, where ``source`` is
the name the monitor gave the stream the event came from; :meth:`RunView.label` shows the
source only when there is more than one, so a single run reads as before.

**Failures, not cancellations.** The recent-failures list (and the monitor's plain failure
lines, which follow it) records what went *wrong*: failed and timed-out tasks, retries,
failed attempts, agents going offline. A cancellation is a consequence of something else
(``cancel()``, a failed dependency, the run being interrupted) and can come by the
thousand at once when a big run is stopped, so cancellations are counted, not listed.

**Running time.** Each running task remembers when its attempt started, so a view of hung
work shows how long it has run; :meth:`RunView.slow` gives those over ``slow_after``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable
from typing import TYPE_CHECKING, TypeAlias

import attrs

from .. import TaskEvent

if TYPE_CHECKING:
    from ..agents import CoordinatorEvent

    Event: TypeAlias = TaskEvent | CoordinatorEvent

Key: TypeAlias = tuple[str, Hashable]
"""A task or agent as the view knows it: ``(source name, id)``."""

_TERMINAL = frozenset({"completed", "failed", "timeout", "cancelled"})
_WENT_WRONG = frozenset({"failed", "timeout"})


@attrs.define
class Running:
    """A task attempt in progress: since ``since`` (the event time it started)."""

    source: str
    task_id: Hashable
    attempt: int
    since: float
    agent_id: Hashable = None


@attrs.define
class Failure:
    """Something that went wrong: ``what`` is a task id or an agent id."""

    at: float
    source: str
    what: Hashable
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
    """Counts, progress, running tasks, recent failures and agents, kept from events.

    Args:
        started: the clock reading that elapsed times count from.
        recent_failures: how many failures to keep for display (all are counted).
        slow_after: seconds after which a running task is reported as slow.
    """

    def __init__(self, started: float, recent_failures: int = 5, slow_after: float = 60.0) -> None:
        self.started = started
        self.slow_after = slow_after
        self.last_at = started
        self.total = 0
        self.finished = 0
        self.counts: Counter[str] = Counter()
        self.running: dict[Key, Running] = {}
        self.failures: deque[Failure] = deque(maxlen=recent_failures)
        self.agents: dict[Key, AgentRow] = {}
        self.reassigned = 0
        self.failure_count = 0  # every failure ever recorded; ``failures`` keeps the recent
        self.sources: list[str] = []
        self._status: dict[Key, str] = {}

    # -- sources --------------------------------------------------------------------------

    def add_source(self, name: str) -> None:
        """Watch one more event stream, under ``name``."""
        if name in self.sources:
            raise ValueError(f"a source named {name!r} is already watched")
        self.sources.append(name)

    def label(self, source: str, ident: Hashable) -> str:
        """How to show a task or agent id: with its source when there are several."""
        text = shown(ident)
        return text if len(self.sources) <= 1 else f"{shown(source)}:{text}"

    # -- derived ---------------------------------------------------------------------------

    def elapsed(self, now: float) -> float:
        """Seconds since ``started`` (never negative)."""
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

    def longest_running(self) -> list[Running]:
        """The running tasks, longest-running first."""
        return sorted(self.running.values(), key=lambda r: r.since)

    def is_slow(self, running: Running, now: float) -> bool:
        """Whether ``running`` has run longer than ``slow_after`` at ``now``."""
        return now - running.since > self.slow_after

    def slow(self, now: float) -> list[Running]:
        """The tasks running longer than ``slow_after``, longest-running first."""
        return [r for r in self.longest_running() if self.is_slow(r, now)]

    # -- folding events -----------------------------------------------------------------------

    def apply(self, event: Event, source: str = "") -> None:
        """Fold one scheduler or coordinator event, from the stream named ``source``."""
        if source not in self.sources:
            self.sources.append(source)
        self.last_at = max(self.last_at, event.at)
        if isinstance(event, TaskEvent):
            self._task_event(event, source)
        else:
            self._coordinator_event(event, source)

    def _record_failure(self, failure: Failure) -> None:
        self.failures.append(failure)
        self.failure_count += 1

    def _move(self, key: Key, status: str) -> bool:
        """Record the task's new status; True if it just finished.

        A finished task is forgotten (it stays counted): a source reports each task's end
        once, and an id seen again afterwards is a new task (a scheduler with
        ``keep_finished`` accepts a forgotten id again), counted once more, as the source's
        own ``stats()`` count it. So the view holds only the unfinished tasks, however
        long the run."""
        old = self._status.pop(key, None)
        if old is None:
            self.total += 1
        else:
            self.counts[old] -= 1
        self.counts[status] += 1
        if status not in _TERMINAL:
            self._status[key] = status
            return False
        self.running.pop(key, None)
        self.finished += 1
        return True

    def _task_event(self, event: TaskEvent, source: str) -> None:
        key = (source, event.task_id)
        status = event.status.value
        finished = self._move(key, status)
        if status == "running":
            self.running[key] = Running(source, event.task_id, event.attempt, event.at)
        else:
            self.running.pop(key, None)
        if finished and status in _WENT_WRONG:
            self._fail(event.at, source, event.task_id, status, event.error)
        elif status == "waiting" and event.error is not None:
            self._fail(event.at, source, event.task_id, "retrying", event.error)

    def _fail(
        self, at: float, source: str, what: Hashable, status: str, error: BaseException | None
    ) -> None:
        self._record_failure(Failure(at, source, what, status, _describe(error)))

    def _agent(self, source: str, agent_id: Hashable, at: float) -> AgentRow:
        key = (source, agent_id)
        row = self.agents.get(key)
        if row is None:
            row = self.agents[key] = AgentRow()
        row.last_event = at
        return row

    def _coordinator_event(self, event: CoordinatorEvent, source: str) -> None:
        # ``kind`` is a string enum: it compares equal to these strings.
        kind, agent_id, at = event.kind, event.agent_id, event.at
        key = (source, event.task_id)
        if kind == "heartbeat":
            self._agent(source, agent_id, at).last_heartbeat = at
        elif kind == "agent_online":
            row = self._agent(source, agent_id, at)
            row.status = "idle"
            row.last_heartbeat = at
        elif kind == "agent_restarted":
            row = self._agent(source, agent_id, at)
            row.status = "idle"
            row.restarts += 1
        elif kind == "agent_offline":
            row = self._agent(source, agent_id, at)
            row.status = "offline"
            row.reassigned += row.in_flight
            self.reassigned += row.in_flight
            row.in_flight = 0
            for running in [
                r for r in self.running.values() if r.source == source and r.agent_id == agent_id
            ]:
                # Its work goes back to the queue, to be reassigned.
                self._move((source, running.task_id), "queued")
                del self.running[(source, running.task_id)]
            self._fail(at, source, agent_id, "offline", event.error)
        elif kind == "task_queued":
            self._move(key, "queued")
        elif kind == "task_waiting":
            self._move(key, "waiting")
        elif kind == "task_assigned":
            self._move(key, "running")
            self.running[key] = Running(source, event.task_id, event.attempt, at, agent_id)
            row = self._agent(source, agent_id, at)
            row.in_flight += 1
            row.status = "busy"
        elif kind in ("attempt_failed", "stale_result"):
            row = self._agent(source, agent_id, at)
            row.in_flight = max(0, row.in_flight - 1)
            if kind == "attempt_failed":
                row.failed += 1
                if key in self.running:
                    # Not running any more; what comes next (a retry, or the end) says more.
                    del self.running[key]
                    self._move(key, "queued")
                self._fail(at, source, event.task_id, "attempt failed", event.error)
            row.status = "busy" if row.in_flight else "idle"
        elif kind == "task_completed":
            self._move(key, "completed")
            row = self._agent(source, agent_id, at)
            row.in_flight = max(0, row.in_flight - 1)
            row.completed += 1
            row.status = "busy" if row.in_flight else "idle"
        elif kind in ("task_failed", "task_timeout", "task_cancelled"):
            status = {"task_failed": "failed", "task_timeout": "timeout"}.get(kind, "cancelled")
            if self._move(key, status) and status in _WENT_WRONG:
                self._fail(at, source, event.task_id, status, event.error)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return ""
    try:
        message = str(error)
    except Exception:
        # The user's exception, whose __str__ may itself be broken: the scheduler records
        # such a failure, and the monitor must not turn it into a crash of the run.
        message = ""
    # One line, whatever the message: a view row or a plain log line holds one failure.
    text = shown(" | ".join(line.strip() for line in message.splitlines() if line.strip()))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def shown(ident: object) -> str:
    """An id (or a message) as text that is safe to write: a control character (a newline
    that would forge a log line of its own, an escape sequence that the terminal would
    obey) is written as its escape, ``\\n``, ``\\x1b``."""
    text = str(ident)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
