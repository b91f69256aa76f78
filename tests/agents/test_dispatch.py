"""Dispatcher: selection, fencing, attempts, heartbeat deadlines. Pure, no trio."""

import pytest

from trioflow import NoCapableAgentError
from trioflow.agents import AgentGone, AssignmentStatus
from trioflow.agents._dispatch import Dispatcher


def ids(outcome) -> list:
    return [(a.agent_id, a.task.payload) for a in outcome.assignments]


def test_goes_to_the_least_loaded_capable_agent_ties_to_the_longest_idle() -> None:
    d = Dispatcher()
    d.register("late", {"s"}, 1, now=5.0)
    d.register("early", {"s"}, 1, now=1.0)
    d.register("calc", {"c"}, 1, now=0.0)
    _, first = d.submit("s", "t1")
    _, second = d.submit("s", "t2")
    assert ids(first) == [("early", "t1")]
    assert ids(second) == [("late", "t2")]


def test_load_counts_against_concurrency() -> None:
    d = Dispatcher()
    d.register("big", {"s"}, 4, now=0.0)
    d.register("small", {"s"}, 1, now=1.0)
    got = [ids(d.submit("s", n)[1])[0][0] for n in range(5)]
    # big at 0/4 ties small at 0/1 -> big idle longer; then small (0/1) beats big (1/4)
    assert got == ["big", "small", "big", "big", "big"]


def test_without_a_free_agent_tasks_wait_in_order_and_go_out_when_one_frees() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 1, now=0.0)
    t1, o1 = d.submit("s", "t1")
    _, o2 = d.submit("s", "t2")
    t3, _ = d.submit("s", "t3")
    assert o2.assignments == [] and d.queued == 2
    done = d.complete("a", o1.assignments[0].token, "r1", now=1.0)
    assert done.finished == [t1] and t1.result == "r1"
    assert ids(done) == [("a", "t2")]
    assert t3.status is AssignmentStatus.QUEUED and d.queued == 1


def test_unknown_capability_fails_at_submit() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 1, now=0.0)
    with pytest.raises(NoCapableAgentError, match="'translate'"):
        d.submit("translate", "x")


def test_offline_capable_agents_still_count_as_capable_and_tasks_wait() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 1, now=0.0)
    d.set_offline("a", AgentGone("silent"), now=1.0)
    task, outcome = d.submit("s", "x")
    assert outcome.assignments == [] and task.status is AssignmentStatus.QUEUED
    assert list(d.stranded()) == [task]
    back = d.set_online("a", now=2.0)
    assert ids(back) == [("a", "x")]


def test_a_stale_token_is_discarded_and_the_task_completes_once() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 1, now=0.0)
    d.register("b", {"s"}, 1, now=1.0)
    task, outcome = d.submit("s", "x")
    old = outcome.assignments[0]
    assert old.agent_id == "a"
    moved = d.set_offline("a", AgentGone("silent"), now=3.0)
    new = moved.assignments[0]
    assert (new.agent_id, new.attempt) == ("b", 2) and new.token != old.token
    assert d.reassigned == 1
    assert not d.complete("a", old.token, "late", now=4.0).accepted
    assert d.complete("b", new.token, "fresh", now=4.0).finished == [task]
    assert not d.complete("b", new.token, "again", now=5.0).accepted
    assert task.result == "fresh" and task.attempts == 2
    assert isinstance(task.errors[0], AgentGone)


def test_retry_prefers_agents_that_have_not_failed_the_task() -> None:
    d = Dispatcher(max_attempts=3)
    d.register("a", {"s"}, 1, now=0.0)
    d.register("b", {"s"}, 1, now=1.0)
    d.register("c", {"s"}, 1, now=2.0)
    task, outcome = d.submit("s", "x")
    _, busy_b = d.submit("s", "y")  # b takes y
    first = outcome.assignments[0]
    assert first.agent_id == "a"
    retry = d.fail("a", first.token, ValueError("1"), now=3.0)
    assert ids(retry) == [("c", "x")]  # not a again, while c is free
    second = retry.assignments[0]
    again = d.fail("c", second.token, ValueError("2"), now=4.0)
    # a and c failed it; b has not but is busy: the task waits for b
    assert again.assignments == [] and task.status is AssignmentStatus.QUEUED
    freed = d.complete("b", busy_b.assignments[0].token, "y-done", now=5.0)
    assert ids(freed) == [("b", "x")]


def test_when_every_capable_agent_failed_it_any_may_retry() -> None:
    d = Dispatcher(max_attempts=3)
    d.register("a", {"s"}, 1, now=0.0)
    _, outcome = d.submit("s", "x")
    retry = d.fail("a", outcome.assignments[0].token, ValueError("1"), now=1.0)
    assert ids(retry) == [("a", "x")]


def test_out_of_attempts_fails_with_every_error() -> None:
    d = Dispatcher(max_attempts=2)
    d.register("a", {"s"}, 1, now=0.0)
    task, outcome = d.submit("s", "x")
    retry = d.fail("a", outcome.assignments[0].token, ValueError("1"), now=1.0)
    final = d.fail("a", retry.assignments[0].token, KeyError("2"), now=2.0)
    assert final.finished == [task] and task.status is AssignmentStatus.FAILED
    assert [type(e) for e in task.errors] == [ValueError, KeyError]


def test_hand_back_charges_no_attempt_and_draining_agents_get_nothing() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 1, now=0.0)
    d.register("b", {"s"}, 1, now=1.0)
    task, outcome = d.submit("s", "x")
    _, busy = d.submit("s", "y")
    d.set_draining("a")
    back = d.hand_back("a", outcome.assignments[0].token, now=2.0)
    assert back.assignments == [] and task.attempts == 0  # b is busy, a is leaving
    freed = d.complete("b", busy.assignments[0].token, None, now=3.0)
    assert ids(freed) == [("b", "x")] and task.attempts == 1


def test_cancel_queued_and_assigned_tasks() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 1, now=0.0)
    running, outcome = d.submit("s", "x")
    queued, _ = d.submit("s", "y")
    assert d.cancel(queued, None).finished == [queued]
    assert d.queued == 0
    assert d.cancel(running, None).finished == [running]
    d.submit("s", "z")
    # a's stale report frees its slot, which goes to the next task
    report = d.complete("a", outcome.assignments[0].token, "late", now=1.0)
    assert not report.accepted and ids(report) == [("a", "z")]
    assert running.result is None and running.status is AssignmentStatus.CANCELLED


def test_requests_never_go_back_to_the_requester() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 2, now=0.0)
    with pytest.raises(NoCapableAgentError):
        d.submit("s", "x", excluded="a")
    d.register("b", {"s"}, 1, now=5.0)
    _, outcome = d.submit("s", "x", excluded="a")
    assert ids(outcome) == [("b", "x")]


def test_heartbeat_deadlines() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 1, now=0.0)
    d.register("b", {"s"}, 1, now=0.0)
    d.heartbeat("a", 2.0)
    assert d.next_silence_deadline(3.0) == 3.0
    assert d.silent_agents(3.0, 3.0) == ["b"]
    d.set_offline("b", AgentGone("silent"), now=3.0)
    assert d.next_silence_deadline(3.0) == 5.0
    d.set_offline("a", AgentGone("silent"), now=5.0)
    assert d.next_silence_deadline(3.0) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("a", {"s"}, 0), "concurrency must be an int >= 1"),
        (("a", set(), 1), "has no capabilities"),
    ],
)
def test_bad_registrations(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Dispatcher().register(*args, now=0.0)


def test_duplicate_agent_ids_and_bad_max_attempts() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 1, now=0.0)
    with pytest.raises(ValueError, match="already registered"):
        d.register("a", {"s"}, 1, now=0.0)
    with pytest.raises(ValueError, match="max_attempts"):
        Dispatcher(max_attempts=0)
