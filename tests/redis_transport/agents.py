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


class Marker(Agent):
    """``{"type": "mark", "n": N, "path": P}``: appends N to the file P (what ran, for a
    test to read), returns N."""

    def __init__(self, agent_id: Hashable) -> None:
        super().__init__(agent_id, {"mark"})

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        with open(task["path"], "a") as marks:  # noqa: ASYNC230 - a line, in a test
            marks.write(f"{task['n']}\n")
        await trio.lowlevel.checkpoint()
        return task["n"]


class Quitter(Agent):
    """A :class:`Sleeper` that, for a task with ``"leave": True``, first calls
    ``await self.disconnect()``, from inside its own work as an agent in process may, and
    then does the task all the same."""

    def __init__(self, agent_id: Hashable) -> None:
        super().__init__(agent_id, {"sleep"})

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        if task.get("leave"):
            await self.disconnect()
        await trio.sleep(float(task.get("seconds", 0)))
        return {"by": self.id, "n": task["n"]}
