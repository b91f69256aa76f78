"""Working example agents: the seed chapter's two, and a summariser.

All deterministic and offline: ``SearchAgent`` ranks a small corpus that ships with the
package, ``CalculatorAgent`` evaluates arithmetic with an allow-listed ``ast`` walk (never
``eval``), ``SummarizeAgent`` picks a text's most representative sentences.

Each works synchronously on its input, inside the event loop, so each bounds its input:
the longest input it accepts takes a few milliseconds at most (the calculator's
:data:`MAX_LENGTH`, the search's :data:`MAX_QUERY_LENGTH`, the summary's
:data:`MAX_TEXT_LENGTH`), and nothing a task can send holds up the other agents' work or
their heartbeats. A malformed task (a missing or wrong field, an input over the bound, an
expression that is not arithmetic) raises :class:`~trioflow.TaskRejected`: the task is at
fault, so it fails at once instead of being retried on another agent and charged to this
one.
"""

from __future__ import annotations

import reprlib
from collections.abc import Hashable, Mapping
from typing import Any, TypeVar

import trio

from ..._errors import TaskRejected
from ..._public import publish
from ..._validate import check_number
from .._agent import Agent
from .._messages import AgentCapability
from ._arithmetic import (
    MAX_LENGTH as MAX_LENGTH,
    CalculationError as CalculationError,
    evaluate as evaluate,
)
from ._text import corpus, search, summarize

T = TypeVar("T")

__all__ = [
    "MAX_LENGTH",
    "MAX_QUERY_LENGTH",
    "MAX_TEXT_LENGTH",
    "CalculationError",
    "CalculatorAgent",
    "SearchAgent",
    "SummarizeAgent",
    "evaluate",
]

#: The longest query ``SearchAgent`` takes (characters): well under a millisecond to rank.
MAX_QUERY_LENGTH = 1_000
#: The longest text ``SummarizeAgent`` takes (characters): about 3 ms to summarise here.
MAX_TEXT_LENGTH = 20_000

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


def _field(task: Mapping[str, Any], name: str, kind: type[T]) -> T:
    value = task.get(name)
    if not isinstance(value, kind):
        raise TaskRejected(f"task needs a {kind.__name__} {name!r}, got {_shown(value)}")
    return value


def _shown(value: object) -> str:
    """A short ``repr`` of what a task sent, in bounded time: ``reprlib`` shows a few items
    of a container however long it is, where a full ``repr`` of a list of millions would
    hold up the event loop; an int too large to print (``ValueError``) is named by size."""
    try:
        return _REPR.repr(value)
    except ValueError:
        if isinstance(value, int):
            return f"an int of {value.bit_length()} bits"
        return f"a {type(value).__name__}"


def _text(task: Mapping[str, Any], name: str, limit: int) -> str:
    value = _field(task, name, str)
    if len(value) > limit:
        raise TaskRejected(f"{name!r} is longer than {limit} characters ({len(value)})")
    return value


class SearchAgent(Agent):
    """Searches the bundled corpus: ``{"type": SEARCH, "query": "..."}`` →
    ``{"query", "results": [{"title", "score"}, ...]}``. ``latency`` simulates a slow
    backend (seconds per search, a number >= 0: checked here). A query that is not a
    string, or is longer than :data:`MAX_QUERY_LENGTH`, is rejected
    (:class:`~trioflow.TaskRejected`)."""

    def __init__(self, agent_id: Hashable, *, latency: float = 0.0, concurrency: int = 1) -> None:
        super().__init__(agent_id, {AgentCapability.SEARCH}, concurrency=concurrency)
        self.latency = check_number("latency", latency)

    async def process_task(self, task: Mapping[str, Any]) -> dict[str, Any]:
        """The corpus entries that match ``task["query"]``, best first."""
        query = _text(task, "query", MAX_QUERY_LENGTH)
        if self.latency:
            await trio.sleep(self.latency)
        return {"query": query, "results": search(query, corpus())}


class CalculatorAgent(Agent):
    """Evaluates arithmetic safely: ``{"type": CALCULATE, "expression": "10 + 20"}`` →
    ``{"expression", "result"}``. Anything but arithmetic fails the task with a
    :class:`CalculationError` (a :class:`~trioflow.TaskRejected`) and runs nothing."""

    def __init__(self, agent_id: Hashable, *, latency: float = 0.0, concurrency: int = 1) -> None:
        super().__init__(agent_id, {AgentCapability.CALCULATE}, concurrency=concurrency)
        self.latency = check_number("latency", latency)

    async def process_task(self, task: Mapping[str, Any]) -> dict[str, Any]:
        """The value of ``task["expression"]``, computed without ``eval``."""
        expression = _field(task, "expression", str)
        result = evaluate(expression)
        if self.latency:
            await trio.sleep(self.latency)
        return {"expression": expression, "result": result}


class SummarizeAgent(Agent):
    """Extractive summary: ``{"type": SUMMARIZE, "text": "...", "sentences": 2}`` →
    ``{"summary"}``. A text that is not a string or is longer than :data:`MAX_TEXT_LENGTH`,
    or a ``sentences`` that is not an int >= 1, is rejected (:class:`~trioflow.TaskRejected`)."""

    def __init__(self, agent_id: Hashable, *, concurrency: int = 1) -> None:
        super().__init__(agent_id, {AgentCapability.SUMMARIZE}, concurrency=concurrency)

    async def process_task(self, task: Mapping[str, Any]) -> dict[str, Any]:
        """The ``task["sentences"]`` (default 2) most representative sentences of
        ``task["text"]``."""
        text = _text(task, "text", MAX_TEXT_LENGTH)
        sentences = task.get("sentences", 2)
        if type(sentences) is not int or sentences < 1:
            raise TaskRejected(f"'sentences' must be an int >= 1, got {sentences!r}")
        await trio.lowlevel.checkpoint()
        return {"summary": summarize(text, sentences)}


publish(globals(), "trioflow.agents.examples")
