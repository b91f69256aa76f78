"""The claims that docs/chapter.md makes about the seed chapter's reference solution, measured.

The reference solution (challenge 1) is ``benchmarks/contenders/seed_reference.py``: the
chapter's code as published plus one marked fix (``# FIX``) so that it runs at all. Each test
here runs it, with and without that fix, on an asyncio event loop whose clock jumps to the
next timer whenever nothing is ready (``AutojumpLoop``), so that its 100 ms polling and its
retry delays cost no wall time and every time below is exact. trioflow's side of each claim
is tested where it lives (``tests/test_compat.py``, ``tests/scheduler/``); the chapter page
cites both.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from trioflow import TaskRejected
from trioflow.agents.examples import CalculatorAgent

from ._run_block import AutojumpLoop

REFERENCE = Path(__file__).resolve().parents[2] / "benchmarks" / "contenders" / "seed_reference.py"
POLL = 0.1  # the reference's asyncio.sleep(0.1) per turn of its loop


def load_reference(*, fixed: bool) -> ModuleType:
    """The chapter's classes, as published (``fixed=False``) or with the one fix, as a
    fresh module (dataclasses need theirs in ``sys.modules``)."""
    source = REFERENCE.read_text(encoding="utf-8")
    chapter = source.split("# -- workload adapters")[0]
    if not fixed:
        lines = [line for line in chapter.splitlines() if "  # FIX:" not in line]
        assert len(lines) == len(chapter.splitlines()) - 1
        chapter = "\n".join(lines)
    name = f"seed_reference_{'fixed' if fixed else 'as_published'}"
    module = ModuleType(name)
    sys.modules[name] = module
    exec(compile(chapter, str(REFERENCE), "exec"), module.__dict__)
    return module


def run(coro_fn: Any) -> tuple[Any, float]:
    """Run ``coro_fn()`` on the autojumping loop; return its value and the virtual time."""

    async def timed() -> tuple[Any, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        value = await coro_fn()
        return value, loop.time() - start

    with asyncio.Runner(loop_factory=AutojumpLoop) as runner:
        return runner.run(timed())


def chapter_test_program(ref: ModuleType) -> Any:
    """The chapter's ``test_scheduler()``, as printed, returning ``run()``'s result."""

    async def test_scheduler() -> Any:
        scheduler = ref.SmartScheduler(max_workers=3)

        async def task_a() -> str:
            await asyncio.sleep(1)
            return "A完成"

        async def task_b(a_result: str) -> str:
            await asyncio.sleep(1)
            return f"B完成（依赖: {a_result}）"

        async def task_c() -> str:
            await asyncio.sleep(0.5)
            return "C完成"

        async def task_fail() -> None:
            raise Exception("模拟失败")

        await scheduler.add_task(ref.Task(id="task-a", func=task_a, priority=1))
        await scheduler.add_task(
            ref.Task(id="task-b", func=task_b, priority=2, dependencies={"task-a"})
        )
        await scheduler.add_task(ref.Task(id="task-c", func=task_c, priority=1))
        await scheduler.add_task(ref.Task(id="task-fail", func=task_fail, max_retries=2))
        return await scheduler.run()

    return test_scheduler


def test_as_published_it_crashes_on_its_own_test() -> None:
    """``asyncio.wait`` returns a set; the loop then calls ``.append`` on it, once task-a has
    finished and task-b becomes ready: at 1.1 s (1 s of task-a, one 100 ms poll)."""
    ref = load_reference(fixed=False)
    seen: list[float] = []

    async def program() -> Any:
        try:
            return await chapter_test_program(ref)()
        finally:
            seen.append(asyncio.get_running_loop().time())

    with pytest.raises(AttributeError, match="'set' object has no attribute 'append'"):
        run(program)
    assert seen == [pytest.approx(1.1)]


def test_fixed_its_own_test_fails_task_b_which_gets_a_keyword_it_does_not_take() -> None:
    """The results go in as ``dependencies={...}``, a keyword ``task_b(a_result)`` does not
    accept: task-b fails, and is retried with linearly growing delays (1, 2, 3 s) before it
    ends FAILED at 7.1 s; ``run()`` returns one poll later, at 7.2 s."""
    results, elapsed = run(chapter_test_program(load_reference(fixed=True)))
    b = results["task-b"]
    assert b.status.value == "failed"
    assert isinstance(b.error, TypeError) and "'dependencies'" in str(b.error)
    assert b.retries == 4  # max_retries=3, and its counter goes one past
    assert results["task-fail"].status.value == "failed"
    assert elapsed == pytest.approx(7.2)


@pytest.mark.parametrize("case", ["failed", "missing", "cycle"])
def test_it_hangs_on_a_failed_missing_or_cyclic_dependency(case: str) -> None:
    """A dependent whose dependency failed, was never added, or waits on it in turn is never
    run and never given up on: after an hour of (virtual) time, ``run()`` is still polling,
    having woken 36,000 times to look."""
    ref = load_reference(fixed=True)
    polls = 0

    async def never_returns() -> None:
        nonlocal polls
        scheduler = ref.SmartScheduler()

        async def fail() -> None:
            raise ValueError("nope")

        async def work(*args: Any, **kwargs: Any) -> None:
            pass

        if case == "failed":
            await scheduler.add_task(ref.Task(id="a", func=fail, max_retries=0))
            await scheduler.add_task(ref.Task(id="b", func=work, dependencies={"a"}))
        elif case == "missing":
            await scheduler.add_task(ref.Task(id="b", func=work, dependencies={"ghost"}))
        else:
            await scheduler.add_task(ref.Task(id="a", func=work, dependencies={"b"}))
            await scheduler.add_task(ref.Task(id="b", func=work, dependencies={"a"}))
        real_sleep = asyncio.sleep

        async def counting_sleep(delay: float, *args: Any) -> Any:
            nonlocal polls
            polls += delay == POLL
            return await real_sleep(delay, *args)

        ref.asyncio = SimpleNamespace(**{**vars(asyncio), "sleep": counting_sleep})
        await scheduler.run()

    async def within_an_hour() -> None:
        await asyncio.wait_for(never_returns(), timeout=3600)

    with pytest.raises(TimeoutError):
        run(within_an_hour)
    assert polls == pytest.approx(36_000, abs=2)


def test_every_dependency_link_costs_a_poll() -> None:
    """Its loop sleeps 100 ms per turn, and a turn starts at most one link of a chain: a
    chain of 20 no-op tasks takes 2.0 s of nothing but waiting. (The benchmarks measure
    the same on the real clock: ~100,800 µs per link.)"""
    ref = load_reference(fixed=True)

    async def noop(*args: Any, **kwargs: Any) -> None:
        pass

    async def chain() -> Any:
        scheduler = ref.SmartScheduler(max_workers=1)
        await scheduler.add_task(ref.Task(id="0", func=noop))
        for i in range(1, 20):
            await scheduler.add_task(ref.Task(id=str(i), func=noop, dependencies={str(i - 1)}))
        return await scheduler.run()

    results, elapsed = run(chain)
    assert all(task.status.value == "completed" for task in results.values())
    assert elapsed == pytest.approx(2.0)


def test_a_timeout_is_never_retried() -> None:
    """``max_retries=3``, yet the first timeout ends the task TIMEOUT: the retry loop
    ``break``s on ``asyncio.TimeoutError``."""
    ref = load_reference(fixed=True)
    attempts = 0

    async def slow() -> None:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(10)

    async def one() -> Any:
        scheduler = ref.SmartScheduler()
        await scheduler.add_task(ref.Task(id="slow", func=slow, timeout=1.0, max_retries=3))
        return await scheduler.run()

    results, _ = run(one)
    assert results["slow"].status.value == "timeout" and attempts == 1


class ChapterCalculatorAgent:
    """The chapter's ``CalculatorAgent.process_task``, as printed (its base class aside)."""

    async def process_task(self, task: dict[str, Any]) -> Any:
        expression = task.get("expression")
        await asyncio.sleep(0.5)
        return {"result": eval(expression)}  # the defect under test


def test_the_chapters_calculator_runs_any_python_it_is_sent() -> None:
    """``eval`` of the task's ``expression`` runs whatever code it is sent (here, harmless:
    it reads the process id); trioflow's ``CalculatorAgent`` rejects it and runs nothing."""
    attack = {"type": "calculate", "expression": "__import__('os').getpid()"}
    result, _ = run(lambda: ChapterCalculatorAgent().process_task(attack))
    assert result == {"result": os.getpid()}

    async def ours() -> Any:
        return await CalculatorAgent("calc").process_task(attack)

    with pytest.raises(TaskRejected):
        asyncio.run(ours())
