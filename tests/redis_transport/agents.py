"""Agent classes that the tests run in ``trioflow worker`` processes (``--agent
redis_transport.agents:Sleeper``, with ``tests/`` on ``PYTHONPATH``)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import trio

from trioflow.agents import Agent


class Sleeper(Agent):
    """``{"type": "sleep", "n": N, "seconds": S}``: sleeps S seconds, returns who did N."""

    def __init__(self, agent_id: Hashable) -> None:
        super().__init__(agent_id, {"sleep"})

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        await trio.sleep(float(task.get("seconds", 0)))
        return {"by": self.id, "n": task["n"]}
