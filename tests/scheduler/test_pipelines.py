"""What real pipelines need: inputs in containers, settled inputs, waiting inside tasks,
gather/as_completed, pools, retry predicates, contexts, logging, keep_finished and map.
All through the public API, on the autojump clock."""

from __future__ import annotations

import contextvars
import functools
import gc
import logging
import sys
from collections.abc import Iterator
from typing import Any

import outcome
import pytest
import trio
import trio.testing
from trio.testing import MockClock

import trioflow
from trioflow import (
    Pool,
    RetryPolicy,
    TaskFailed,
    TaskStatus,
    UnknownDependencyError,
    open_scheduler,
    settled,
)


@pytest.fixture
def clock(autojump_clock: MockClock) -> MockClock:
    return autojump_clock


def returns(value: object, seconds: float = 0.0):
    async def run(*args: object, **kwargs: object) -> object:
        await trio.sleep(seconds)
        return value

    return run


def echo(seconds: float = 0.0):
    async def run(*args: object, **kwargs: object) -> object:
        await trio.sleep(seconds)
        return args, kwargs

    return run


async def fails(*args: object) -> None:
    await trio.sleep(1)
    raise ValueError("nope")


class Gauge:
    """How many tasks execute (not wait) at once, and the most ever seen."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    def __enter__(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        self.now -= 1


# -- inputs inside containers ----------------------------------------------------------------


async def test_handles_inside_a_list_tuple_and_dict_are_replaced_by_their_results(
    clock: MockClock,
) -> None:
    async with open_scheduler() as sched:
        a = sched.submit(returns("A", 1), id="a")
        b = sched.submit(returns("B", 2), id="b")
        plain = [1, 2]
        user = sched.submit(
            echo(),
            [a, b, "x"],
            (b,),
            plain,
            kwargs={"named": {"k": a, "other": 3}, "deep": [[a]]},
            id="user",
        )
    args, kwargs = user.result
    assert args == (["A", "B", "x"], ("B",), [1, 2])
    assert args[2] is plain  # no input inside: passed as the very object given
    assert kwargs["named"] == {"k": "A", "other": 3}
    assert kwargs["deep"] == [[a]]  # deeper than one level: left untouched
    assert user.dependencies == {"a", "b"}
    assert user.started_at is not None and user.started_at == b.completed_at


async def test_a_failed_handle_in_a_list_cancels_the_dependent(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        bad = sched.submit(fails, id="bad")
        user = sched.submit(echo(), [bad], id="user")
    assert user.status is TaskStatus.CANCELLED
    assert isinstance(user.error, trioflow.DependencyFailed)


# -- settled inputs ---------------------------------------------------------------------------


async def test_settled_gives_outcomes_and_runs_on_partial_results(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        good = sched.submit(returns("page", 1), id="good")
        bad = sched.submit(fails, id="bad")
        gone = sched.submit(returns("never", 100), id="gone")

        async def aggregate(pages: list[outcome.Outcome[str]]) -> list[str]:
            return [repr(page) for page in pages]

        total = sched.submit(aggregate, [settled(good), settled(bad), settled(gone)], id="agg")
        doomed = sched.submit(echo(), bad, id="doomed")
        await trio.sleep(2)
        gone.cancel()
    assert total.status is TaskStatus.COMPLETED
    assert total.dependencies == {"good", "bad", "gone"}
    good_outcome, bad_outcome, gone_outcome = (
        settled(good).outcome(),
        settled(bad).outcome(),
        settled(gone).outcome(),
    )
    assert good_outcome == outcome.Value("page")
    assert isinstance(bad_outcome, outcome.Error) and isinstance(bad_outcome.error, ValueError)
    # A plain cancel has no error: the outcome carries the TaskFailed that wait() raises.
    assert isinstance(gone_outcome, outcome.Error)
    assert isinstance(gone_outcome.error, TaskFailed) and gone_outcome.error.__cause__ is None
    assert total.result[0] == "Value('page')"
    assert doomed.status is TaskStatus.CANCELLED  # a plain dependency still dooms


async def test_settled_in_depends_on_is_ordering_that_survives_failure(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        bad = sched.submit(fails, id="bad")
        cleanup = sched.submit(returns("cleaned"), depends_on=[settled(bad)], id="cleanup")
    assert cleanup.status is TaskStatus.COMPLETED
    assert cleanup.started_at == bad.completed_at
    assert cleanup.dependencies == {"bad"}


async def test_settled_on_an_already_failed_task_runs_at_once(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        bad = sched.submit(fails, id="bad")
        await trio.sleep(5)
        late = sched.submit(echo(), settled(bad))
    (received,), _ = late.result
    assert isinstance(received, outcome.Error)


async def test_settled_refuses_what_is_not_a_handle() -> None:
    with pytest.raises(TypeError, match="settled\\(\\) takes a TaskHandle"):
        settled("a")  # type: ignore[arg-type]


# -- waiting inside a task gives the slot back -----------------------------------------------------


async def test_nested_fan_out_three_levels_deep_with_one_worker(clock: MockClock) -> None:
    gauge = Gauge()
    async with open_scheduler(max_workers=1) as sched:

        async def leaf(n: int) -> int:
            with gauge:
                await trio.sleep(1)
            return n

        async def middle(n: int) -> int:
            with gauge:
                await trio.sleep(0.5)
            children = [sched.submit(leaf, n * 10 + i) for i in range(3)]
            results = await sched.gather(*children)
            with gauge:
                return sum(results)

        async def top() -> int:
            with gauge:
                await trio.sleep(0.1)
            parts = [sched.submit(middle, i) for i in range(3)]
            total = 0
            for part in parts:
                total += await part.wait()
            return total

        root = sched.submit(top, id="root")
    assert root.result == sum(n * 10 + i for n in range(3) for i in range(3))
    assert gauge.most == 1
    assert sched.stats().completed == 1 + 3 + 9
    assert sched.limiter.borrowed_tokens == 0


async def test_at_most_max_workers_execute_while_others_wait(clock: MockClock) -> None:
    gauge = Gauge()
    async with open_scheduler(max_workers=3) as sched:

        async def leaf() -> None:
            with gauge:
                await trio.sleep(1)

        async def parent() -> None:
            with gauge:
                await trio.sleep(0.1)
            await sched.gather(*[sched.submit(leaf) for _ in range(5)])
            with gauge:
                await trio.sleep(0.1)

        for _ in range(6):
            sched.submit(parent)
    assert gauge.most == 3
    assert sched.stats().completed == 6 + 30


async def test_a_waiting_task_stays_running_and_resumes_at_its_priority(clock: MockClock) -> None:
    order: list[str] = []
    async with open_scheduler(max_workers=1) as sched:

        async def step(name: str) -> None:
            order.append(name)
            await trio.sleep(1)

        async def parent() -> None:
            order.append("parent starts")
            child = sched.submit(step, "child", priority=0)
            await child.wait()
            order.append("parent resumes")

        p = sched.submit(parent, priority=1)
        await trio.testing.wait_all_tasks_blocked()
        sched.submit(step, "urgent", priority=0)
        sched.submit(step, "later", priority=5)
        await trio.sleep(0.5)
        assert p.status is TaskStatus.RUNNING
    # The parent waits at priority 1: the urgent task (0) goes first, the later one (5) after.
    assert order == ["parent starts", "child", "urgent", "parent resumes", "later"]


async def test_a_task_cannot_wait_for_itself(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        me: list[trioflow.TaskHandle[Any]] = []

        async def selfish() -> None:
            await me[0].wait()

        me.append(sched.submit(selfish))
    assert isinstance(me[0].error, RuntimeError)
    assert "cannot wait for itself" in str(me[0].error)


async def test_a_task_cannot_wait_for_a_task_that_waits_for_it(clock: MockClock) -> None:
    """A dependent cannot start before the task it depends on ends: waiting for it from
    inside that task would wait for ever, so it is refused as waiting for itself is."""
    async with open_scheduler() as sched:
        me: list[trioflow.TaskHandle[Any]] = []

        async def waits_for_its_dependents() -> None:
            child = sched.submit(returns(1), me[0], id="child")  # waits for me to complete
            grandchild = sched.submit(returns(2), id="grandchild", depends_on=[settled(child)])
            unrelated = sched.submit(returns(3), id="unrelated")
            await sched.gather(unrelated, grandchild)

        me.append(sched.submit(waits_for_its_dependents, id="parent"))
    assert isinstance(me[0].error, RuntimeError)
    assert str(me[0].error) == (
        "task 'parent' cannot wait for task 'grandchild', which waits for it to end"
    )
    assert [h.status for h in sched.tasks.values()] == [
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,  # doomed by the parent's failure
        TaskStatus.COMPLETED,  # settled: it runs however the child ended
        TaskStatus.COMPLETED,
    ]


async def test_cancelling_a_task_while_it_waits_frees_everything(clock: MockClock) -> None:
    async with open_scheduler(max_workers=1) as sched:
        child = sched.submit(returns("slow", 100), id="child")

        async def parent() -> object:
            return await child.wait()

        p = sched.submit(parent, id="parent", priority=0)
        await trio.sleep(1)
        p.cancel()
        await trio.sleep(1)
        assert p.status is TaskStatus.CANCELLED
        assert child.status is TaskStatus.RUNNING
        assert sched.limiter.borrowed_tokens == 1
        child.cancel()
    assert sched.limiter.borrowed_tokens == 0


# -- gather and as_completed ----------------------------------------------------------------


async def test_gather_returns_results_in_order_and_raises_the_first_failure(
    clock: MockClock,
) -> None:
    async with open_scheduler() as sched:
        a = sched.submit(returns("a", 3))
        b = sched.submit(returns("b", 1))
        assert await sched.gather(a, b) == ["a", "b"]
        assert trio.current_time() == 3
        slow_bad = sched.submit(fails)
        fine = sched.submit(returns("fine", 5))
        with pytest.raises(TaskFailed) as info:
            await sched.gather(fine, slow_bad)
        assert trio.current_time() == 3 + 5  # waited for all before raising
        assert isinstance(info.value.__cause__, ValueError)
        assert fine.status is TaskStatus.COMPLETED  # nothing was cancelled


async def test_as_completed_yields_in_the_order_they_end(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        handles = [sched.submit(returns(n, n), id=n) for n in (3, 0.5, 2)]
        handles.append(sched.submit(fails, id="bad"))
        seen = []
        async for handle in sched.as_completed(handles):
            seen.append((handle.id, trio.current_time()))
    assert seen == [(0.5, 0.5), ("bad", 1), (2, 2), (3, 3)]


async def test_leaving_as_completed_early_cancels_nothing(clock: MockClock) -> None:
    async with open_scheduler() as sched:
        handles = [sched.submit(returns(n, n)) for n in (1, 2, 3)]
        async for first in sched.as_completed(handles):
            assert first is handles[0]
            break
    assert [h.status for h in handles] == [TaskStatus.COMPLETED] * 3


async def test_gather_refuses_foreign_handles(clock: MockClock) -> None:
    async with open_scheduler() as other:
        foreign = other.submit(returns(1))
    async with open_scheduler() as sched:
        with pytest.raises(TypeError, match="TaskHandle of this scheduler"):
            await sched.gather(foreign)


# -- pools ------------------------------------------------------------------------------------


async def test_a_pool_never_exceeds_its_concurrency(clock: MockClock) -> None:
    gauge = Gauge()

    async def fetch() -> None:
        with gauge:
            await trio.sleep(1)

    async with open_scheduler(max_workers=10, pools={"http": Pool(max_concurrent=2)}) as sched:
        for _ in range(8):
            sched.submit(fetch, pool="http")
    assert gauge.most == 2
    assert trio.current_time() == 4.0


async def test_a_held_back_pool_task_holds_back_nothing_outside_the_pool(
    clock: MockClock,
) -> None:
    starts: dict[str, float] = {}

    def job(name: str, seconds: float):
        async def run() -> None:
            starts[name] = trio.current_time()
            await trio.sleep(seconds)

        return run

    async with open_scheduler(max_workers=2, pools={"one": Pool(max_concurrent=1)}) as sched:
        sched.submit(job("p1", 10), pool="one", priority=0)
        sched.submit(job("p2", 10), pool="one", priority=0)  # held: pool full
        sched.submit(job("free", 1), priority=5)  # lower priority, but can start
    assert starts == {"p1": 0.0, "free": 0.0, "p2": 10.0}


async def test_rate_limited_starts_are_evenly_spaced(clock: MockClock) -> None:
    starts: list[float] = []

    async def fetch() -> None:
        starts.append(trio.current_time())

    async with open_scheduler(max_workers=5, pools={"api": Pool(max_per_second=4)}) as sched:
        for _ in range(6):
            sched.submit(fetch, pool="api")
    assert starts == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]


async def test_an_idle_pool_earns_no_burst(clock: MockClock) -> None:
    starts: list[float] = []

    async def fetch() -> None:
        starts.append(trio.current_time())

    pool = Pool(max_per_second=2)
    async with open_scheduler() as sched:
        sched.submit(fetch, pool=pool)
        await trio.sleep(10)
        for _ in range(3):
            sched.submit(fetch, pool=pool)
    assert starts == [0.0, 10.0, 10.5, 11.0]


async def test_both_limits_together_and_a_retry_counts_as_a_start(clock: MockClock) -> None:
    starts: list[float] = []
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        starts.append(trio.current_time())
        calls += 1
        if calls == 1:
            raise OSError("first try fails")
        await trio.sleep(1)

    pool = Pool(max_concurrent=1, max_per_second=1)
    async with open_scheduler() as sched:
        sched.submit(flaky, pool=pool, retry=RetryPolicy(max_retries=1, delay=0))
        sched.submit(flaky, pool=pool)
    # Attempt 1 fails at 0; its retry is a start, so it waits for 1.0; the other task
    # waits for the retry to finish (one at a time) and for the rate: 2.0.
    assert starts == [0.0, 1.0, 2.0]


async def test_a_task_cancelled_while_its_pool_holds_it_back_holds_back_nothing(
    clock: MockClock,
) -> None:
    """The place it was held back for goes to the next one: nothing is left behind to be
    cancelled when the block ends."""
    pool = Pool(max_concurrent=1)
    async with open_scheduler() as sched:
        a = sched.submit(returns("a", 1), pool=pool)
        b = sched.submit(returns("b", 1), pool=pool)
        c = sched.submit(returns("c", 1), pool=pool)
        await trio.sleep(0.5)
        b.cancel()
    assert [a.status, b.status, c.status] == [
        TaskStatus.COMPLETED,
        TaskStatus.CANCELLED,
        TaskStatus.COMPLETED,
    ]
    assert trio.current_time() == 2


async def test_a_task_cancelled_on_its_way_back_from_its_pool_holds_back_nothing(
    clock: MockClock,
) -> None:
    pool = Pool(max_concurrent=1)
    async with open_scheduler(max_workers=2) as sched:
        a = sched.submit(returns("a", 1), pool=pool, id="a")
        b = sched.submit(returns("b", 1), pool=pool, id="b")
        c = sched.submit(returns("c", 1), pool=pool, id="c")
        sched.submit(returns("other", 5))  # the second slot
        await trio.sleep(0.5)

        async def cancel_b() -> None:
            b.cancel()  # b was sent back to the queue when a ended, and is not started yet

        sched.submit(cancel_b, priority=0)  # queued: both slots are taken until a ends
    assert [a.status, b.status, c.status] == [
        TaskStatus.COMPLETED,
        TaskStatus.CANCELLED,
        TaskStatus.COMPLETED,
    ]
    assert trio.current_time() == 5


async def test_a_map_whose_pool_lets_it_through_after_its_last_item_passes_the_start_on(
    clock: MockClock,
) -> None:
    """A map() waits in its pool like a task; let through when it has no item left, it
    starts nothing, and the start it was let through for goes to the next held task."""
    starts: list[tuple[str, float]] = []

    async def fetch(name: str) -> None:
        starts.append((name, trio.current_time()))

    pool = Pool(max_per_second=1)
    async with open_scheduler() as sched, trio.open_nursery() as nursery:
        sched.submit(fetch, "t0", pool=pool)
        nursery.start_soon(functools.partial(sched.map, fetch, ["m0"], pool=pool))
        await trio.testing.wait_all_tasks_blocked()
        sched.submit(fetch, "t1", pool=pool)
        await trio.sleep(2.5)
        last = sched.submit(fetch, "t2", pool=pool)  # held behind the map, due at 3
    assert starts == [("t0", 0.0), ("m0", 1.0), ("t1", 2.0), ("t2", 3.0)]
    assert last.status is TaskStatus.COMPLETED


async def test_pool_settings_and_names_are_checked(clock: MockClock) -> None:
    with pytest.raises(ValueError, match="max_concurrent must be >= 1, got 0"):
        Pool(max_concurrent=0)
    with pytest.raises(ValueError, match="max_per_second must be > 0"):
        Pool(max_per_second=0)
    with pytest.raises(TypeError, match="pools must map names"):
        async with open_scheduler(pools={"x": 3}):  # type: ignore[dict-item]
            pass
    async with open_scheduler(pools={"http": Pool(2)}) as sched:
        with pytest.raises(ValueError, match="unknown pool 'ftp' \\(pools: 'http'\\)"):
            sched.submit(returns(1), pool="ftp")
        assert sched.stats().total == 0


async def test_a_pooled_task_that_waits_gives_its_place_back(clock: MockClock) -> None:
    gauge = Gauge()
    async with open_scheduler(max_workers=4, pools={"db": Pool(max_concurrent=1)}) as sched:

        async def query(n: int) -> int:
            with gauge:
                await trio.sleep(1)
            return n

        async def report() -> int:
            with gauge:
                await trio.sleep(0.5)
            sub = [sched.submit(query, n, pool="db") for n in range(3)]
            return sum(await sched.gather(*sub))

        r = sched.submit(report, pool="db")
    assert r.result == 3
    assert gauge.most == 1
    assert trio.current_time() == 0.5 + 3


async def test_a_pooled_task_that_waited_goes_on_as_soon_as_a_place_is_free(
    clock: MockClock,
) -> None:
    """Going on after a wait is not a start: a place is all it needs, even when it had to
    queue for one behind the pool's rate-limited work."""
    log: list[tuple[str, float]] = []
    pool = Pool(max_concurrent=1, max_per_second=0.1)
    async with open_scheduler() as sched:
        other = sched.submit(trio.sleep, 11)

        async def waits() -> None:
            await other.wait()  # ends at 11, while c holds the place
            log.append(("a goes on", trio.current_time()))

        async def c() -> None:
            log.append(("c starts", trio.current_time()))  # at 10: the rate's next start
            await trio.sleep(2)
            sched.submit(d, pool=pool)  # held by the rate (due at 20) when a wants back in

        async def d() -> None:
            log.append(("d starts", trio.current_time()))

        sched.submit(waits, pool=pool)
        sched.submit(c, pool=pool)
    assert log == [("c starts", 10.0), ("a goes on", 12.0), ("d starts", 20.0)]


@pytest.mark.parametrize("how", ["cancel", "timeout", "cancel after its turn came"])
async def test_a_pooled_task_cut_short_while_it_waits_gives_its_place_back_once(
    clock: MockClock, how: str
) -> None:
    """Its place was given back when it began to wait: ending there must not give it back
    a second time, or the pool lets one more through for good."""
    gauge = Gauge()
    pool = Pool(max_concurrent=1)

    async def slow() -> None:
        await trio.sleep(10)

    async def work() -> None:
        with gauge:
            await trio.sleep(1)

    async with open_scheduler() as sched:
        other = sched.submit(slow)

        async def waits() -> None:
            await other.wait()

        waiter = sched.submit(waits, pool=pool, timeout=2 if how == "timeout" else None)
        if how == "cancel after its turn came":
            sched.submit(work, pool=pool)  # holds the place when the waiter wants it back
            await trio.sleep(0.5)
            other.cancel()  # the waiter wakes and queues for its place behind the worker
            await trio.testing.wait_all_tasks_blocked()
        else:
            await trio.sleep(0.5)
        if how != "timeout":
            waiter.cancel()
        await trio.sleep(3)
        for _ in range(3):
            sched.submit(work, pool=pool)
    assert waiter.status is (TaskStatus.TIMEOUT if how == "timeout" else TaskStatus.CANCELLED)
    assert gauge.most == 1


# -- retry predicates, contexts, logging -----------------------------------------------------------


async def test_a_retry_predicate_decides_per_error(clock: MockClock) -> None:
    errors = iter([OSError("503"), OSError("503"), OSError("404")])

    async def fetch() -> None:
        raise next(errors)

    policy = RetryPolicy(max_retries=5, delay=1, retry_on=lambda e: "503" in str(e))
    async with open_scheduler() as sched:
        h = sched.submit(fetch, retry=policy)
    assert h.status is TaskStatus.FAILED and h.attempts == 3 and str(h.error) == "404"


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID", default="-")


async def test_each_task_sees_the_context_of_its_submit(clock: MockClock) -> None:
    async def read(*args: object) -> str:
        await trio.lowlevel.checkpoint()
        return REQUEST_ID.get()

    def read_in_thread() -> str:
        return REQUEST_ID.get()

    async def sets_and_leaks() -> str:
        REQUEST_ID.set("leaked?")
        return REQUEST_ID.get()

    async with open_scheduler(max_workers=1) as sched:
        before = sched.submit(read)
        REQUEST_ID.set("req-1")
        first = sched.submit(read)
        thread = sched.submit(read_in_thread)
        REQUEST_ID.set("req-2")
        second = sched.submit(read, first)
        REQUEST_ID.set("-")
        setter = sched.submit(sets_and_leaks)
        after = sched.submit(read)
    assert [before.result, first.result, thread.result, second.result] == [
        "-",
        "req-1",
        "req-1",
        "req-2",
    ]
    assert setter.result == "leaked?" and after.result == "-"


async def test_logging_names_retries_failures_and_status_changes(
    clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trioflow")
    async with open_scheduler() as sched:
        sched.submit(fails, id="flaky", retry=RetryPolicy(max_retries=1, delay=2))
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "trioflow"]
    assert ("INFO", "task 'flaky' attempt 1 failed (ValueError('nope')); retrying in 2 s") in (
        records
    )
    assert ("WARNING", "task 'flaky' ended failed: ValueError('nope')") in records
    debug = [message for level, message in records if level == "DEBUG"]
    assert debug == [
        "task 'flaky' is pending (attempt 0)",
        "task 'flaky' is running (attempt 1)",
        "task 'flaky' is waiting (attempt 1)",
        "task 'flaky' is pending (attempt 1)",
        "task 'flaky' is running (attempt 2)",
        "task 'flaky' is failed (attempt 2)",
    ]


def test_the_library_adds_only_a_null_handler() -> None:
    handlers = logging.getLogger("trioflow").handlers
    assert [type(h) for h in handlers] == [logging.NullHandler]


# -- keep_finished -------------------------------------------------------------------------------


async def test_keep_finished_keeps_the_most_recent_and_handles_keep_working(
    clock: MockClock,
) -> None:
    async with open_scheduler(max_workers=1, keep_finished=2) as sched:
        first = sched.submit(returns("first"), id="first")
        for n in range(5):
            sched.submit(returns(n), id=f"t{n}")
        await trio.sleep(1)
        assert list(sched.tasks) == ["t3", "t4"]
        later = sched.submit(echo(), first)  # a forgotten task, by handle: still works
        with pytest.raises(UnknownDependencyError):
            sched.submit(echo(), depends_on=["t0"])  # by id: forgotten
        again = sched.submit(returns("again"), id="first")  # a forgotten id is free again
    assert later.result == (("first",), {})
    assert again.result == "again"
    assert sched.stats().total == 8 and sched.stats().completed == 8


async def test_keep_finished_memory_stays_flat_over_a_million_tasks() -> None:
    async def noop() -> None:
        pass

    # Live objects counted by the interpreter's allocator: no tracing overhead, so a
    # million tasks take seconds, and a leak of even one small object per task shows as
    # hundreds of thousands of blocks.
    samples: list[int] = []
    async with open_scheduler(max_workers=8, keep_finished=100) as sched:
        for batch in range(10):
            for _ in range(100_000):
                sched.submit(noop)
            # Polls the counters: waiting on the handles would keep them all alive.
            while sched.stats().finished < (batch + 1) * 100_000:
                await trio.lowlevel.checkpoint()
            gc.collect()
            samples.append(sys.getallocatedblocks())
    assert sched.stats().completed == 1_000_000
    assert len(sched.tasks) == 100
    # After the first batches have sized the structures, more tasks add nothing that
    # grows with them.
    assert max(samples[2:]) - min(samples[2:]) < 5_000, samples


# -- map ------------------------------------------------------------------------------------------


async def test_map_returns_results_in_input_order_without_handles(clock: MockClock) -> None:
    async def square(n: int) -> int:
        await trio.sleep(10 - n)
        return n * n

    async with open_scheduler(max_workers=4) as sched:
        results = await sched.map(square, range(10))
        assert results == [n * n for n in range(10)]
        assert sched.tasks == {}
        assert sched.stats().completed == 10


async def test_map_reads_items_only_as_they_can_start(clock: MockClock) -> None:
    pulled: list[int] = []
    started: list[int] = []

    def items() -> Iterator[int]:
        for n in range(100):
            pulled.append(n)
            yield n

    async def work(n: int) -> int:
        started.append(n)
        assert len(pulled) - len(started) <= 0  # never read ahead of a start
        await trio.sleep(1)
        return n

    async with open_scheduler(max_workers=3) as sched:
        results = await sched.map(work, items())
    assert results == list(range(100))
    assert trio.current_time() == 34


async def test_map_cancels_the_rest_and_raises_when_an_item_fails_for_good(
    clock: MockClock,
) -> None:
    started: list[int] = []

    async def work(n: int) -> int:
        started.append(n)
        if n == 3:
            raise ValueError("item 3")
        await trio.sleep(10)
        return n

    async with open_scheduler(max_workers=4) as sched:
        with pytest.raises(TaskFailed) as info:
            await sched.map(work, range(100))
        assert isinstance(info.value.__cause__, ValueError)
        assert trio.current_time() == 0
        assert started == [0, 1, 2, 3]
        stats = sched.stats()
        assert (stats.failed, stats.cancelled, stats.running) == (1, 3, 0)


async def test_map_retries_and_times_out_items_like_tasks(clock: MockClock) -> None:
    attempts: dict[int, int] = {}

    async def flaky(n: int) -> int:
        attempts[n] = attempts.get(n, 0) + 1
        if attempts[n] == 1:
            await trio.sleep(5)  # the first attempt of each item times out
        return n

    async with open_scheduler() as sched:
        results = await sched.map(flaky, range(3), timeout=1, retry=RetryPolicy(1, delay=0))
    assert results == [0, 1, 2] and attempts == {0: 2, 1: 2, 2: 2}
    assert sched.stats().retries == 3


async def test_map_from_inside_a_task_gives_the_slot_back(clock: MockClock) -> None:
    gauge = Gauge()
    async with open_scheduler(max_workers=1) as sched:

        async def item(n: int) -> int:
            with gauge:
                await trio.sleep(1)
            return n

        async def parent() -> list[int]:
            return await sched.map(item, range(3))

        p = sched.submit(parent)
    assert p.result == [0, 1, 2] and gauge.most == 1 and trio.current_time() == 3


async def test_cancelling_the_map_caller_cancels_its_items(clock: MockClock) -> None:
    async with open_scheduler(max_workers=2) as sched:
        with trio.move_on_after(1.5):
            await sched.map(returns(None, 10), range(5))
        await trio.testing.wait_all_tasks_blocked()
        stats = sched.stats()
        assert (stats.cancelled, stats.running, stats.completed) == (2, 0, 0)
    assert sched.limiter.borrowed_tokens == 0


async def test_an_error_in_the_items_iterable_is_raised_as_itself(clock: MockClock) -> None:
    def items() -> Iterator[int]:
        yield 1
        raise KeyError("bad input")

    async with open_scheduler() as sched:
        with pytest.raises(KeyError, match="bad input"):
            await sched.map(returns(None, 1), items())


async def test_max_workers_none_leaves_the_limits_to_the_pools(clock: MockClock) -> None:
    gauge = Gauge()

    async def fetch() -> None:
        with gauge:
            await trio.sleep(1)

    pools = {"a": Pool(max_concurrent=3), "b": Pool(max_concurrent=3)}
    async with open_scheduler(max_workers=None, pools=pools) as sched:
        assert sched.max_workers is None
        for name in ("a", "b"):
            for _ in range(6):
                sched.submit(fetch, pool=name)
    assert gauge.most == 6 and trio.current_time() == 2


async def test_a_more_urgent_task_goes_between_the_items_of_a_map(clock: MockClock) -> None:
    started: dict[str, float] = {}

    async def item(n: int) -> int:
        await trio.sleep(1)
        return n

    async def urgent() -> None:
        started["urgent"] = trio.current_time()

    async with open_scheduler(max_workers=1) as sched, trio.open_nursery() as nursery:

        async def submit_later() -> None:
            await trio.sleep(2.5)
            sched.submit(urgent, priority=0)

        nursery.start_soon(submit_later)
        results = await sched.map(item, range(6), priority=1)
    assert results == list(range(6))
    assert started == {"urgent": 3.0}  # after the item under way, before the next one
    assert trio.current_time() == 6


async def test_map_items_are_counted_while_they_run(clock: MockClock) -> None:
    async with open_scheduler(max_workers=3) as sched:
        seen: list[tuple[int, int]] = []

        async def item(n: int) -> None:
            stats = sched.stats()
            seen.append((stats.running, stats.completed))
            await trio.sleep(1)

        await sched.map(item, range(6))
    # Each worker that finishes an item starts the next at once: three run throughout.
    assert seen == [(1, 0), (2, 0), (3, 0), (3, 1), (3, 2), (3, 3)]
    assert sched.stats().completed == 6 and sched.stats().total == 6
