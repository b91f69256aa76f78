"""An asyncio agent coordinator, written the usual way, for the round-trip comparison.

Each agent has an inbox ``asyncio.Queue``; the coordinator sends each task to the capable
agent with the fewest tasks in flight; agents put results on a shared results ``Queue``,
which a collector task resolves into a ``Future`` per task. No heartbeats or failover: this
measures only the dispatch + result path that trioflow's coordinator also takes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

NAME = "asyncio"


class Coordinator:
    def __init__(self, agents: int) -> None:
        self.inboxes = [asyncio.Queue() for _ in range(agents)]
        self.in_flight = [0] * agents
        self.results: asyncio.Queue = asyncio.Queue()
        self.futures: dict[int, asyncio.Future] = {}
        self.next_id = 0

    def submit(self, task: Any) -> asyncio.Future:
        agent = min(range(len(self.inboxes)), key=self.in_flight.__getitem__)
        self.in_flight[agent] += 1
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.futures[self.next_id] = future
        self.inboxes[agent].put_nowait((self.next_id, task))
        return future

    async def agent(self, index: int) -> None:
        inbox = self.inboxes[index]
        while True:
            task_id, _task = await inbox.get()
            result = None  # a no-op agent
            await self.results.put((index, task_id, result))

    async def collector(self) -> None:
        while True:
            index, task_id, result = await self.results.get()
            self.in_flight[index] -= 1
            self.futures.pop(task_id).set_result(result)


def round_trips(n: int, agents: int) -> float:
    elapsed: list[float] = []

    async def main() -> None:
        coord = Coordinator(agents)
        async with asyncio.TaskGroup() as tg:
            workers = [tg.create_task(coord.agent(i)) for i in range(agents)]
            collector = tg.create_task(coord.collector())
            start = time.perf_counter()
            futures = [coord.submit({"type": "noop"}) for _ in range(n)]
            await asyncio.gather(*futures)
            elapsed.append(time.perf_counter() - start)
            for worker in (*workers, collector):
                worker.cancel()

    asyncio.run(main())
    return elapsed[0]
