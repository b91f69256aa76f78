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
    assert view.running[("", "t")].attempt == 1
    view.apply(ev("t", "waiting", 1, 1.0, TimeoutError("too slow")))
    assert ("", "t") not in view.running
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
    assert view.agents[("", "a")].last_heartbeat == 0.5
    cev("task_queued", task=1)
    cev("task_assigned", "a", 1, 1)
    cev("task_assigned", "b", 2, 1)
    assert view.agents[("", "a")].status == "busy" and view.total == 2
    cev("agent_offline", "a", at=2.0, error=RuntimeError("silent"))
    assert view.agents[("", "a")].status == "offline" and view.reassigned == 1
    # its task went back to the queue, to be reassigned
    assert ("", 1) not in view.running and view.counts["queued"] == 1
    cev("task_assigned", "b", 1, 2, at=2.0)
    cev("task_completed", "b", 1, 2, at=3.0)
    cev("attempt_failed", "b", 2, 1, at=3.0, error=ValueError("x"))
    cev("task_failed", "b", 2, 1, at=3.0, error=ValueError("x"))
    assert view.finished == 2
    b = view.agents[("", "b")]
    assert b.completed == 1 and b.failed == 1
    assert b.in_flight == 0 and b.status == "idle"
    assert [f.status for f in view.failures] == ["offline", "attempt failed", "failed"]


@pytest.mark.parametrize("now", [0.0, -1.0])
def test_no_rate_before_time_passes(now: float) -> None:
    view = RunView(started=0.0)
    view.apply(ev("a", "pending", 0, 0.0))
    assert view.rate(now) == 0.0 and view.eta(now) is None


def test_tasks_of_different_sources_with_the_same_id_are_kept_apart() -> None:
    """Two schedulers may both have a "job": the view counts two tasks, not one."""
    view = RunView(started=0.0)
    view.add_source("left")
    view.add_source("right")
    view.apply(ev("job", "running", 1, 0.0), "left")
    view.apply(ev("job", "running", 1, 1.0), "right")
    assert view.total == 2 and view.counts["running"] == 2
    view.apply(ev("job", "failed", 1, 2.0, ValueError("bad")), "left")
    assert (view.finished, view.counts["running"]) == (1, 1)
    assert [r.since for r in view.running.values()] == [1.0]
    assert [view.label(f.source, f.what) for f in view.failures] == ["left:job"]


def test_agents_of_different_sources_with_the_same_id_are_kept_apart() -> None:
    view = RunView(started=0.0)
    for source in ("c1", "c2"):
        view.add_source(source)
        view.apply(CoordinatorEvent("agent_online", 0.0, "echo"), source)
        view.apply(CoordinatorEvent("task_assigned", 0.0, "echo", 0, 1), source)
    view.apply(CoordinatorEvent("agent_offline", 1.0, "echo", error=RuntimeError("gone")), "c1")
    assert view.agents[("c1", "echo")].status == "offline"
    assert view.agents[("c2", "echo")].status == "busy"
    assert list(view.running) == [("c2", 0)]
    assert view.reassigned == 1


def test_one_source_shows_bare_ids() -> None:
    view = RunView(started=0.0)
    view.add_source("scheduler")
    assert view.label("scheduler", "job") == "job"
    with pytest.raises(ValueError, match=r"^a source named 'scheduler' is already watched$"):
        view.add_source("scheduler")


def test_cancellations_are_counted_not_listed_as_failures() -> None:
    """A run cancelled as a whole can cancel thousands of tasks at once: they are counted,
    and the failures list keeps what went wrong."""
    view = RunView(started=0.0)
    view.apply(ev("bad", "pending", 0, 0.0))
    view.apply(ev("bad", "failed", 1, 1.0, ValueError("bad")))
    for i in range(100):
        view.apply(ev(f"t{i}", "pending", 0, 0.0))
        view.apply(ev(f"t{i}", "cancelled", 0, 2.0, RuntimeError("dependency failed")))
    view.apply(CoordinatorEvent("task_queued", 2.0, task_id=7))
    view.apply(CoordinatorEvent("task_cancelled", 3.0, task_id=7))
    assert view.counts["cancelled"] == 101 and view.finished == 102
    assert [f.what for f in view.failures] == ["bad"] and view.failure_count == 1


def test_coordinator_retry_waits_and_timeouts() -> None:
    """``task_waiting`` and ``task_timeout``: a task waits out a retry delay, then times out."""
    view = RunView(started=0.0)
    view.apply(CoordinatorEvent("task_assigned", 0.0, "a", 3, 1))
    view.apply(CoordinatorEvent("attempt_failed", 1.0, "a", 3, 1, TimeoutError("slow")))
    assert not view.running and view.counts["queued"] == 1
    view.apply(CoordinatorEvent("task_waiting", 1.0, task_id=3, attempt=1))
    assert view.counts["waiting"] == 1
    view.apply(CoordinatorEvent("task_assigned", 2.0, "a", 3, 2))
    view.apply(CoordinatorEvent("task_timeout", 3.0, "a", 3, 2, TimeoutError("slow again")))
    assert view.counts["timeout"] == 1 and view.finished == 1 and not view.running
    assert [(f.status, f.error) for f in view.failures] == [
        ("attempt failed", "TimeoutError: slow"),
        ("timeout", "TimeoutError: slow again"),
    ]


def test_slow_tasks_longest_first() -> None:
    view = RunView(started=0.0, slow_after=10.0)
    view.apply(ev("young", "running", 1, 5.0))
    view.apply(ev("old", "running", 1, 1.0))
    view.apply(CoordinatorEvent("task_assigned", 3.0, "agent", 0, 1))
    assert [r.task_id for r in view.longest_running()] == ["old", 0, "young"]
    assert view.slow(11.0) == []  # exactly 10 s is not over the threshold
    assert [r.task_id for r in view.slow(14.0)] == ["old", 0]
    assert view.slow(14.0)[1].agent_id == "agent"
