"""The seed chapter's scenarios, run on trioflow under the live monitor (``trioflow demo``).

Without options each demo runs the chapter's own scenario; ``--tasks`` scales it up and the
fault options inject failures, so a user can watch retries, timeouts and reassignment.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from . import RetryPolicy, Scheduler, TaskHandle, open_scheduler
from .monitor import open_monitor

if TYPE_CHECKING:
    from .agents import Agent

Write = Callable[[str], None]


@attrs.frozen
class MonitorOptions:
    """How the demos' monitor shows the run (``--plain``, ``--slow-after``)."""

    plain: bool | None = None  # None: the live view on a terminal, plain lines elsewhere
    slow_after: float = 30.0


async def scheduler_demo(
    write: Write = print,
    *,
    tasks: int | None = None,
    workers: int = 3,
    fail_rate: float = 0.0,
    seed: int = 0,
    monitor: MonitorOptions | None = None,
) -> None:
    """The chapter's challenge 1 (or ``tasks`` synthetic ones) under the live monitor."""
    write("== trioflow scheduler demo: the seed chapter's challenge 1 ==")
    start = trio.current_time()
    options = monitor or MonitorOptions()
    # The monitor is the outer block, so it sees the scheduler's last events.
    async with (
        open_monitor(title="scheduler", plain=options.plain, slow_after=options.slow_after) as mon,
        open_scheduler(max_workers=workers) as sched,
    ):
        mon.attach(sched)
        handles = (
            _seed_tasks(sched)
            if tasks is None
            else _synthetic_tasks(sched, tasks, fail_rate, random.Random(seed))
        )
    write("\n== results ==")
    if len(handles) <= 12:
        shown = handles
    else:
        # Many tasks: the ones that did not complete (at most 12), else say they all did.
        unfinished = [h for h in handles if h.status.value != "completed"]
        shown = unfinished[:12]
        if not unfinished:
            write(f"  all {len(handles)} tasks completed")
        else:
            write(f"  {len(shown)} of the {len(unfinished)} tasks that did not complete:")
    for handle in shown:
        outcome = handle.result if handle.status.value == "completed" else repr(handle.error)
        write(f"  {handle.id!s:<10} {handle.status.value:<9} attempts={handle.attempts}  {outcome}")
    stats = sched.stats()
    write("\n== statistics ==")
    write(f"  {stats.to_dict()}")
    write(f"  wall time {trio.current_time() - start:.2f}s for {stats.total} tasks")


def _seed_tasks(sched: Scheduler) -> list[TaskHandle[Any]]:
    async def task_a() -> str:
        await trio.sleep(1)
        return "A done"

    async def task_b(a_result: str) -> str:
        await trio.sleep(1)
        return f"B done (got: {a_result})"

    async def task_c() -> str:
        await trio.sleep(0.5)
        return "C done"

    async def task_fail() -> str:
        raise RuntimeError("simulated failure")

    calls = 0

    async def task_slow_once() -> str:
        nonlocal calls
        calls += 1
        await trio.sleep(2.0 if calls == 1 else 0.2)
        return f"D done on attempt {calls}"

    a = sched.submit(task_a, id="task-a", priority=1)
    return [
        a,
        sched.submit(task_b, a, id="task-b", priority=2),
        sched.submit(task_c, id="task-c", priority=1),
        sched.submit(task_slow_once, id="task-d", timeout=1.0, retry=1),
        sched.submit(
            task_fail, id="task-fail", retry=RetryPolicy(max_retries=2, delay=0.5, backoff=2.0)
        ),
    ]


def _synthetic_tasks(
    sched: Scheduler, n: int, fail_rate: float, rng: random.Random
) -> list[TaskHandle[Any]]:
    """``n`` sleeping tasks with priorities and some dependencies; ``fail_rate`` of them
    fail their first attempt, and half as many time out on it."""

    def make(index: int, duration: float, fault: str | None) -> Callable[..., Any]:
        calls = 0

        async def work(*upstream: object) -> int:
            nonlocal calls
            calls += 1
            if calls == 1 and fault == "timeout":
                await trio.sleep(duration * 100)
            await trio.sleep(duration)
            if calls == 1 and fault == "fail":
                raise RuntimeError(f"task {index} failed on its first attempt")
            return index

        return work

    handles: list[TaskHandle[Any]] = []
    for index in range(n):
        roll = rng.random()
        fault = "fail" if roll < fail_rate else "timeout" if roll < fail_rate * 1.5 else None
        duration = rng.uniform(0.05, 0.5)
        deps = rng.sample(handles, min(len(handles), rng.choice([0, 0, 1, 2])))
        handles.append(
            sched.submit(
                make(index, duration, fault),
                *deps,
                id=f"t{index}",
                priority=rng.randint(1, 3),
                timeout=round(max(1.0, duration * 3), 1),
                retry=RetryPolicy(max_retries=2, delay=0.2),
            )
        )
    return handles


async def agents_demo(
    write: Write = print,
    *,
    tasks: int | None = None,
    agents: int = 4,
    hang_agent: bool = True,
    crash_agent: bool = False,
    seed: int = 0,
    monitor: MonitorOptions | None = None,
) -> None:
    """The chapter's challenge 2: search and calculator agents under a coordinator. By
    default one search agent's heartbeat hangs mid-task, so its work is reassigned."""
    from .agents import AgentCapability, RestartPolicy, open_coordinator
    from .agents.examples import CalculatorAgent, SearchAgent

    start = trio.current_time()

    class HangingSearchAgent(SearchAgent):
        """Stops answering heartbeats 0.6 s into the run (once: a restart brings it back)."""

        hung = False

        async def heartbeat(self) -> None:
            if not self.hung and trio.current_time() - start >= 0.6:
                self.hung = True
                await trio.sleep_forever()
            await super().heartbeat()

    class CrashingCalculatorAgent(CalculatorAgent):
        """Its own loop crashes 1.5 s into the run (once)."""

        crashed = False

        async def heartbeat(self) -> None:
            if not self.crashed and trio.current_time() - start >= 1.5:
                self.crashed = True
                raise OSError("simulated agent crash")
            await super().heartbeat()

    rng = random.Random(seed)
    work: list[dict[str, Any]]
    if tasks is None:
        work = [
            {"type": AgentCapability.SEARCH, "query": "Python async"},
            {"type": AgentCapability.CALCULATE, "expression": "10 + 20"},
            {"type": AgentCapability.SEARCH, "query": "LangChain"},
            {"type": AgentCapability.CALCULATE, "expression": "2 ** 16 // 3"},
            {"type": AgentCapability.SEARCH, "query": "heartbeat failure detection"},
            {"type": AgentCapability.CALCULATE, "expression": "__import__('os').system('ls')"},
        ]
        searchers, calculators = 2, 1
        restart = None
    else:
        queries = ["trio nursery", "retry backoff", "priority queue", "heartbeat", "LangChain"]
        work = [
            {"type": AgentCapability.SEARCH, "query": rng.choice(queries)}
            if rng.random() < 0.5
            else {
                "type": AgentCapability.CALCULATE,
                "expression": f"{rng.randint(1, 999)} * {rng.randint(1, 999)}",
            }
            for _ in range(tasks)
        ]
        searchers = max(1, agents // 2)
        calculators = max(1, agents - searchers)
        restart = RestartPolicy(max_restarts=2, delay=1.0)

    roster: list[Agent] = []
    for i in range(searchers):
        searcher = HangingSearchAgent if hang_agent and i == searchers - 1 else SearchAgent
        latency = 3.0 if searcher is not SearchAgent else 1.0
        roster.append(searcher(f"search-{i + 1}", latency=latency))
    for i in range(calculators):
        calculator = CrashingCalculatorAgent if crash_agent and i == 0 else CalculatorAgent
        roster.append(calculator(f"calc-{i + 1}", latency=0.5))

    write("== trioflow agents demo: the seed chapter's challenge 2 ==")
    options = monitor or MonitorOptions()
    async with (
        open_monitor(title="agents", plain=options.plain, slow_after=options.slow_after) as mon,
        open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5, restart=restart) as coord,
    ):
        mon.attach(coord)
        for agent in roster:
            await agent.connect(coord)
        results = await coord.run_all(work, return_exceptions=True)
    write("\n== results ==" + (f" (the first 12 of {len(work)})" if len(work) > 12 else ""))
    for task, result in list(zip(work, results, strict=True))[:12]:
        request = task.get("query") or task.get("expression")
        if isinstance(result, Exception):
            shown = f"failed: {result.__cause__}"
        elif "results" in result:
            shown = ", ".join(hit["title"] for hit in result["results"]) or "(no match)"
        else:
            shown = f"= {result['result']}"
        write(f"  {task['type'].value:<9} {request!s:<34} {shown}")
    write("\n== agents ==")
    for info in coord.agents.values():
        write(f"  {info.id:<9} {info.status:<8} completed={info.tasks_completed}")
    stats = coord.stats()
    write(
        f"\n  submitted={stats.submitted} completed={stats.completed} failed={stats.failed} "
        f"reassigned={stats.reassigned} heartbeats_missed={stats.heartbeats_missed} "
        f"restarts={stats.restarts}"
    )
    write(f"  wall time {trio.current_time() - start:.2f}s")
