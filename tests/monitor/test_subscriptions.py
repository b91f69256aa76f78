"""Subscriptions end when nobody can read them: a dropped subscriber does not hoard events.

What a monitor relies on from ``subscribe()`` of both engines: every event reaches a live
subscriber, and a subscriber's channel that was dropped without being closed (and so can
never be read again) stops being fed, instead of buffering every later event for the rest
of the run.
"""

from __future__ import annotations

import gc

import trio
from trio.testing import MockClock

from trioflow import Scheduler, TaskEvent, open_scheduler
from trioflow.agents import Agent, CoordinatorEvent, open_coordinator


def live(kind: type) -> int:
    gc.collect()
    return sum(isinstance(obj, kind) for obj in gc.get_objects())


async def quick() -> None:
    await trio.sleep(0.1)


async def run(sched: Scheduler, n: int) -> None:
    handles = [sched.submit(quick) for _ in range(n)]
    for handle in handles:
        await handle.wait()


async def test_a_dropped_scheduler_subscriber_is_no_longer_fed(autojump_clock: MockClock) -> None:
    async with open_scheduler(max_workers=10) as sched:
        dropped = sched.subscribe()
        del dropped
        await run(sched, 200)
        # 600 events were made (pending, running, completed); none is kept for nobody
        assert live(TaskEvent) == 0


async def test_a_clone_keeps_a_subscription_fed_until_it_is_closed(
    autojump_clock: MockClock,
) -> None:
    async with open_scheduler(max_workers=10) as sched:
        clone = sched.subscribe().clone()  # the original is dropped at once
        await run(sched, 100)
        assert clone.statistics().current_buffer_used == 300
        events = [clone.receive_nowait() for _ in range(300)]
        assert [e.status.value for e in events].count("completed") == 100
        clone.close()
        del clone, events
        await run(sched, 1)
        assert live(TaskEvent) == 0


async def test_a_dropped_coordinator_subscriber_is_no_longer_fed(
    autojump_clock: MockClock,
) -> None:
    class Echo(Agent):
        def __init__(self) -> None:
            super().__init__("echo", {"echo"})

        async def process_task(self, task: dict[str, int]) -> object:
            return task["n"]

    async with open_coordinator() as coord:
        dropped = coord.subscribe()
        await Echo().connect(coord)
        del dropped
        await coord.run_all([{"type": "echo", "n": n} for n in range(100)])
        await trio.sleep(5)  # heartbeats too
        assert live(CoordinatorEvent) == 0
        kept = coord.subscribe()
        await coord.run_all([{"type": "echo", "n": n} for n in range(10)])
        got = []
        while True:
            try:
                got.append(kept.receive_nowait())
            except trio.WouldBlock:
                break
        assert [e.kind for e in got].count("task_completed") == 10
        assert live(CoordinatorEvent) == len(got)
