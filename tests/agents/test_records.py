"""Statuses, event kinds and statistics of a coordinator: typed, and still strings."""

from __future__ import annotations

import enum

import attrs
import pytest

from trioflow.agents import (
    AgentStats,
    AgentStatus,
    AssignmentStatus,
    CoordinatorEvent,
    CoordinatorStats,
    EventKind,
    RunningTask,
)


def test_event_kinds_are_one_string_enum() -> None:
    assert issubclass(EventKind, enum.StrEnum)
    assert [kind.value for kind in EventKind] == [
        "agent_online",
        "agent_offline",
        "agent_restarted",
        "heartbeat",
        "task_queued",
        "task_assigned",
        "attempt_failed",
        "task_waiting",
        "task_completed",
        "task_failed",
        "task_timeout",
        "task_cancelled",
        "stale_result",
    ]
    event = CoordinatorEvent(EventKind.TASK_COMPLETED, 1.0, "a", 7, 1)
    assert event.kind == "task_completed"  # comparisons with strings keep working
    assert event.kind in ("task_completed", "task_failed")
    assert f"{event.kind}" == "task_completed"


def test_agent_statuses_compare_as_strings() -> None:
    assert AgentStatus.OFFLINE == "offline"
    assert {status.value for status in AgentStatus} == {"idle", "busy", "offline"}


def test_assignment_statuses_and_which_are_terminal() -> None:
    assert [s.value for s in AssignmentStatus] == [
        "queued",
        "waiting",
        "assigned",
        "completed",
        "failed",
        "timeout",
        "cancelled",
    ]
    live = {s for s in AssignmentStatus if not s.is_terminal}
    assert live == {AssignmentStatus.QUEUED, AssignmentStatus.WAITING, AssignmentStatus.ASSIGNED}


def test_stats_count_timeouts_apart_and_serialise() -> None:
    row = AgentStats("a", AgentStatus.IDLE, 0, 3, 1, 2.0, 0)
    stats = CoordinatorStats(
        submitted=6,
        queued=0,
        waiting=0,
        in_flight=0,
        completed=3,
        failed=1,
        timeout=1,
        cancelled=1,
        retries=2,
        reassigned=1,
        heartbeats_missed=0,
        restarts=0,
        stale_results=0,
        agents={"a": row},
    )
    assert stats.finished == 6
    as_dict = stats.to_dict()
    assert as_dict["timeout"] == 1 and as_dict["failed"] == 1
    assert as_dict["agents"] == {
        "a": {
            "id": "a",
            "status": "idle",
            "in_flight": 0,
            "completed": 3,
            "failed": 1,
            "last_heartbeat": 2.0,
            "restarts": 0,
            "running": (),
        }
    }
    busy = AgentStats("b", AgentStatus.BUSY, 1, 0, 0, 2.0, 0, (RunningTask(7, 1, 1.5, 0.5),))
    assert attrs.asdict(busy)["running"] == (
        {"task_id": 7, "attempt": 1, "started": 1.5, "running_for": 0.5},
    )


def test_events_are_immutable_values() -> None:
    event = CoordinatorEvent(EventKind.TASK_ASSIGNED, 2.0, "a", 3, 1)
    with pytest.raises(AttributeError):
        event.attempt = 2  # type: ignore[misc]
    assert event == CoordinatorEvent(EventKind.TASK_ASSIGNED, 2.0, "a", 3, 1, None)
    assert len({event, CoordinatorEvent(EventKind.TASK_ASSIGNED, 2.0, "a", 3, 1)}) == 1
    assert (event.kind, event.task_id, event.error) == ("task_assigned", 3, None)
    assert tuple(event) == (EventKind.TASK_ASSIGNED, 2.0, "a", 3, 1, None)
