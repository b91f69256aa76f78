"""When to restart a crashed or silent agent: backoff, and a maximum restart intensity.

Pure. As in an Erlang/OTP supervisor, an agent that needs more than ``max_restarts``
restarts within ``period`` seconds is left offline: restarting it again would only hide a
persistent fault.
"""

from __future__ import annotations

from collections import deque

import attrs

from .._retry import RetryPolicy
from .._validate import check_int, check_number

__all__ = ["RestartBudget", "RestartPolicy"]


@attrs.frozen
class RestartPolicy:
    """Opt-in restarts for agents (``open_coordinator(restart=RestartPolicy())``).

    The wait before restart *k* within the window is ``min(max_delay, delay * backoff**(k-1))``.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: ``max_restarts < 0``, ``period <= 0``, a negative or infinite delay,
            ``backoff < 1``. (An infinite ``period`` is allowed: at most ``max_restarts``
            restarts, ever.)
    """

    max_restarts: int = attrs.field(default=3)
    period: float = attrs.field(default=60.0)
    delay: float = attrs.field(default=0.5)
    backoff: float = attrs.field(default=2.0)
    max_delay: float = attrs.field(default=10.0)

    def __attrs_post_init__(self) -> None:
        check_int("max_restarts", self.max_restarts, minimum=0)
        check_number("period", self.period, positive=True, finite=False)  # inf: ever
        check_number("delay", self.delay)
        check_number("backoff", self.backoff, at_least=1)
        check_number("max_delay", self.max_delay)

    @property
    def _delays(self) -> RetryPolicy:
        return RetryPolicy(
            max_retries=self.max_restarts,
            delay=self.delay,
            backoff=self.backoff,
            max_delay=self.max_delay,
        )

    def delay_for(self, restart_number: int) -> float:
        """The wait before restart ``restart_number`` (1-based) within the window."""
        return self._delays.base_delay(restart_number)


class RestartBudget:
    """Restarts of one agent inside the sliding window."""

    __slots__ = ("_policy", "_times")

    def __init__(self, policy: RestartPolicy) -> None:
        self._policy = policy
        self._times: deque[float] = deque()

    def next_delay(self, now: float) -> float | None:
        """The wait before the next restart, or ``None`` when the intensity is exceeded.
        Calling it records a restart."""
        times = self._times
        while times and now - times[0] > self._policy.period:
            times.popleft()
        if len(times) >= self._policy.max_restarts:
            return None
        times.append(now)
        return self._policy.delay_for(len(times))
