"""The example agents and the safe arithmetic evaluator."""

from __future__ import annotations

import re
import time

import pytest
import trio
from trio.testing import MockClock

from trioflow import TaskFailed, TaskRejected
from trioflow.agents import AgentCapability, AssignmentStatus, open_coordinator
from trioflow.agents.examples import (
    MAX_LENGTH,
    MAX_QUERY_LENGTH,
    MAX_TEXT_LENGTH,
    CalculationError,
    CalculatorAgent,
    SearchAgent,
    SummarizeAgent,
    evaluate,
)
from trioflow.agents.examples._text import corpus, search, summarize


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
        ("3 ** 2500", 3**2500),  # 3963 bits: under the bound, though 2 bits x 2500 is not
        ("2 ** 4095", 2**4095),  # 4096 bits: the largest power of two allowed
        ("1 ** 10 ** 150", 1),
        ("1.5e308", 1.5e308),
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
        ("1e999", "number too large"),  # a float literal that reads as inf
        ("-1e999 + 1", "number too large"),
        ("(10 ** 1000) ** 2", "result too large"),  # 6644 bits, from a 3322-bit base
        ("2 ** 4096", "result too large"),
        ("2 ** (2 ** 1100)", "result too large"),  # an exponent too large for a float
        ("3 ** 9 ** 400", "result too large"),
        ("(2 ** 4095) * 2", "result too large"),
        ("(2 ** 2000) ** 3 // 2 ** 5000", "result too large"),  # too large on the way
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


SEARCH = AgentCapability.SEARCH
SUMMARIZE = AgentCapability.SUMMARIZE
CALCULATE = AgentCapability.CALCULATE


@pytest.mark.parametrize(
    ("agent", "task", "message"),
    [
        (SearchAgent, {"type": SEARCH}, "task needs a str 'query', got None"),
        (SearchAgent, {"type": SEARCH, "query": 42}, "task needs a str 'query', got 42"),
        (SearchAgent, {"type": SEARCH, "query": "x" * 1001}, "'query' is longer than 1000"),
        (SummarizeAgent, {"type": SUMMARIZE}, "task needs a str 'text', got None"),
        (SummarizeAgent, {"type": SUMMARIZE, "text": "a. " * 7000}, "longer than 20000"),
        (SummarizeAgent, {"type": SUMMARIZE, "text": "a.", "sentences": 0}, "'sentences'"),
        (SummarizeAgent, {"type": SUMMARIZE, "text": "a.", "sentences": "2"}, "'sentences'"),
        (CalculatorAgent, {"type": CALCULATE}, "task needs a str 'expression', got None"),
        (CalculatorAgent, {"type": CALCULATE, "expression": ["1"]}, "got ['1']"),
        # An int too large to print (repr raises ValueError) still gets a TaskRejected.
        (SearchAgent, {"type": SEARCH, "query": 10**5000}, "got an int of 16610 bits"),
        # A long container is shown by its first items, not printed whole.
        (SearchAgent, {"type": SEARCH, "query": list(range(10**6))}, "got [0, 1, 2, 3, 4, 5, ...]"),
        (CalculatorAgent, {"type": CALCULATE, "expression": b"1 + 1"}, "got b'1 + 1'"),
    ],
)
async def test_malformed_tasks_are_rejected_not_retried(
    autojump_clock: MockClock, agent: type, task: dict, message: str
) -> None:
    """The task is at fault, not the agent: it fails at its first attempt (TaskRejected),
    although another agent could have retried it, and no agent is charged with a crash."""
    async with open_coordinator(max_attempts=3) as coord:
        await agent("one").connect(coord)
        await agent("two").connect(coord)
        handle = coord.submit(task)
        with pytest.raises(TaskFailed):
            await handle.wait()
    assert handle.attempts == 1 and handle.status is AssignmentStatus.FAILED
    assert isinstance(handle.error, TaskRejected)
    assert message in str(handle.error)
    assert coord.stats().retries == 0


def test_the_largest_accepted_inputs_are_quick() -> None:
    """What an example agent computes inside the event loop is bounded: its largest input
    takes milliseconds (about 3 ms for the longest text here), far from a heartbeat."""
    words = ["trio", "nurseries", "cancel", "scopes", "and", "heartbeats.", "Agents", "work."]
    text = " ".join(words[n % len(words)] for n in range(MAX_TEXT_LENGTH))[:MAX_TEXT_LENGTH]
    query = " ".join(words[n % len(words)] for n in range(MAX_QUERY_LENGTH))[:MAX_QUERY_LENGTH]
    expression = "+".join(["9" * 98, "9" * 99])[:MAX_LENGTH]
    for work in (
        lambda: summarize(text, 3),
        lambda: search(query, corpus()),
        lambda: evaluate(expression),
        lambda: evaluate("*".join(["99999"] * 33)),  # 197 characters, 66 nodes
    ):
        work()  # warm up (the corpus is read once)
        started = time.process_time()
        work()
        assert time.process_time() - started < 0.1


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


@pytest.mark.parametrize("agent", [SearchAgent, CalculatorAgent])
@pytest.mark.parametrize(
    ("latency", "error", "message"),
    [
        (-1, ValueError, "latency must be >= 0, got -1"),
        ("0.5", TypeError, "latency must be a number, got '0.5'"),
        (float("nan"), ValueError, "latency must be >= 0, got nan"),
    ],
)
def test_a_bad_latency_is_refused_when_the_agent_is_made(
    agent: type, latency: object, error: type[Exception], message: str
) -> None:
    """It used to be taken, and then every task the agent took failed in trio.sleep (and
    was retried on other agents, charged to this one as a crash)."""
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        agent("a", latency=latency)
