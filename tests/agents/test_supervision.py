"""RestartPolicy and RestartBudget: backoff and intensity, pure."""

from __future__ import annotations

import math

import pytest

from trioflow.agents import RestartPolicy
from trioflow.agents._supervision import RestartBudget


def test_restarts_back_off_until_the_intensity_is_exceeded() -> None:
    budget = RestartBudget(RestartPolicy(max_restarts=3, period=10, delay=1, backoff=2))
    assert [budget.next_delay(now) for now in (0, 1, 2, 3)] == [1.0, 2.0, 4.0, None]
    assert budget.next_delay(10.5) == 4.0  # the restart at 0 left the window


def test_an_infinite_period_counts_restarts_forever() -> None:
    budget = RestartBudget(RestartPolicy(max_restarts=1, period=math.inf, delay=0))
    assert budget.next_delay(0) == 0.0
    assert budget.next_delay(1e9) is None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_restarts": -1}, ValueError, "max_restarts must be >= 0, got -1"),
        ({"max_restarts": "3"}, TypeError, "max_restarts must be an int, got '3'"),
        ({"max_restarts": True}, TypeError, "max_restarts must be an int, got True"),
        ({"period": 0}, ValueError, "period must be > 0, got 0"),
        ({"delay": -1}, ValueError, "delay must be >= 0, got -1"),
        ({"delay": math.inf}, ValueError, "delay must be finite, got inf"),
        ({"max_delay": math.inf}, ValueError, "max_delay must be finite, got inf"),
        ({"backoff": 0.5}, ValueError, "backoff must be >= 1, got 0.5"),
        ({"delay": "1"}, TypeError, "delay must be a number, got '1'"),
    ],
)
def test_bad_restart_policies(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        RestartPolicy(**kwargs)
