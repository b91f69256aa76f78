"""The seed chapter's scenarios, run on trioflow and narrated (``python -m trioflow demo``)."""

from __future__ import annotations

from collections.abc import Callable

import trio

from ._records import TaskEvent
from ._retry import RetryPolicy
from ._scheduler import open_scheduler


async def _print_events(
    events: trio.MemoryReceiveChannel[TaskEvent], start: float, write: Callable[[str], None]
) -> None:
    async with events:
        async for event in events:
            error = f"  ({event.error!r})" if event.error is not None else ""
            write(
                f"  t={event.at - start:5.2f}s  {event.task_id!s:<10} "
                f"{event.status.value:<9} attempt {event.attempt}{error}"
            )


async def scheduler_demo(write: Callable[[str], None] = print) -> None:
    """The chapter's challenge 1: four tasks, a data dependency, priorities, a failing task
    retried with exponential backoff, and a task that times out once."""

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

    write("== trioflow scheduler demo: the seed chapter's challenge 1 ==")
    start = trio.current_time()
    async with trio.open_nursery() as watchers, open_scheduler(max_workers=3) as sched:
        watchers.start_soon(_print_events, sched.subscribe(), start, write)
        a = sched.submit(task_a, id="task-a", priority=1)
        b = sched.submit(task_b, a, id="task-b", priority=2)
        c = sched.submit(task_c, id="task-c", priority=1)
        d = sched.submit(task_slow_once, id="task-d", timeout=1.0, retry=1)
        f = sched.submit(
            task_fail, id="task-fail", retry=RetryPolicy(max_retries=2, delay=0.5, backoff=2.0)
        )
    write("\n== results ==")
    for handle in (a, b, c, d, f):
        outcome = handle.result if handle.error is None or handle.result else repr(handle.error)
        write(f"  {handle.id:<10} {handle.status.value:<9} attempts={handle.attempts}  {outcome}")
    stats = sched.stats()
    write("\n== statistics ==")
    write(f"  {stats.to_dict()}")
    write(f"  wall time {trio.current_time() - start:.2f}s for {stats.total} tasks")


async def agents_demo(write: Callable[[str], None] = print) -> None:
    """The chapter's challenge 2: search and calculator agents under a coordinator, with one
    search agent whose heartbeat hangs mid-task, so its work is reassigned."""
    from .agents import AgentCapability, CoordinatorEvent, open_coordinator
    from .agents.examples import CalculatorAgent, SearchAgent

    class HangingSearchAgent(SearchAgent):
        """Stops answering heartbeats 0.6 s after it starts."""

        async def heartbeat(self) -> None:
            if trio.current_time() - start >= 0.6:
                await trio.sleep_forever()
            await super().heartbeat()

    async def narrate(events: trio.MemoryReceiveChannel[CoordinatorEvent]) -> None:
        async with events:
            async for event in events:
                if event.kind == "stale_result":
                    continue
                who = f" {event.agent_id}" if event.agent_id is not None else ""
                task = f" task {event.task_id}" if event.task_id is not None else ""
                attempt = f" attempt {event.attempt}" if event.attempt else ""
                why = f"  ({event.error})" if event.error is not None else ""
                write(f"  t={event.at - start:5.2f}s  {event.kind:<15}{who}{task}{attempt}{why}")

    write("== trioflow agents demo: the seed chapter's challenge 2 ==")
    start = trio.current_time()
    tasks = [
        {"type": AgentCapability.SEARCH, "query": "Python async"},
        {"type": AgentCapability.CALCULATE, "expression": "10 + 20"},
        {"type": AgentCapability.SEARCH, "query": "LangChain"},
        {"type": AgentCapability.CALCULATE, "expression": "2 ** 16 // 3"},
        {"type": AgentCapability.SEARCH, "query": "heartbeat failure detection"},
        {"type": AgentCapability.CALCULATE, "expression": "__import__('os').system('ls')"},
    ]
    async with (
        trio.open_nursery() as watchers,
        open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5) as coord,
    ):
        watchers.start_soon(narrate, coord.subscribe())
        for agent in (
            SearchAgent("search-1", latency=1.0),
            HangingSearchAgent("search-2", latency=3.0),
            CalculatorAgent("calc-1", latency=0.5),
        ):
            await agent.connect(coord)
        results = await coord.run_all(tasks, return_exceptions=True)
    write("\n== results ==")
    for task, result in zip(tasks, results, strict=True):
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
        f"reassigned={stats.reassigned} heartbeats_missed={stats.heartbeats_missed}"
    )
    write(f"  wall time {trio.current_time() - start:.2f}s")
