"""The agent the Redis benchmarks serve in ``trioflow worker`` processes: a no-op, so the
figures measure the transport (``--agent benchmarks.contenders.redis_noop:Noop``)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import trio

from trioflow.agents import Agent


class Noop(Agent):
    """``{"type": "noop", "n": N}`` -> N; ``"seconds"`` makes it sleep first (failover)."""

    def __init__(self, agent_id: Hashable) -> None:
        super().__init__(agent_id, {"noop"})

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        seconds = task.get("seconds")
        if seconds:
            await trio.sleep(seconds)
        return task["n"]
