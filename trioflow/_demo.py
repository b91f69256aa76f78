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
