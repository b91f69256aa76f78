"""The example agents and the safe arithmetic evaluator."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from trioflow import TaskFailed
from trioflow.agents import AgentCapability, open_coordinator
from trioflow.agents.examples import (
    CalculationError,
    CalculatorAgent,
    SearchAgent,
    SummarizeAgent,
    evaluate,
)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("10 + 20", 30),
        ("2 * (3 + 4) - 5", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("+1.5e3", 1500.0),
        ("(((1)))", 1),
        ("   3*3   ", 9),
        ("10 ** 300", 10**300),
    ],
)
def test_arithmetic(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('true')", "Call is not allowed"),
        ("open('/etc/passwd')", "Call is not allowed"),
        ("x + 1", "Name is not allowed"),
        ("(1).__class__", "Attribute is not allowed"),
        ("[1, 2][0]", "Subscript is not allowed"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("1j * 1j", "only numbers"),
        ("1 < 2", "Compare is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("1; 2", "not an arithmetic expression"),
        ("9 ** 9 ** 9", "result too large"),
        ("2 ** 100000", "result too large"),
        ("10 ** 300 * 10 ** 300 * 10 ** 300 * 10 ** 300 * 10 ** 300", "result too large"),
        ("2.0 ** 10000", "result too large"),
        ("1 / 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("1 % 0", "division by zero"),
        ("(-8) ** 0.5", "not a real number"),
        ("1 +" * 70 + "1", "longer than 200 characters"),
        ("-" * 150 + "1", "more than 100 parts"),
    ],
)
def test_anything_but_bounded_arithmetic_is_refused(expression: str, message: str) -> None:
    with pytest.raises(CalculationError, match=message):
        evaluate(expression)


def test_non_strings_are_refused() -> None:
    with pytest.raises(CalculationError, match="must be a string"):
        evaluate(42)  # type: ignore[arg-type]


async def test_the_calculator_agent_fails_the_task_and_runs_nothing(
    autojump_clock: MockClock,
) -> None:
    async with open_coordinator(max_attempts=3) as coord:
        await CalculatorAgent("calc-1").connect(coord)
        await CalculatorAgent("calc-2").connect(coord)
        handle = coord.submit(
            {"type": AgentCapability.CALCULATE, "expression": "__import__('os').getcwd()"}
        )
        with pytest.raises(TaskFailed) as info:
            await handle.wait()
    assert isinstance(info.value.__cause__, CalculationError)
    assert handle.attempts == 1  # a TaskRejected is the task's fault: not retried elsewhere


async def test_search_is_ranked_deterministic_and_offline(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    async with open_coordinator() as coord:
        await SearchAgent("s", latency=1).connect(coord)
        first, second, none = await coord.run_all(
            [
                {"type": AgentCapability.SEARCH, "query": "heartbeat failure detection"},
                {"type": AgentCapability.SEARCH, "query": "heartbeat failure detection"},
                {"type": AgentCapability.SEARCH, "query": "zebra"},
            ]
        )
    assert first == second
    assert first["results"][0]["title"] == "Heartbeats and failure detection"
    assert none["results"] == []
    assert trio.current_time() - start == 3.0


async def test_search_needs_a_query(autojump_clock: MockClock) -> None:
    async with open_coordinator(max_attempts=1) as coord:
        await SearchAgent("s").connect(coord)
        handle = coord.submit({"type": AgentCapability.SEARCH})
    assert isinstance(handle.error, ValueError)


async def test_summarize_keeps_the_most_representative_sentences(
    autojump_clock: MockClock,
) -> None:
    text = (
        "Trio runs tasks in nurseries. Nurseries wait for their tasks. "
        "The weather was nice. Tasks in nurseries are cancelled together."
    )
    async with open_coordinator() as coord:
        await SummarizeAgent("sum").connect(coord)
        result = await coord.submit(
            {"type": AgentCapability.SUMMARIZE, "text": text, "sentences": 2}
        ).wait()
    summary = result["summary"]
    assert "weather" not in summary
    assert summary.count(".") == 2
