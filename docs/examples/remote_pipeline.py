"""A scheduler pipeline whose heavy steps run on agents in other processes, over Redis.

The pipeline is an ordinary trioflow scheduler run: plan the work, render each part, publish
the whole. The render step is the heavy one, so it is not done here: each render task hands
its work to the coordinator (``coord.run``), which sends it to a ``Renderer`` agent in a
worker process, on this machine or another. The scheduler still owns the step: its timeout,
retries and cancellation apply, and cancelling the step cancels the agent's work.

Start Redis and two workers, then the pipeline (``docs/examples`` on ``PYTHONPATH``)::

    trioflow worker --redis redis://127.0.0.1:6379 --agent remote_pipeline:Renderer --id r1
    trioflow worker --redis redis://127.0.0.1:6379 --agent remote_pipeline:Renderer --id r2
    python docs/examples/remote_pipeline.py redis://127.0.0.1:6379
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Hashable, Mapping
from typing import Any

import trio

from trioflow import RetryPolicy, open_scheduler
from trioflow.agents import Agent, RedisTransport, open_coordinator


class Renderer(Agent):
    """``{"type": "render", "part": N, "rounds": R}``: CPU-heavy work, in a worker process."""

    def __init__(self, agent_id: Hashable) -> None:
        super().__init__(agent_id, {"render"})

    async def process_task(self, task: Mapping[str, Any]) -> dict[str, Any]:
        digest = str(task["part"]).encode()
        for _ in range(int(task["rounds"])):
            digest = hashlib.sha256(digest).digest()
        await trio.lowlevel.checkpoint()
        return {"part": task["part"], "digest": digest.hex()[:12], "by": str(self.id)}


async def pipeline(url: str, *, parts: int = 6, namespace: str = "trioflow") -> list[str]:
    """Plan ``parts`` parts, render each on a remote agent, publish them in order."""
    transport = RedisTransport(url, namespace=namespace)
    async with open_coordinator(transport=transport) as coord:
        events = coord.subscribe()
        while not coord.find_agents("render"):  # the workers register by themselves
            await events.receive()
        async with open_scheduler(max_workers=None) as sched:

            async def plan() -> list[int]:
                return list(range(parts))

            async def render_all(numbers: list[int]) -> list[dict[str, Any]]:
                steps = [
                    sched.submit(
                        coord.run,
                        {"type": "render", "part": n, "rounds": 20_000},
                        timeout=30,
                        retry=RetryPolicy(max_retries=2, delay=0.5),
                    )
                    for n in numbers
                ]
                return await sched.gather(*steps)

            async def publish(rendered: list[dict[str, Any]]) -> list[str]:
                return [f"part {r['part']}: {r['digest']} (by {r['by']})" for r in rendered]

            report = sched.submit(publish, sched.submit(render_all, sched.submit(plan)))
        lines: list[str] = await report.wait()
        return lines


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379"
    for line in trio.run(pipeline, url):
        print(line)


if __name__ == "__main__":
    main()
