"""trioflow.compat: the seed chapter's API and its test program, on trio."""

from __future__ import annotations

import re

import pytest
import trio
from trio.testing import MockClock

from trioflow import CycleError, DuplicateTaskError, SchedulerClosedError, UnknownDependencyError
from trioflow.compat import SmartScheduler, Task, TaskStatus


async def test_the_seed_test_program_runs_unchanged(autojump_clock: MockClock) -> None:
    """The chapter's test_scheduler(), asyncio.sleep -> trio.sleep, with exact times."""
    start = trio.current_time()
    scheduler = SmartScheduler(max_workers=3)

    async def task_a():
        await trio.sleep(1)
        return "A完成"

    async def task_b(a_result: str):
        await trio.sleep(1)
        return f"B完成（依赖: {a_result}）"

    async def task_c():
        await trio.sleep(0.5)
        return "C完成"

    async def task_fail():
        raise Exception("模拟失败")

    task_a_id = await scheduler.add_task(Task(id="task-a", func=task_a, priority=1))
    task_b_id = await scheduler.add_task(
        Task(id="task-b", func=task_b, priority=2, dependencies={"task-a"})
    )
    await scheduler.add_task(Task(id="task-c", func=task_c, priority=1))
    await scheduler.add_task(Task(id="task-fail", func=task_fail, max_retries=2))

    results = await scheduler.run()

    assert (task_a_id, task_b_id) == ("task-a", "task-b")
    assert list(results) == ["task-a", "task-b", "task-c", "task-fail"]
    assert results["task-b"].result == "B完成（依赖: A完成）"
    assert results["task-c"].status is TaskStatus.COMPLETED
    fail = results["task-fail"]
    assert fail.status is TaskStatus.FAILED
    assert str(fail.error) == "模拟失败"
    assert fail.retries == 2
    # retries back off exponentially: after 1 s, then 2 s
    assert trio.current_time() - start == 3.0
    stats = scheduler.get_stats()
    assert stats["total"] == 4
    assert (stats["completed"], stats["failed"]) == (3, 1)
    assert stats["status"]["completed"] == 3
    for task in results.values():
        assert task.started_at is not None and task.completed_at is not None


async def test_several_dependency_results_are_appended_in_add_order(
    autojump_clock: MockClock,
) -> None:
    async def value(v: str) -> str:
        return v

    async def join(prefix: str, *deps: str) -> str:
        return prefix + "".join(deps)

    scheduler = SmartScheduler()
    await scheduler.add_task(Task(id="z", func=value, args=("Z",)))
    await scheduler.add_task(Task(id="y", func=value, args=("Y",)))
    await scheduler.add_task(Task(id="j", func=join, args=(">",), dependencies={"y", "z"}))
    results = await scheduler.run()
    assert results["j"].result == ">ZY"


async def test_dependencies_may_be_added_after_their_dependents(autojump_clock: MockClock) -> None:
    async def value() -> int:
        return 7

    async def double(x: int) -> int:
        return 2 * x

    scheduler = SmartScheduler()
    await scheduler.add_task(Task(id="b", func=double, dependencies={"a"}))
    await scheduler.add_task(Task(id="a", func=value))
    results = await scheduler.run()
    assert results["b"].result == 14


async def test_a_failed_dependency_cancels_dependents_instead_of_hanging(
    autojump_clock: MockClock,
) -> None:
    async def fail():
        raise ValueError("nope")

    async def never(x):
        raise AssertionError("must not run")

    scheduler = SmartScheduler()
    await scheduler.add_task(Task(id="a", func=fail, max_retries=0))
    await scheduler.add_task(Task(id="b", func=never, dependencies={"a"}))
    results = await scheduler.run()
    assert results["a"].status is TaskStatus.FAILED
    assert results["b"].status is TaskStatus.CANCELLED
    assert scheduler.get_stats()["status"]["cancelled"] == 1


async def test_timeouts_are_retried_with_exponential_backoff(autojump_clock: MockClock) -> None:
    start = trio.current_time()

    async def slow():
        await trio.sleep(100)

    scheduler = SmartScheduler()
    await scheduler.add_task(Task(id="s", func=slow, timeout=1.0, max_retries=2, retry_delay=1))
    results = await scheduler.run()
    assert results["s"].status is TaskStatus.TIMEOUT
    assert results["s"].retries == 2
    assert trio.current_time() - start == 1 + 1 + 1 + 2 + 1


async def test_cycle_is_reported_before_anything_runs(autojump_clock: MockClock) -> None:
    ran = []

    async def work():
        ran.append(1)

    scheduler = SmartScheduler()
    await scheduler.add_task(Task(id="free", func=work))
    await scheduler.add_task(Task(id="a", func=work, dependencies={"b"}))
    await scheduler.add_task(Task(id="b", func=work, dependencies={"a"}))
    with pytest.raises(CycleError) as info:
        await scheduler.run()
    assert set(info.value.cycle) == {"a", "b"}
    assert ran == []


async def test_unknown_dependency_is_reported_before_anything_runs(
    autojump_clock: MockClock,
) -> None:
    async def work():
        pass

    scheduler = SmartScheduler()
    await scheduler.add_task(Task(id="a", func=work, dependencies={"ghost"}))
    with pytest.raises(UnknownDependencyError, match="'ghost'"):
        await scheduler.run()
    assert scheduler.tasks["a"].status is TaskStatus.PENDING


async def test_add_task_refuses_bad_tasks() -> None:
    async def work():
        pass

    scheduler = SmartScheduler()
    await scheduler.add_task(Task(id="a", func=work))
    with pytest.raises(DuplicateTaskError):
        await scheduler.add_task(Task(id="a", func=work))
    with pytest.raises(TypeError, match="func must be callable"):
        await scheduler.add_task(Task(id="b", func="work"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout must be > 0"):
        await scheduler.add_task(Task(id="c", func=work, timeout=0))
    with pytest.raises(ValueError, match="max_retries must be >= 0"):
        await scheduler.add_task(Task(id="d", func=work, max_retries=-1))
    with pytest.raises(TypeError, match="takes a Task"):
        await scheduler.add_task({"id": "e"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_workers"):
        SmartScheduler(max_workers=0)
    assert list(scheduler.tasks) == ["a"]


async def test_run_twice_is_refused(autojump_clock: MockClock) -> None:
    scheduler = SmartScheduler()
    await scheduler.run()
    with pytest.raises(RuntimeError, match="only once"):
        await scheduler.run()


async def test_add_task_from_inside_a_running_task(autojump_clock: MockClock) -> None:
    scheduler = SmartScheduler()

    async def child(parent_result=None):
        return "child"

    async def parent():
        await scheduler.add_task(Task(id="child", func=child))
        return "parent"

    await scheduler.add_task(Task(id="parent", func=parent))
    results = await scheduler.run()
    assert results["child"].result == "child"


async def test_stats_before_and_during_the_run(autojump_clock: MockClock) -> None:
    scheduler = SmartScheduler(max_workers=1)
    seen = []

    async def probe():
        seen.append(scheduler.get_stats()["status"])

    await scheduler.add_task(Task(id="p", func=probe))
    await scheduler.add_task(Task(id="q", func=probe))
    assert scheduler.get_stats()["status"]["pending"] == 2
    await scheduler.run()
    assert [(s["running"], s["pending"], s["completed"]) for s in seen] == [(1, 1, 0), (1, 0, 1)]


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"priority": "high"}, TypeError, "task 'x': priority must be an int"),
        ({"timeout": "30"}, TypeError, "task 'x': timeout must be a number"),
        ({"retry_delay": -1}, ValueError, "task 'x': retry_delay must be >= 0"),
        ({"kwargs": ["a"]}, TypeError, "task 'x': kwargs must be a dict"),
    ],
)
async def test_a_malformed_task_is_refused_at_add_task_not_during_run(
    fields: dict[str, object], error: type[Exception], message: str, autojump_clock: MockClock
) -> None:
    async def work() -> None:
        pass

    scheduler = SmartScheduler()
    task = Task(id="x", func=work)
    for name, value in fields.items():
        setattr(task, name, value)  # after construction, as the chapter's code would
    with pytest.raises(error, match=message):
        await scheduler.add_task(task)
    assert scheduler.tasks == {}
    assert await scheduler.run() == {}


def test_dependencies_given_as_one_string_are_refused() -> None:
    async def work() -> None:
        pass

    with pytest.raises(TypeError, match="not a string: 'task-a'"):
        Task(id="b", func=work, dependencies="task-a")  # type: ignore[arg-type]


async def test_add_task_after_run_is_an_error_not_ignored(autojump_clock: MockClock) -> None:
    async def work() -> None:
        pass

    scheduler = SmartScheduler()
    await scheduler.run()
    with pytest.raises(SchedulerClosedError, match="run\\(\\) has finished"):
        await scheduler.add_task(Task(id="late", func=work))
    assert scheduler.tasks == {}


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"func": None}, TypeError, "task 'b': func must be callable, got None"),
        ({"timeout": -5}, ValueError, "task 'b': timeout must be > 0, got -5"),
        ({"id": "z"}, ValueError, "task 'b' was renamed 'z' after add_task"),
    ],
)
async def test_a_task_changed_after_add_task_is_refused_before_anything_starts(
    change: dict[str, object], error: type[Exception], message: str, autojump_clock: MockClock
) -> None:
    """A Task is mutable. Changed after add_task, it used to fail run() halfway through
    submitting (task 'a' cancelled, 'b' left pending, and run() refused a second call), or
    with a KeyError for a new id. Now run() refuses it first; fixed, the run goes ahead."""

    async def work() -> str:
        return "done"

    scheduler = SmartScheduler()
    await scheduler.add_task(Task(id="a", func=work))
    b = Task(id="b", func=work)
    await scheduler.add_task(b)
    saved = {name: getattr(b, name) for name in change}
    for name, value in change.items():
        setattr(b, name, value)
    with pytest.raises(error, match=re.escape(message)):
        await scheduler.run()
    assert {t.status for t in scheduler.tasks.values()} == {TaskStatus.PENDING}
    for name, value in saved.items():
        setattr(b, name, value)
    results = await scheduler.run()
    assert [t.result for t in results.values()] == ["done", "done"]


async def test_stats_after_the_run_keep_its_timing(autojump_clock: MockClock) -> None:
    """get_stats() had elapsed and throughput during run() and lost them when it returned,
    the moment a program prints its statistics (a KeyError for stats["elapsed"])."""

    async def work() -> None:
        await trio.sleep(2)

    scheduler = SmartScheduler()
    for name in "ab":
        await scheduler.add_task(Task(id=name, func=work))
    await scheduler.run()
    await trio.sleep(10)  # the run's own figures, not the time since
    stats = scheduler.get_stats()
    assert stats["elapsed"] == 2.0 and stats["throughput"] == 1.0
    assert stats["completed"] == 2 and stats["status"]["completed"] == 2
