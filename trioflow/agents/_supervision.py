"""When to restart a crashed or silent agent: backoff, and a maximum restart intensity.

Pure. As in an Erlang/OTP supervisor, an agent that needs more than ``max_restarts``
restarts within ``period`` seconds is left offline: restarting it again would only hide a
persistent fault.
"""

from __future__ import annotations

from collections import deque

import attrs

from .._retry import RetryPolicy


@attrs.frozen
class RestartPolicy:
    """Opt-in restarts for agents (``open_coordinator(restart=RestartPolicy())``).

    The wait before restart *k* within the window is ``min(max_delay, delay * backoff**(k-1))``.
    """

    max_restarts: int = attrs.field(default=3)
    period: float = attrs.field(default=60.0)
    delay: float = attrs.field(default=0.5)
    backoff: float = attrs.field(default=2.0)
    max_delay: float = attrs.field(default=10.0)

    def __attrs_post_init__(self) -> None:
        if type(self.max_restarts) is not int or self.max_restarts < 0:
            raise ValueError(f"max_restarts must be an int >= 0, got {self.max_restarts!r}")
        if not self.period > 0:
            raise ValueError(f"period must be > 0, got {self.period!r}")
        self._delays  # validates delay, backoff, max_delay  # noqa: B018

    @property
    def _delays(self) -> RetryPolicy:
        return RetryPolicy(
            max_retries=self.max_restarts,
            delay=self.delay,
            backoff=self.backoff,
            max_delay=self.max_delay,
        )

    def delay_for(self, restart_number: int) -> float:
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
