"""open_scheduler / Scheduler / TaskHandle through the public API, on a mock clock."""

from __future__ import annotations

import threading
import time

import pytest
import trio
import trio.testing
from trio.testing import MockClock

import trioflow
from trioflow import (
    DependencyFailed,
    DuplicateTaskError,
    RetryPolicy,
    SchedulerClosedError,
    TaskEvent,
    TaskFailed,
    TaskStatus,
    TrioflowError,
    UnknownDependencyError,
    open_scheduler,
)


@pytest.fixture
def clock(autojump_clock: MockClock) -> trio.testing.MockClock:
    """Every test here takes this, so that pytest-trio runs it on the autojump clock."""
    return autojump_clock


def sleeper(seconds: float, value: object = None):
    async def sleep_then_return(*args: object) -> object:
        await trio.sleep(seconds)
        return value if value is not None else args

    return sleep_then_return


async def boom() -> None:
    raise RuntimeError("boom")


async def noop() -> None:
    pass


# -- the seed scenario ---------------------------------------------------------------------


async def test_seed_scenario_with_exact_virtual_times(clock: MockClock) -> None:
    """The SPEC's example: data and ordering dependencies, priorities, timeout + retry."""
    start = trio.current_time()
    finished: dict[str, float] = {}

    def timed(name: str, seconds: float, value: object):
        async def run(*args: object) -> object:
            await trio.sleep(seconds)
            finished[name] = trio.current_time() - start
            return value if not args else (value, *args)

        return run

    async with open_scheduler(max_workers=3) as sched:
        a = sched.submit(timed("a", 1, "A"), id="task-a", priority=1)
        b = sched.submit(timed("b", 1, "B"), a, id="task-b", priority=2)
        c = sched.submit(timed("c", 0.5, "C"), id="task-c", depends_on=[a, "task-b"])
        f = sched.submit(
            boom,
            id="task-fail",
            timeout=2.0,
            retry=RetryPolicy(max_retries=2, delay=1.0, backoff=2.0),
        )
    assert trio.current_time() - start == 3.0  # the failing task's retries at t=1 and t=3
    assert finished == {"a": 1.0, "b": 2.0, "c": 2.5}
    assert b.result == ("B", "A")  # a's result passed in a's place
    assert c.result == "C"
    assert b.dependencies == frozenset({"task-a"})
    assert c.dependencies == frozenset({"task-a", "task-b"})
    assert f.status is TaskStatus.FAILED
    assert f.attempts == 3 and f.retries == 2
    assert isinstance(f.error, RuntimeError)
    stats = sched.stats()
    assert (stats.total, stats.completed, stats.failed, stats.retries) == (4, 3, 1, 2)
    assert stats.elapsed == 3.0
    assert stats.throughput == 4 / 3.0
    as_dict = stats.to_dict()
    assert as_dict["status"] == {
        "pending": 0,
        "waiting": 0,
        "running": 0,
        "completed": 3,
        "failed": 1,
        "timeout": 0,
        "cancelled": 0,
    }
    assert (as_dict["total"], as_dict["completed"], as_dict["failed"]) == (4, 3, 1)


async def test_timestamps_follow_the_clock(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        a = sched.submit(sleeper(2))
        assert a.started_at is None and a.completed_at is None
    assert a.started_at is not None and a.completed_at is not None
    assert (a.completed_at - a.started_at).total_seconds() == pytest.approx(2.0)
    assert a.started_at >= a.created_at


# -- priority ------------------------------------------------------------------------------


async def test_priority_decides_within_a_batch(clock: MockClock) -> None:
    """With one worker, priorities 3, 1, 2 submitted together run 1, 2, 3."""
    order: list[int] = []

    def recorder(p: int):
        async def run() -> None:
            order.append(p)
            await trio.sleep(1)

        return run

    async with open_scheduler(max_workers=1) as sched:
        for p in (3, 1, 2):
            sched.submit(recorder(p), priority=p)
    assert order == [1, 2, 3]


async def test_priority_decides_under_contention(clock: MockClock) -> None:
    """A slot freed while tasks queue goes to the best ready task, not the first arrival."""
    order: list[str] = []

    def recorder(name: str):
        async def run() -> None:
            order.append(name)
            await trio.sleep(1)

        return run

    async with open_scheduler(max_workers=2) as sched:
        sched.submit(recorder("first-a"), priority=5)
        sched.submit(recorder("first-b"), priority=5)
        await trio.sleep(0.5)  # both slots busy now
        sched.submit(recorder("low"), priority=9)
        sched.submit(recorder("mid"), priority=4)
        sched.submit(recorder("high"), priority=0)
        sched.submit(recorder("mid-2"), priority=4)
    assert order == ["first-a", "first-b", "high", "mid", "mid-2", "low"]


async def test_equal_priorities_run_in_submission_order(clock: MockClock) -> None:
    order: list[int] = []

    def recorder(n: int):
        async def run() -> None:
            order.append(n)

        return run

    async with open_scheduler(max_workers=1) as sched:
        for n in range(50):
            sched.submit(recorder(n))
    assert order == list(range(50))


# -- concurrency ---------------------------------------------------------------------------


async def test_at_most_max_workers_attempts_run_at_once(clock: MockClock) -> None:
    running = peak = 0

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(1)
        running -= 1

    start = trio.current_time()
    async with open_scheduler(max_workers=3) as sched:
        for _ in range(10):
            sched.submit(work)
        await trio.sleep(0.5)
        assert sched.stats().running == 3
        assert sched.stats().pending == 7
        assert sched.limiter.statistics().borrowed_tokens == 3
    assert peak == 3
    assert trio.current_time() - start == 4.0  # ceil(10 / 3) rounds of 1 s


async def test_an_idle_scheduler_holds_no_workers(clock: MockClock) -> None:
    async with open_scheduler(max_workers=4) as sched:
        sched.submit(noop)
        await trio.testing.wait_all_tasks_blocked()
        assert sched.limiter.statistics().borrowed_tokens == 0
        sched.submit(noop)


# -- dependencies --------------------------------------------------------------------------


async def test_kwargs_data_dependencies_and_depends_on_ids(clock: MockClock) -> None:
    async def add(x: int, *, y: int) -> int:
        return x + y

    async def two() -> int:
        return 2

    async with open_scheduler() as sched:
        a = sched.submit(two, id="a")
        b = sched.submit(add, 40, kwargs={"y": a}, id="b")
        c = sched.submit(add, 1, kwargs={"y": b}, depends_on=["a"])
    assert (b.result, c.result) == (42, 43)
    assert c.dependencies == frozenset({"a", "b"})


async def test_failure_propagates_transitively_and_dependents_never_run(clock: MockClock) -> None:
    ran: list[str] = []

    def marker(name: str):
        async def run(*args: object) -> None:
            ran.append(name)

        return run

    async with open_scheduler() as sched:
        a = sched.submit(boom, id="a")
        b = sched.submit(marker("b"), a, id="b")
        c = sched.submit(marker("c"), id="c", depends_on=[b])
        d = sched.submit(marker("d"), id="d")
    assert ran == ["d"]
    assert a.status is TaskStatus.FAILED
    for handle, upstream in ((b, "a"), (c, "b")):
        assert handle.status is TaskStatus.CANCELLED
        assert handle.attempts == 0
        assert isinstance(handle.error, DependencyFailed)
        assert handle.error.dependency == upstream
        assert handle.error.root == "a"
    assert d.status is TaskStatus.COMPLETED


async def test_timeout_and_cancel_of_a_dependency_also_doom_dependents(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        slow = sched.submit(sleeper(10), id="slow", timeout=1)
        after_slow = sched.submit(noop, depends_on=[slow])
        waiting = sched.submit(sleeper(10), id="waiting")
        after_cancel = sched.submit(noop, waiting)
        waiting.cancel()
    assert slow.status is TaskStatus.TIMEOUT
    assert after_slow.status is TaskStatus.CANCELLED
    assert after_slow.error.dependency == "slow"  # type: ignore[union-attr]
    assert after_cancel.status is TaskStatus.CANCELLED
    assert after_cancel.error.dependency == "waiting"  # type: ignore[union-attr]


async def test_depending_on_an_already_failed_task_cancels_at_submit(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        a = sched.submit(boom, id="a")
        await trio.sleep(1)
        b = sched.submit(noop, a)
        assert b.status is TaskStatus.CANCELLED
        assert isinstance(b.error, DependencyFailed)


async def test_waiting_is_the_first_status_of_a_task_with_unfinished_dependencies(
    clock: MockClock,
) -> None:
    async with open_scheduler() as sched:
        a = sched.submit(sleeper(1))
        b = sched.submit(noop, a)
        assert (a.status, b.status) == (TaskStatus.PENDING, TaskStatus.WAITING)
        assert sched.stats().waiting == 1


async def test_depending_on_a_completed_task_is_pending_at_once(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        a = sched.submit(sleeper(1, "x"))
        await trio.sleep(2)
        b = sched.submit(sleeper(1), a)
        assert b.status is TaskStatus.PENDING
    assert b.result == ("x",)


# -- timeouts and retries -----------------------------------------------------------------


async def test_a_timed_out_attempt_is_retried_and_the_last_one_ends_timeout(
    clock: MockClock,
) -> None:
    start = trio.current_time()
    async with open_scheduler() as sched:
        t = sched.submit(
            sleeper(100), id="t", timeout=2.0, retry=RetryPolicy(max_retries=2, delay=1.0)
        )
    # attempts at 0, 3 (2 s timeout + 1 s), 7 (2 s + 2 s); the last times out at 9
    assert trio.current_time() - start == 9.0
    assert t.status is TaskStatus.TIMEOUT
    assert t.attempts == 3
    assert isinstance(t.error, TimeoutError)
    assert "timed out after 2.0 s" in str(t.error)


async def test_timeout_not_in_retry_on_is_final(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        t = sched.submit(sleeper(5), timeout=1, retry=RetryPolicy(retry_on=(KeyError,)))
    assert t.status is TaskStatus.TIMEOUT and t.attempts == 1


async def test_a_task_that_succeeds_on_retry_completes(clock: MockClock) -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError(f"try {calls}")
        return "ok"

    async with open_scheduler() as sched:
        h = sched.submit(flaky, retry=5)
    assert (h.status, h.result, h.attempts, h.retries) == (TaskStatus.COMPLETED, "ok", 3, 2)
    assert sched.stats().retries == 2


async def test_errors_outside_retry_on_fail_at_once(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        h = sched.submit(boom, retry=RetryPolicy(max_retries=5, retry_on=(KeyError,)))
    assert h.status is TaskStatus.FAILED and h.attempts == 1


async def test_a_retry_delay_holds_no_worker_slot(clock: MockClock) -> None:
    """While the failed task waits out 10 s, the only slot runs other work."""
    start = trio.current_time()
    ran_at: list[float] = []

    async def quick() -> None:
        ran_at.append(trio.current_time() - start)
        await trio.sleep(1)

    async with open_scheduler(max_workers=1) as sched:
        f = sched.submit(boom, retry=RetryPolicy(max_retries=1, delay=10))
        for _ in range(3):
            sched.submit(quick, priority=2)
        await trio.sleep(0.5)
        assert f.status is TaskStatus.WAITING
        assert sched.limiter.statistics().borrowed_tokens == 1
    assert ran_at == [0.0, 1.0, 2.0]
    assert trio.current_time() - start == 10.0


async def test_retry_goes_behind_equal_priorities_already_queued(clock: MockClock) -> None:
    order: list[str] = []
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        order.append(f"flaky{calls}")
        if calls == 1:
            raise RuntimeError

    def named(name: str):
        async def run() -> None:
            order.append(name)

        return run

    async with open_scheduler(max_workers=1) as sched:
        sched.submit(flaky, retry=RetryPolicy(max_retries=1, delay=0))
        sched.submit(named("x"))
        sched.submit(named("y"))
    assert order == ["flaky1", "x", "y", "flaky2"]


async def test_jittered_delays_stay_in_band(clock: MockClock) -> None:
    start = trio.current_time()
    async with open_scheduler() as sched:
        h = sched.submit(boom, retry=RetryPolicy(max_retries=1, delay=4, jitter=0.25))
    assert h.attempts == 2
    assert 3.0 <= trio.current_time() - start <= 5.0


# -- cancellation --------------------------------------------------------------------------


async def test_cancel_a_running_task_at_its_next_checkpoint(clock: MockClock) -> None:
    start = trio.current_time()
    async with open_scheduler() as sched:
        h = sched.submit(sleeper(10))
        await trio.sleep(1)
        assert h.status is TaskStatus.RUNNING
        h.cancel()
        assert h.status is TaskStatus.RUNNING
        await trio.testing.wait_all_tasks_blocked()
        assert h.status is TaskStatus.CANCELLED
        with pytest.raises(TaskFailed) as info:
            await h.wait()
        assert info.value.__cause__ is None
    assert trio.current_time() - start == pytest.approx(1.0)


async def test_cancel_a_queued_task_ends_it_at_once_and_frees_nothing_it_never_held(
    clock: MockClock,
) -> None:
    ran: list[int] = []

    def marker(n: int):
        async def run() -> None:
            ran.append(n)
            await trio.sleep(1)

        return run

    async with open_scheduler(max_workers=1) as sched:
        sched.submit(marker(1))
        queued = sched.submit(marker(2))
        sched.submit(marker(3))
        queued.cancel()
        assert queued.status is TaskStatus.CANCELLED
        assert sched.stats().cancelled == 1
    assert ran == [1, 3]


async def test_cancel_during_a_retry_delay(clock: MockClock) -> None:
    start = trio.current_time()
    async with open_scheduler() as sched:
        h = sched.submit(boom, retry=RetryPolicy(max_retries=3, delay=100))
        await trio.sleep(1)
        assert h.status is TaskStatus.WAITING
        h.cancel()
        assert h.status is TaskStatus.CANCELLED
    assert trio.current_time() - start == 1.0
    assert h.attempts == 1


async def test_cancel_is_idempotent_and_ignores_finished_tasks(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        h = sched.submit(noop)
        await trio.sleep(1)
        h.cancel()
        h.cancel()
    assert h.status is TaskStatus.COMPLETED


async def test_a_task_that_returns_after_cancel_without_a_checkpoint_is_cancelled(
    clock: MockClock,
) -> None:
    """cancel() lands between the task's last wait and its return: the attempt is cut."""
    event = trio.Event()

    async def waits_then_returns() -> str:
        await event.wait()
        return "late"

    async with open_scheduler() as sched:
        h = sched.submit(waits_then_returns)
        await trio.testing.wait_all_tasks_blocked()
        event.set()
        h.cancel()
    assert h.status is TaskStatus.CANCELLED and h.result is None


async def test_cancelling_from_outside_leaves_nothing_behind(clock: MockClock) -> None:
    start = trio.current_time()
    with trio.move_on_after(5) as outer:
        async with open_scheduler(max_workers=2) as sched:
            running = sched.submit(sleeper(100))
            retrying = sched.submit(boom, retry=RetryPolicy(max_retries=1, delay=50))
            queued = [sched.submit(sleeper(100)) for _ in range(3)]
            waiting = sched.submit(noop, running)
    assert outer.cancelled_caught
    assert trio.current_time() - start == 5.0
    for h in (running, retrying, *queued, waiting):
        assert h.status is TaskStatus.CANCELLED, h
    stats = sched.stats()
    assert stats.cancelled == stats.total == 6
    assert sched.limiter.statistics().borrowed_tokens == 0
    with pytest.raises(SchedulerClosedError):
        sched.submit(noop)


async def test_the_body_exception_propagates_as_itself_after_cancelling_tasks(
    clock: MockClock,
) -> None:
    start = trio.current_time()
    with pytest.raises(KeyError, match="body") as info:
        async with open_scheduler() as sched:
            h = sched.submit(sleeper(100))
            await trio.sleep(1)
            raise KeyError("body")
    assert type(info.value) is KeyError
    assert h.status is TaskStatus.CANCELLED
    assert trio.current_time() - start == 1.0


async def test_wait_inside_the_block_and_from_outside(clock: MockClock) -> None:
    start = trio.current_time()
    async with open_scheduler() as sched:
        a = sched.submit(sleeper(2, "A"))
        assert await a.wait() == "A"
        assert trio.current_time() - start == 2.0
        f = sched.submit(boom)
        with pytest.raises(TaskFailed) as info:
            await f.wait()
        assert isinstance(info.value.__cause__, RuntimeError)
        assert info.value.status is TaskStatus.FAILED
    assert await a.wait() == "A"  # already finished: returns at once (after a checkpoint)


async def test_a_task_awaiting_another_tasks_wait_works_when_slots_allow(clock: MockClock) -> None:
    async with open_scheduler(max_workers=2) as sched:
        a = sched.submit(sleeper(1, "A"))

        async def waits_for_a() -> str:
            return f"got {await a.wait()}"

        b = sched.submit(waits_for_a)
    assert b.result == "got A"


# -- raise_on_failure ----------------------------------------------------------------------


async def test_raise_on_failure_groups_one_task_failed_per_failed_task(clock: MockClock) -> None:
    with pytest.RaisesGroup(
        pytest.RaisesExc(TaskFailed, match="'f'"),
        pytest.RaisesExc(TaskFailed, match="'t'"),
    ) as info:
        async with open_scheduler(raise_on_failure=True) as sched:
            sched.submit(boom, id="f")
            sched.submit(sleeper(5), id="t", timeout=1)
            sched.submit(noop, id="ok")
    causes = {type(e.__cause__) for e in info.value.exceptions}
    assert causes == {RuntimeError, TimeoutError}


async def test_raise_on_failure_is_quiet_when_everything_completes(clock: MockClock) -> None:
    async with open_scheduler(raise_on_failure=True) as sched:
        sched.submit(noop)
    assert sched.stats().completed == 1


# -- events --------------------------------------------------------------------------------


async def test_events_one_per_status_change_in_order(clock: MockClock) -> None:
    start = trio.current_time()
    async with open_scheduler() as sched:
        events = sched.subscribe()
        a = sched.submit(sleeper(1), id="a")
        sched.submit(boom, a, id="b", retry=RetryPolicy(max_retries=1, delay=2))
    seen = [(e.task_id, e.status.value, e.attempt, e.at - start) async for e in events]
    assert seen == [
        ("a", "pending", 0, 0.0),
        ("b", "waiting", 0, 0.0),
        ("a", "running", 1, 0.0),
        ("a", "completed", 1, 1.0),
        ("b", "pending", 0, 1.0),
        ("b", "running", 1, 1.0),
        ("b", "waiting", 1, 1.0),
        ("b", "pending", 1, 3.0),
        ("b", "running", 2, 3.0),
        ("b", "failed", 2, 3.0),
    ]


async def test_a_slow_subscriber_stalls_nothing_and_loses_nothing(clock: MockClock) -> None:
    start = trio.current_time()
    async with open_scheduler(max_workers=10) as sched:
        events = sched.subscribe()
        for _ in range(1000):
            sched.submit(noop)
    assert trio.current_time() == start
    received = [event async for event in events]
    assert len(received) == 3000
    assert all(isinstance(e, TaskEvent) for e in received)


async def test_a_subscriber_that_leaves_is_dropped(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        events = sched.subscribe()
        events.close()
        sched.submit(noop)
    assert sched.stats().completed == 1


async def test_subscribing_after_the_end_gives_an_ended_stream(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        pass
    assert [event async for event in sched.subscribe()] == []


# -- threads and nested submission -----------------------------------------------------------


async def test_plain_functions_run_in_a_worker_thread(clock: MockClock) -> None:
    main_thread = threading.get_ident()

    def blocking(x: int) -> tuple[int, bool]:
        return x * 2, threading.get_ident() != main_thread

    async with open_scheduler() as sched:
        h = sched.submit(blocking, 21)
    assert h.result == (42, True)


async def test_a_thread_that_overruns_its_timeout_ends_timeout(clock: MockClock) -> None:
    def slow() -> str:
        time.sleep(0.05)
        return "too late"

    async with open_scheduler() as sched:
        # A deadline in the mock clock's past: already expired when the thread returns.
        h = sched.submit(slow, timeout=1e-9)
    assert h.status is TaskStatus.TIMEOUT and h.result is None


async def test_submit_from_inside_a_running_task(clock: MockClock) -> None:
    async with open_scheduler() as sched:

        async def parent() -> str:
            child = sched.submit(sleeper(1, "child"), id="child")
            sched.submit(sleeper(0), child, id="grandchild")
            return "parent"

        sched.submit(parent, id="parent")
    assert [h.status for h in sched.tasks.values()] == [TaskStatus.COMPLETED] * 3
    assert list(sched.tasks) == ["parent", "child", "grandchild"]


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fn": 42}, TypeError, "fn must be callable"),
        ({"timeout": 0}, ValueError, "timeout must be > 0"),
        ({"timeout": -1.0}, ValueError, "timeout must be > 0"),
        ({"timeout": float("nan")}, ValueError, "timeout must be > 0"),
        ({"timeout": "1"}, TypeError, "timeout must be a number"),
        ({"retry": -1}, ValueError, "retry must be >= 0"),
        ({"retry": "x"}, TypeError, "retry must be None"),
        ({"priority": 1.5}, TypeError, "priority must be an int"),
        ({"kwargs": [1]}, TypeError, "kwargs must be a mapping"),
        ({"depends_on": "task-a"}, TypeError, "not a string"),
        ({"id": "taken"}, DuplicateTaskError, "'taken' is already in use"),
        ({"depends_on": ["nope"]}, UnknownDependencyError, "unknown task 'nope'"),
        ({"id": [1]}, TypeError, r"^id must be hashable, got \[1\]$"),
        ({"depends_on": [[1]]}, TypeError, r"^depends_on holds handles or ids \(hashable\), "),
        ({"kwargs": {1: "x"}}, TypeError, r"^kwargs keys must be strings, got 1$"),
    ],
)
async def test_bad_input_fails_at_submit_with_nothing_scheduled(
    kwargs: dict, error: type[Exception], message: str, clock: MockClock
) -> None:
    async with open_scheduler() as sched:
        sched.submit(noop, id="taken")
        fn = kwargs.pop("fn", noop)
        before = sched.stats().total
        with pytest.raises(error, match=message):
            sched.submit(fn, **kwargs)
        assert sched.stats().total == before
        assert list(sched.tasks) == ["taken"]


async def test_trioflow_errors_share_a_base(clock: MockClock) -> None:
    for exc_type in (
        DuplicateTaskError,
        UnknownDependencyError,
        SchedulerClosedError,
        trioflow.CycleError,
        DependencyFailed,
        TaskFailed,
        trioflow.NoCapableAgentError,
    ):
        assert issubclass(exc_type, TrioflowError)


async def test_a_handle_from_another_scheduler_is_an_unknown_dependency(clock: MockClock) -> None:
    async with open_scheduler() as one, open_scheduler() as two:
        foreign = one.submit(noop)
        with pytest.raises(UnknownDependencyError):
            two.submit(noop, foreign)
        assert two.stats().total == 0


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-3, ValueError), (2.0, TypeError)])
async def test_bad_max_workers(value: object, error: type[Exception], clock: MockClock) -> None:
    with pytest.raises(error, match="max_workers"):
        async with open_scheduler(max_workers=value):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize("value", ["no", 0, None])
async def test_raise_on_failure_must_be_a_bool(value: object, clock: MockClock) -> None:
    # "no" is truthy: taken as given, it would raise the failures on exit.
    with pytest.raises(TypeError, match="raise_on_failure must be a bool"):
        async with open_scheduler(raise_on_failure=value):  # type: ignore[arg-type]
            pass


async def test_submit_after_the_scheduler_finished(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        pass
    with pytest.raises(SchedulerClosedError):
        sched.submit(noop)


async def test_auto_ids_are_unique_and_named_after_the_function(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        a = sched.submit(noop)
        b = sched.submit(noop)
    assert a.id != b.id and str(a.id).startswith("noop")


# -- containment: nothing a task raises takes the scheduler down ---------------------------------


async def _raise_in_a_thread_after(seconds: float) -> None:
    def blocks_then_raises() -> None:
        time.sleep(seconds)
        raise OSError("the uncancellable call failed")

    await trio.to_thread.run_sync(blocks_then_raises)


def nursery_task_raising_while_cut_short():
    """A task whose own nursery has a child that raises while the task is being cancelled:
    an uncancellable thread call that raises once it returns. What leaves the task is a
    group mixing Cancelled with a real error."""

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_raise_in_a_thread_after, 0.02)
            nursery.start_soon(trio.sleep_forever)

    return run


async def test_a_group_mixing_cancelled_and_an_error_on_timeout_stays_in_its_task(
    clock: MockClock,
) -> None:
    clock.autojump_threshold = 0.01  # let the worker thread finish in real time
    async with open_scheduler(max_workers=2) as sched:
        mixed = sched.submit(nursery_task_raising_while_cut_short(), timeout=1e-6)
        other = sched.submit(sleeper(5, "fine"))
    assert mixed.status is TaskStatus.TIMEOUT
    assert isinstance(mixed.error, TimeoutError)
    assert isinstance(mixed.error.__context__, BaseExceptionGroup)
    assert other.status is TaskStatus.COMPLETED and other.result == "fine"


async def test_a_group_mixing_cancelled_and_an_error_on_cancel_stays_in_its_task(
    clock: MockClock,
) -> None:
    clock.autojump_threshold = 0.01
    async with open_scheduler(max_workers=2) as sched:
        mixed = sched.submit(nursery_task_raising_while_cut_short())
        other = sched.submit(sleeper(5, "fine"))
        await trio.testing.wait_all_tasks_blocked()  # the thread call is under way
        mixed.cancel()
    assert mixed.status is TaskStatus.CANCELLED
    assert isinstance(mixed.error, BaseExceptionGroup)
    assert other.status is TaskStatus.COMPLETED


async def test_the_body_exception_survives_a_task_raising_a_mixed_group(
    clock: MockClock,
) -> None:
    clock.autojump_threshold = 0.01
    with pytest.raises(KeyError, match="body"):
        async with open_scheduler() as sched:
            mixed = sched.submit(nursery_task_raising_while_cut_short())
            await trio.testing.wait_all_tasks_blocked()
            raise KeyError("body")
    assert mixed.status is TaskStatus.CANCELLED


async def test_a_plain_exception_group_fails_only_its_task(clock: MockClock) -> None:
    async def two_children_fail() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(boom)
            nursery.start_soon(boom)

    async with open_scheduler() as sched:
        grouped = sched.submit(two_children_fail)
        other = sched.submit(sleeper(1, "fine"))
    assert grouped.status is TaskStatus.FAILED
    assert isinstance(grouped.error, ExceptionGroup) and len(grouped.error.exceptions) == 2
    assert other.status is TaskStatus.COMPLETED


async def test_system_exit_in_a_task_ends_the_program_after_recording_the_task(
    clock: MockClock,
) -> None:
    async def leaves() -> None:
        raise SystemExit(3)

    # As itself, not in a group: uncaught, a group would exit 1 with a traceback, not 3.
    with pytest.raises(SystemExit) as raised:
        async with open_scheduler() as sched:
            h = sched.submit(leaves)
    assert raised.value.code == 3
    assert h.status is TaskStatus.FAILED and isinstance(h.error, SystemExit)


async def test_ctrl_c_in_a_task_leaves_the_block_as_a_keyboard_interrupt(clock: MockClock) -> None:
    """trio may deliver Ctrl-C to any task; ``except KeyboardInterrupt`` must catch it."""

    async def interrupted() -> None:
        await trio.sleep(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        async with open_scheduler() as sched:
            sched.submit(interrupted)
            other = sched.submit(trio.sleep, 10)
    assert other.status is TaskStatus.CANCELLED
    assert trio.current_time() == 1


async def test_an_async_task_that_blocks_past_its_timeout_ends_timeout(clock: MockClock) -> None:
    async def blocks() -> str:
        time.sleep(0.05)  # noqa: ASYNC251 - blocking on purpose: no checkpoint to deliver it
        return "too late"

    clock.rate = 1.0  # virtual time follows real time, so the blocking call uses it up
    async with open_scheduler() as sched:
        h = sched.submit(blocks, timeout=0.01)
    assert h.status is TaskStatus.TIMEOUT and h.result is None


# -- threads -------------------------------------------------------------------------------


async def test_a_task_in_a_worker_thread_can_submit_sub_tasks(clock: MockClock) -> None:
    async with open_scheduler() as sched:

        def plans() -> str:
            child = sched.submit(sleeper(1, "child"), id="child")
            assert isinstance(child, trioflow.TaskHandle)
            return "planned"

        parent = sched.submit(plans, id="parent")
    assert parent.result == "planned"
    assert sched.tasks["child"].status is TaskStatus.COMPLETED


async def test_submit_from_a_thread_after_the_end_is_a_clear_error(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        pass
    with pytest.raises(SchedulerClosedError):
        await trio.to_thread.run_sync(sched.submit, noop)
    assert sched.stats().total == 0 and sched.limiter.borrowed_tokens == 0


async def test_a_task_in_a_worker_thread_can_cancel_other_tasks(clock: MockClock) -> None:
    """cancel() from another thread is carried into the scheduler's run, as submit() is: the
    running task is interrupted and the queued one ends at once. (Before, it cancelled the
    attempt's scope from the thread, which failed half-way inside trio with "must be called
    from async context" and left the run stuck: this test hung.)"""

    async def runs() -> None:
        with trio.CancelScope():  # (a scope inside the attempt's: its cancel reaches it too)
            await trio.sleep_forever()

    async with open_scheduler(max_workers=2) as sched:
        running = sched.submit(runs, id="running")
        queued = sched.submit(runs, id="queued", priority=9)  # (may start once running ends)

        def cancels() -> str:
            running.cancel()
            queued.cancel()
            return "cancelled both"

        canceller = sched.submit(cancels, id="canceller")
        assert await canceller.wait() == "cancelled both"
    assert running.status is TaskStatus.CANCELLED and running.attempts == 1
    assert queued.status is TaskStatus.CANCELLED
    assert trio.current_time() == 0


async def test_cancel_from_a_thread_after_the_end_does_nothing(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        done = sched.submit(noop)
    await trio.to_thread.run_sync(done.cancel)
    assert done.status is TaskStatus.COMPLETED


async def test_bad_input_from_a_thread_is_raised_in_that_thread(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        with pytest.raises(TypeError, match="fn must be callable"):
            await trio.to_thread.run_sync(sched.submit, 42)
    assert sched.stats().total == 0
