"""A scheduler pipeline whose heavy steps run on agents (``coord.run``), in memory: the
same code runs with ``transport=RedisTransport(url)`` and agents in other processes
(tests/redis_transport/)."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from trio.testing import MockClock

from trioflow import RetryPolicy, TaskStatus, open_scheduler
from trioflow.agents import Agent, AssignmentStatus, open_coordinator


class Renderer(Agent):
    def __init__(self, agent_id: str, seconds: float = 1.0) -> None:
        super().__init__(agent_id, {"render"})
        self.seconds = seconds
        self.started: list[int] = []

    async def process_task(self, task: Any) -> Any:
        self.started.append(task["page"])
        await trio.sleep(self.seconds)
        return f"page {task['page']} rendered by {self.id}"


async def test_heavy_steps_run_on_agents_inside_a_scheduler_pipeline(
    autojump_clock: MockClock,
) -> None:
    async with open_coordinator() as coord:
        renderers = [Renderer("r1"), Renderer("r2")]
        for renderer in renderers:
            await renderer.connect(coord)
        async with open_scheduler(max_workers=None) as sched:

            async def plan() -> list[int]:
                return [1, 2, 3, 4]

            async def publish(*pages: str) -> str:
                return " | ".join(pages)

            pages = sched.submit(plan)

            async def render_all(numbers: list[int]) -> list[str]:
                steps = [sched.submit(coord.run, {"type": "render", "page": n}) for n in numbers]
                return await sched.gather(*steps)

            async def join(parts: list[str]) -> str:
                return "; ".join(parts)

            rendered = sched.submit(render_all, pages)
            done = sched.submit(join, rendered)
        start = trio.current_time()
    assert done.status is TaskStatus.COMPLETED
    assert done.result.count("rendered by") == 4
    assert {p for r in renderers for p in r.started} == {1, 2, 3, 4}
    assert start == 2.0  # two agents, four 1-second pages


async def test_a_scheduler_timeout_cancels_the_agents_work(autojump_clock: MockClock) -> None:
    async with open_coordinator() as coord:
        slow = Renderer("slow", seconds=100)
        await slow.connect(coord)
        async with open_scheduler() as sched:
            step = sched.submit(
                coord.run,
                {"type": "render", "page": 7},
                timeout=5,
                retry=RetryPolicy(max_retries=1, delay=0),
            )
        assert step.status is TaskStatus.TIMEOUT and step.attempts == 2
        assert trio.current_time() == 10
        await trio.testing.wait_all_tasks_blocked()  # the agent hears of the last cancel
        # Each timed-out attempt cancelled the agent's assignment: the agent is free again,
        # and nothing is left running for nobody.
        stats = coord.stats()
        assert stats.cancelled == 2 and stats.in_flight == 0
        assert [info.in_flight for info in coord.agents.values()] == [0]


async def test_a_failed_agent_task_fails_the_scheduler_step(autojump_clock: MockClock) -> None:
    class Broken(Agent):
        def __init__(self) -> None:
            super().__init__("broken", {"render"})

        async def process_task(self, task: Any) -> Any:
            raise ValueError("cannot render")

    async with open_coordinator(retry=0) as coord:
        await Broken().connect(coord)
        async with open_scheduler() as sched:

            async def after_render(page: str) -> str:
                return page

            step = sched.submit(coord.run, {"type": "render", "page": 1}, id="render")
            after = sched.submit(after_render, step, id="after")
    assert step.status is TaskStatus.FAILED
    assert isinstance(step.error.__cause__, ValueError)  # the TaskFailed's cause
    assert after.status is TaskStatus.CANCELLED
    assert AssignmentStatus.FAILED.is_terminal
