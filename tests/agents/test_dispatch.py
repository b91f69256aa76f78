"""Dispatcher: selection, fencing, attempts, heartbeat deadlines. Pure, no trio."""

import pytest
from hypothesis import given, settings, strategies as st

from trioflow import NoCapableAgentError, RetryPolicy
from trioflow.agents import AgentGone, AssignmentStatus
from trioflow.agents._dispatch import DEFAULT_RETRY, Dispatcher, resolve_retry


def attempts(n: int) -> RetryPolicy:
    """The seed's ``max_attempts=n`` in the dispatcher's vocabulary."""
    return RetryPolicy(max_retries=n - 1, delay=0.0)


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
    d = Dispatcher(attempts(3))
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
    d = Dispatcher(attempts(3))
    d.register("a", {"s"}, 1, now=0.0)
    _, outcome = d.submit("s", "x")
    retry = d.fail("a", outcome.assignments[0].token, ValueError("1"), now=1.0)
    assert ids(retry) == [("a", "x")]


def test_out_of_attempts_fails_with_every_error() -> None:
    d = Dispatcher(attempts(2))
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
        (("a", {"s"}, 0), "concurrency must be >= 1, got 0"),
        (("a", set(), 1), "has no capabilities"),
        ((None, {"s"}, 1), "an agent's id may not be None"),
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
    with pytest.raises(ValueError, match="max_attempts must be >= 1, got 0"):
        resolve_retry(DEFAULT_RETRY, max_attempts=0)


# -- retries: the scheduler's vocabulary ------------------------------------------------------


def test_resolve_retry_speaks_the_schedulers_language() -> None:
    assert resolve_retry(DEFAULT_RETRY) == RetryPolicy(max_retries=2, delay=0.0)
    assert resolve_retry(None) is None
    assert resolve_retry(0) is None
    assert resolve_retry(3) == RetryPolicy(max_retries=3)  # the default policy's delays
    policy = RetryPolicy(max_retries=1, delay=0.5)
    assert resolve_retry(policy) is policy


def test_max_attempts_is_an_alias_for_a_delay_free_policy() -> None:
    assert resolve_retry(DEFAULT_RETRY, max_attempts=4) == RetryPolicy(max_retries=3, delay=0)
    assert resolve_retry(DEFAULT_RETRY, max_attempts=1) == RetryPolicy(max_retries=0, delay=0)
    with pytest.raises(ValueError, match="not both"):
        resolve_retry(RetryPolicy(max_retries=2, delay=0.0), max_attempts=3)
    with pytest.raises(ValueError, match="not both"):
        resolve_retry(None, max_attempts=3)


@pytest.mark.parametrize(
    ("retry", "max_attempts", "error"),
    [
        ("2", None, TypeError),
        (True, None, TypeError),
        (-1, None, ValueError),
        (DEFAULT_RETRY, "3", TypeError),
        (DEFAULT_RETRY, True, TypeError),
        (DEFAULT_RETRY, 0, ValueError),
    ],
)
def test_bad_retry_arguments(retry: object, max_attempts: object, error: type) -> None:
    with pytest.raises(error):
        resolve_retry(retry, max_attempts)  # type: ignore[arg-type]


def test_no_retry_policy_means_one_attempt() -> None:
    d = Dispatcher(None)
    d.register("a", {"s"}, 1, now=0.0)
    d.register("b", {"s"}, 1, now=1.0)
    task, outcome = d.submit("s", "x")
    final = d.fail("a", outcome.assignments[0].token, ValueError("once"), now=2.0)
    assert final.finished == [task] and task.status is AssignmentStatus.FAILED
    assert d.max_attempts == 1 and d.retries == 0


def test_a_retry_waits_out_its_delay_holding_no_slot() -> None:
    d = Dispatcher(RetryPolicy(max_retries=1, delay=2.0))
    d.register("a", {"s"}, 1, now=0.0)
    task, outcome = d.submit("s", "x")
    failed = d.fail("a", outcome.assignments[0].token, ValueError("1"), now=1.0)
    assert failed.delayed == [(task, 2.0)] and failed.assignments == []
    assert task.status is AssignmentStatus.WAITING and (d.waiting, d.queued) == (1, 0)
    other, meanwhile = d.submit("s", "y")  # the agent's slot is free while x waits
    assert ids(meanwhile) == [("a", "y")]
    due = d.retry_due(task)
    assert due.assignments == [] and task.status is AssignmentStatus.QUEUED
    assert (d.waiting, d.queued) == (0, 1)
    freed = d.complete("a", meanwhile.assignments[0].token, "y!", now=3.0)
    assert freed.finished == [other] and ids(freed) == [("a", "x")]
    assert task.attempts == 2 and d.retries == 1


def test_retry_delays_back_off_with_jitter_from_the_given_source() -> None:
    policy = RetryPolicy(max_retries=3, delay=1.0, backoff=2.0, jitter=0.5)
    d = Dispatcher(policy, random=lambda: 1.0)  # the top of the jitter range: x1.5
    d.register("a", {"s"}, 1, now=0.0)
    task, outcome = d.submit("s", "x")
    delays = []
    token = outcome.assignments[0].token
    for n in range(3):
        failed = d.fail("a", token, ValueError(n), now=float(n))
        assert failed.delayed is not None
        delays.append(failed.delayed[0][1])
        token = d.retry_due(task).assignments[0].token
    assert delays == [1.5, 3.0, 6.0]


def test_a_cancelled_waiting_retry_is_never_placed() -> None:
    d = Dispatcher(RetryPolicy(max_retries=1, delay=5.0))
    d.register("a", {"s"}, 1, now=0.0)
    task, outcome = d.submit("s", "x")
    d.fail("a", outcome.assignments[0].token, ValueError("1"), now=1.0)
    assert d.cancel(task, None).finished == [task]
    assert d.waiting == 0 and task.status is AssignmentStatus.CANCELLED
    late = d.retry_due(task)
    assert not late.accepted and late.assignments == []


def test_retry_on_filters_the_agents_errors_but_not_lost_agents() -> None:
    d = Dispatcher(RetryPolicy(max_retries=3, delay=0, retry_on=(KeyError,)))
    for name, since in (("a", 0.0), ("b", 1.0), ("c", 2.0)):
        d.register(name, {"s"}, 1, now=since)
    task, _outcome = d.submit("s", "x")
    lost = d.set_offline("a", AgentGone("silent"), now=3.0)  # not a KeyError: retried anyway
    assert ids(lost) == [("b", "x")]
    retried = d.fail("b", lost.assignments[0].token, KeyError("k"), now=4.0)
    assert ids(retried) == [("c", "x")]
    final = d.fail("c", retried.assignments[0].token, ValueError("v"), now=5.0)
    assert final.finished == [task] and task.status is AssignmentStatus.FAILED
    assert task.attempts == 3


def test_a_task_whose_last_attempt_timed_out_ends_timeout() -> None:
    d = Dispatcher(attempts(2))
    d.register("a", {"s"}, 1, now=0.0)
    task, outcome = d.submit("s", "x")
    retry = d.fail("a", outcome.assignments[0].token, TimeoutError("1"), now=1.0, timed_out=True)
    assert task.status is AssignmentStatus.ASSIGNED  # a timeout is retried like a failure
    final = d.fail("a", retry.assignments[0].token, TimeoutError("2"), now=2.0, timed_out=True)
    assert final.finished == [task] and task.status is AssignmentStatus.TIMEOUT


def test_a_failure_after_a_timeout_ends_failed() -> None:
    d = Dispatcher(attempts(2))
    d.register("a", {"s"}, 1, now=0.0)
    task, outcome = d.submit("s", "x")
    retry = d.fail("a", outcome.assignments[0].token, TimeoutError("1"), now=1.0, timed_out=True)
    d.fail("a", retry.assignments[0].token, ValueError("2"), now=2.0)
    assert task.status is AssignmentStatus.FAILED


def test_a_reports_outcome_names_the_attempt_it_ended() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 1, now=0.0)
    task, outcome = d.submit("s", "x")
    failed = d.fail("a", outcome.assignments[0].token, ValueError("1"), now=1.0)
    assert failed.attempt == 1 and task.attempts == 2  # the retry went out at once


def test_rejected_tasks_are_not_retried() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 1, now=0.0)
    task, outcome = d.submit("s", "x")
    final = d.fail("a", outcome.assignments[0].token, ValueError("bad"), now=1.0, retry=False)
    assert final.finished == [task] and task.attempts == 1


# -- costs ------------------------------------------------------------------------------------


def test_a_fast_failing_agent_costs_no_rescan_of_waiting_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Retries that avoid the failing agent wait in one heap; the failing agent looks at its
    head only, instead of scanning every waiting retry per report."""
    checks = 0
    may_take = Dispatcher._may_take

    def counting(self: Dispatcher, *args: object) -> bool:
        nonlocal checks
        checks += 1
        return may_take(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Dispatcher, "_may_take", counting)
    d = Dispatcher(attempts(3))
    d.register("healthy", {"s"}, 1, now=0.0)
    d.register("failing", {"s"}, 1, now=1.0)
    n = 2000
    first = [d.submit("s", i)[1] for i in range(n)]
    token = first[1].assignments[0].token  # "healthy" took task 0 and keeps it
    for step in range(n - 1):  # "failing" fails tasks 1 .. n-1, one after the other
        report = d.fail("failing", token, ValueError(step), now=2.0 + step)
        if step < n - 2:
            assert [a.agent_id for a in report.assignments] == ["failing"]
            token = report.assignments[0].token
    assert report.assignments == []
    assert d.queued == n - 1  # every retried task waits for "healthy"
    assert len(d._constrained["s"]) == 1  # one avoid set: {"failing"}
    assert checks <= 2 * n


def test_stranded_counts_out_the_requester_a_task_must_avoid() -> None:
    d = Dispatcher()
    d.register("asker", {"s"}, 1, now=0.0)
    d.register("helper", {"s"}, 1, now=0.0)
    d.set_offline("helper", AgentGone("silent"), now=1.0)
    _, busy = d.submit("s", "keeps asker busy")
    request, outcome = d.submit("s", "delegated", excluded="asker")
    assert outcome.assignments == [] and busy.assignments[0].agent_id == "asker"
    assert list(d.stranded()) == [request]  # only the requester itself is online


def test_an_agent_that_failed_a_task_takes_it_back_when_its_peers_go() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 1, now=0.0)
    d.register("b", {"s"}, 1, now=1.0)
    task, outcome = d.submit("s", "x")
    _, _busy = d.submit("s", "y")
    d.fail("a", outcome.assignments[0].token, ValueError("1"), now=2.0)  # waits for b
    assert task.status is AssignmentStatus.QUEUED
    moved = d.set_offline("b", AgentGone("silent"), now=3.0)
    # y was b's: it goes to a first (it failed nowhere); x, which a failed, waits again
    assert ids(moved) == [("a", "y")]
    again = d.complete("a", moved.assignments[0].token, "y!", now=4.0)
    assert ids(again) == [("a", "x")]


# -- the fast paths decide what the general ones decide -----------------------------------------


def _snapshot(d: Dispatcher) -> tuple:
    """Everything a decision can change, by task key and agent id."""
    agents = {
        a.id: (
            a.online,
            a.free_since,
            a.completed,
            a.failed,
            sorted(t.key for t in a.in_flight.values()),
        )
        for a in d.agents.values()
    }
    return agents, d.queued, d.waiting, d.retries


def _task_state(tasks: list) -> list:
    return [(t.key, t.status, t.attempts, t.agent_id, t.result, t.assigned_at) for t in tasks]


@settings(max_examples=200, deadline=None)
@given(
    concurrencies=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    extra_capability=st.booleans(),
    steps=st.lists(st.tuples(st.sampled_from("sscfxo"), st.integers(0, 50)), max_size=60),
)
def test_complete_and_take_decides_what_complete_decides(
    concurrencies: list[int], extra_capability: bool, steps: list[tuple[str, int]]
) -> None:
    """Two dispatchers see the same events; one hears every result through complete(), the
    other through complete_and_take() whenever it applies: same placements, same tokens,
    same states, every step."""
    general, fast = Dispatcher(attempts(3)), Dispatcher(attempts(3))
    tasks: dict[str, list] = {"general": [], "fast": []}
    for d in (general, fast):
        for n, concurrency in enumerate(concurrencies):
            caps = {"s", "t"} if extra_capability and n == 0 else {"s"}
            d.register(f"a{n}", caps, concurrency, now=0.0)
    now = 0.0
    for op, pick in steps:
        now += 1.0
        if op == "s":
            for name, d in (("general", general), ("fast", fast)):
                tasks[name].append(d.submit("s", len(tasks[name]), now=now)[0])
            continue
        agent_id = f"a{pick % len(concurrencies)}"
        held = sorted(general.agents[agent_id].in_flight)
        if op == "o":
            general.set_offline(agent_id, AgentGone("x"), now)
            fast.set_offline(agent_id, AgentGone("x"), now)
            general.set_online(agent_id, now)
            fast.set_online(agent_id, now)
        elif held:
            token = held[pick % len(held)]
            if op == "c":
                expected = general.complete(agent_id, token, pick, now)
                taken = fast.complete_and_take(agent_id, token, pick, now)
                if taken is None:
                    got = fast.complete(agent_id, token, pick, now)
                    assert [a.token for a in got.assignments] == [
                        a.token for a in expected.assignments
                    ]
                else:
                    done, after = taken
                    assert [t.key for t in expected.finished] == [done.key]
                    went = [
                        (a.agent_id, a.task.key, a.token, a.attempt) for a in expected.assignments
                    ]
                    took = (
                        []
                        if after is None
                        else [(agent_id, after.key, after.token, after.attempts)]
                    )
                    assert went == took
            elif op == "f":
                general.fail(agent_id, token, ValueError(pick), now)
                fast.fail(agent_id, token, ValueError(pick), now)
            elif op == "x":  # a stale report under a token that is not current
                general.complete(agent_id, token + 1000, None, now)
                fast.complete_and_take(agent_id, token + 1000, None, now) or fast.complete(
                    agent_id, token + 1000, None, now
                )
        assert _snapshot(general) == _snapshot(fast)
        assert _task_state(tasks["general"]) == _task_state(tasks["fast"])


@settings(max_examples=100, deadline=None)
@given(
    busy=st.integers(0, 4),
    capabilities=st.lists(st.sampled_from(["s", "t"]), max_size=30),
)
def test_submit_many_places_as_submit_does_one_by_one(busy: int, capabilities: list[str]) -> None:
    one, many = Dispatcher(), Dispatcher()
    for d in (one, many):
        d.register("st", {"s", "t"}, 2, now=0.0)
        d.register("s", {"s"}, 1, now=1.0)
        d.register("t", {"t"}, 1, now=2.0)
        for n in range(busy):
            d.submit("s", f"busy{n}", now=3.0)
    singles = [one.submit(cap, n, now=4.0) for n, cap in enumerate(capabilities)]
    records, outcome = many.submit_many(capabilities, list(range(len(capabilities))), now=4.0)
    assert [(a.agent_id, a.task.payload, a.token) for a in outcome.assignments] == [
        (a.agent_id, a.task.payload, a.token) for _, o in singles for a in o.assignments
    ]
    assert _task_state(records) == _task_state([t for t, _ in singles])
    assert _snapshot(one) == _snapshot(many)


def test_submit_many_checks_every_capability_first() -> None:
    d = Dispatcher()
    d.register("a", {"s"}, 1, now=0.0)
    with pytest.raises(NoCapableAgentError, match="'nobody'"):
        d.submit_many(["s", "nobody"], ["x", "y"])
    assert d.queued == 0 and not d.agents["a"].in_flight
