"""RunView: folding events into what a watcher sees. Pure."""

from __future__ import annotations

import pytest

from trioflow import TaskEvent, TaskStatus
from trioflow.agents import CoordinatorEvent
from trioflow.monitor import RunView


def ev(task_id: str, status: str, attempt: int, at: float, error: BaseException | None = None):
    return TaskEvent(task_id, TaskStatus(status), attempt, at, error)


def test_progress_rate_and_eta() -> None:
    view = RunView(started=100.0)
    for name in "abcd":
        view.apply(ev(name, "pending", 0, 100.0))
    view.apply(ev("a", "running", 1, 100.0))
    view.apply(ev("a", "completed", 1, 102.0))
    assert (view.total, view.finished) == (4, 1)
    assert view.rate(102.0) == 0.5
    assert view.eta(102.0) == 6.0
    assert view.counts["pending"] == 3 and view.counts["completed"] == 1


def test_running_tasks_and_failures_with_retries() -> None:
    view = RunView(started=0.0)
    view.apply(ev("t", "pending", 0, 0.0))
    view.apply(ev("t", "running", 1, 0.0))
    assert view.running["t"].attempt == 1
    view.apply(ev("t", "waiting", 1, 1.0, TimeoutError("too slow")))
    assert "t" not in view.running
    view.apply(ev("t", "pending", 1, 2.0))
    view.apply(ev("t", "running", 2, 2.0))
    view.apply(ev("t", "failed", 2, 3.0, ValueError("bad")))
    assert [(f.status, f.error) for f in view.failures] == [
        ("retrying", "TimeoutError: too slow"),
        ("failed", "ValueError: bad"),
    ]
    assert view.failure_count == 2 and view.finished == 1 and not view.running


def test_only_recent_failures_are_kept_but_all_are_counted() -> None:
    view = RunView(started=0.0, recent_failures=2)
    for i in range(5):
        view.apply(ev(f"t{i}", "pending", 0, 0.0))
        view.apply(ev(f"t{i}", "failed", 1, float(i), RuntimeError(str(i))))
    assert [f.what for f in view.failures] == ["t3", "t4"]
    assert view.failure_count == 5


def test_agents_from_coordinator_events() -> None:
    view = RunView(started=0.0)

    def cev(kind: str, agent=None, task=None, attempt=0, at=0.0, error=None):
        view.apply(CoordinatorEvent(kind, at, agent, task, attempt, error))

    cev("agent_online", "a")
    cev("agent_online", "b")
    cev("heartbeat", "a", at=0.5)
    assert view.agents["a"].last_heartbeat == 0.5
    cev("task_queued", task=1)
    cev("task_assigned", "a", 1, 1)
    cev("task_assigned", "b", 2, 1)
    assert view.agents["a"].status == "busy" and view.total == 2
    cev("agent_offline", "a", at=2.0, error=RuntimeError("silent"))
    assert view.agents["a"].status == "offline" and view.reassigned == 1
    cev("task_assigned", "b", 1, 2, at=2.0)
    cev("task_completed", "b", 1, 2, at=3.0)
    cev("attempt_failed", "b", 2, 1, at=3.0, error=ValueError("x"))
    cev("task_failed", "b", 2, 1, at=3.0, error=ValueError("x"))
    assert view.finished == 2
    assert view.agents["b"].completed == 1 and view.agents["b"].failed == 1
    assert view.agents["b"].in_flight == 0 and view.agents["b"].status == "idle"
    assert [f.status for f in view.failures] == ["offline", "attempt failed", "failed"]


@pytest.mark.parametrize("now", [0.0, -1.0])
def test_no_rate_before_time_passes(now: float) -> None:
    view = RunView(started=0.0)
    view.apply(ev("a", "pending", 0, 0.0))
    assert view.rate(now) == 0.0 and view.eta(now) is None
