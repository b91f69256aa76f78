"""Working example agents: the seed chapter's two, and a summariser.

All deterministic and offline: ``SearchAgent`` ranks a small corpus that ships with the
package, ``CalculatorAgent`` evaluates arithmetic with an allow-listed ``ast`` walk (never
``eval``), ``SummarizeAgent`` picks a text's most representative sentences.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, TypeVar

import trio

from .._agent import Agent
from .._messages import AgentCapability
from ._arithmetic import CalculationError as CalculationError, evaluate as evaluate
from ._text import corpus, search, summarize

T = TypeVar("T")

__all__ = ["CalculationError", "CalculatorAgent", "SearchAgent", "SummarizeAgent", "evaluate"]


def _field(task: Mapping[str, Any], name: str, kind: type[T]) -> T:
    value = task.get(name)
    if not isinstance(value, kind):
        raise ValueError(f"task needs a {kind.__name__} {name!r}, got {value!r}")
    return value


class SearchAgent(Agent):
    """Searches the bundled corpus: ``{"type": SEARCH, "query": "..."}`` →
    ``{"query", "results": [{"title", "score"}, ...]}``. ``latency`` simulates a slow
    backend (seconds per search)."""

    def __init__(self, agent_id: Hashable, *, latency: float = 0.0, concurrency: int = 1) -> None:
        super().__init__(agent_id, {AgentCapability.SEARCH}, concurrency=concurrency)
        self.latency = latency

    async def process_task(self, task: Mapping[str, Any]) -> dict[str, Any]:
        query = _field(task, "query", str)
        if self.latency:
            await trio.sleep(self.latency)
        return {"query": query, "results": search(query, corpus())}


class CalculatorAgent(Agent):
    """Evaluates arithmetic safely: ``{"type": CALCULATE, "expression": "10 + 20"}`` →
    ``{"expression", "result"}``. Anything but arithmetic fails the task with a
    :class:`CalculationError` and runs nothing."""

    def __init__(self, agent_id: Hashable, *, latency: float = 0.0, concurrency: int = 1) -> None:
        super().__init__(agent_id, {AgentCapability.CALCULATE}, concurrency=concurrency)
        self.latency = latency

    async def process_task(self, task: Mapping[str, Any]) -> dict[str, Any]:
        expression = _field(task, "expression", str)
        result = evaluate(expression)
        if self.latency:
            await trio.sleep(self.latency)
        return {"expression": expression, "result": result}


class SummarizeAgent(Agent):
    """Extractive summary: ``{"type": SUMMARIZE, "text": "...", "sentences": 2}`` →
    ``{"summary"}``."""

    def __init__(self, agent_id: Hashable, *, concurrency: int = 1) -> None:
        super().__init__(agent_id, {AgentCapability.SUMMARIZE}, concurrency=concurrency)

    async def process_task(self, task: Mapping[str, Any]) -> dict[str, Any]:
        text = _field(task, "text", str)
        sentences = task.get("sentences", 2)
        if type(sentences) is not int or sentences < 1:
            raise ValueError(f"'sentences' must be an int >= 1, got {sentences!r}")
        await trio.lowlevel.checkpoint()
        return {"summary": summarize(text, sentences)}
