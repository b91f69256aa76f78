"""trioflow.agents: dispatch + result round trips, and failover time.

``round_trips`` times ``coord.run_all`` of no-op tasks over no-op agents, as a user of the
coordinator would call it. With ``subscriber=True`` one event subscriber is attached
(``coord.subscribe()``, drained by a task of its own, as a monitor does) and the time runs
until ``run_all`` has returned *and* the subscriber has received every task's
``task_completed`` event (or its channel closed), so events still buffered when ``run_all``
returns are paid for too.

The subscriber reads as ``trioflow.monitor`` does: it waits for one event, then takes every
event already in its channel with ``receive_nowait`` (``drain="burst"``). With
``drain="each"`` it reads with ``async for`` alone, one ``receive()`` per event: each is a
trio checkpoint, a scheduler round trip (~3.5 µs here), three events per task.
"""

from __future__ import annotations

import time
from typing import Any

import trio

from trioflow import EventChannel
from trioflow.agents import Agent, open_coordinator

NAME = "trioflow"


class NoOpAgent(Agent):
    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id, {"noop"})

    async def process_task(self, task: Any) -> Any:
        return None


def round_trips(n: int, agents: int, subscriber: bool = False, drain: str = "burst") -> float:
    """Seconds to dispatch ``n`` no-op tasks over ``agents`` agents and collect results."""
    elapsed: list[float] = []
    caught_up: list[float] = []

    async def read(events: EventChannel[Any]) -> None:
        completed = 0
        async with events:
            async for event in events:
                while True:
                    if getattr(event, "kind", None) == "task_completed":
                        completed += 1
                    if drain != "burst":
                        break
                    try:
                        event = events.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                if completed >= n:
                    break
        caught_up.append(time.perf_counter())

    async def main() -> None:
        async with trio.open_nursery() as nursery, open_coordinator() as coord:
            if subscriber:
                nursery.start_soon(read, coord.subscribe())
            for i in range(agents):
                await NoOpAgent(f"a{i}").connect(coord)
            tasks = [{"type": "noop"}] * n
            start = time.perf_counter()
            await coord.run_all(tasks)
            done = time.perf_counter()
        # Leaving the block waited for the subscriber: it ends at its n-th completion, or when
        # the closing coordinator closes its channel. One still catching up extends the time.
        elapsed.append(max([done, *caught_up]) - start)

    trio.run(main)
    return elapsed[0]


def failover(interval: float, timeout: float) -> tuple[float, float]:
    """Real seconds from the moment an agent hangs (mid-task) until its task has completed
    on another agent, and the bound ``timeout + interval`` it should beat."""

    class Hanging(Agent):
        def __init__(self) -> None:
            super().__init__("hanging", {"work"})
            self.hung_at: float | None = None

        async def heartbeat(self) -> None:
            if self.hung_at is not None:
                await trio.sleep_forever()

        async def process_task(self, task: Any) -> Any:
            self.hung_at = time.perf_counter()
            await trio.sleep_forever()

    class Spare(Agent):
        def __init__(self) -> None:
            super().__init__("spare", {"work"})

        async def process_task(self, task: Any) -> Any:
            return "done"

    measured: list[float] = []

    async def main() -> None:
        hanging = Hanging()
        async with open_coordinator(heartbeat_interval=interval, heartbeat_timeout=timeout) as c:
            await hanging.connect(c)
            handle = c.submit({"type": "work"})
            await Spare().connect(c)
            await handle.wait()
            assert hanging.hung_at is not None
            measured.append(time.perf_counter() - hanging.hung_at)

    trio.run(main)
    return measured[0], timeout + interval
