"""RetryPolicy: how long to wait before each retry, and which errors deserve one.

Pure and synchronous: the policy computes delays and decisions; whoever runs the task does
the sleeping, through trio, so a mock clock drives it. (The shape follows ``stamina``.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs


def _non_negative_number(name: str) -> Callable[[object, attrs.Attribute[float], float], None]:
    def check(_instance: object, _attribute: attrs.Attribute[float], value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {value!r}")
        if math.isnan(value) or value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")

    return check


def _check_max_retries(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_retries must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"max_retries must be >= 0, got {value!r}")


def _check_backoff(_instance: object, _attribute: attrs.Attribute[float], value: float) -> None:
    _non_negative_number("backoff")(_instance, _attribute, value)
    if value < 1:
        raise ValueError(f"backoff must be >= 1, got {value!r}")


def _check_jitter(_instance: object, _attribute: attrs.Attribute[float], value: float) -> None:
    _non_negative_number("jitter")(_instance, _attribute, value)
    if value > 1:
        raise ValueError(f"jitter must be between 0 and 1, got {value!r}")


def _to_exception_tuple(value: object) -> tuple[type[BaseException], ...]:
    types = value if isinstance(value, tuple) else (value,)
    for exc_type in types:
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            raise TypeError(f"retry_on must hold exception types, got {exc_type!r}")
    return types


@attrs.frozen
class RetryPolicy:
    """Retries with exponential backoff.

    The wait before retry *k* (k = 1, 2, ...) is ``min(max_delay, delay * backoff**(k-1))``,
    multiplied by a random factor in ``[1 - jitter, 1 + jitter]``. An error that is not an
    instance of ``retry_on`` is not retried at all.

    Raises:
        ValueError: negative ``max_retries``/``delay``/``max_delay``, ``backoff < 1``, or
            ``jitter`` outside ``[0, 1]``.
        TypeError: arguments of the wrong type.
    """

    max_retries: int = attrs.field(default=3, validator=_check_max_retries)
    delay: float = attrs.field(default=1.0, validator=_non_negative_number("delay"))
    backoff: float = attrs.field(default=2.0, validator=_check_backoff)
    max_delay: float = attrs.field(default=60.0, validator=_non_negative_number("max_delay"))
    jitter: float = attrs.field(default=0.0, validator=_check_jitter)
    retry_on: tuple[type[BaseException], ...] = attrs.field(
        default=(Exception,), converter=_to_exception_tuple
    )

    def should_retry(self, error: BaseException, retries_done: int) -> bool:
        """Whether a task that has already been retried ``retries_done`` times and just
        failed with ``error`` gets another attempt."""
        return retries_done < self.max_retries and isinstance(error, self.retry_on)

    def base_delay(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (1-based), before jitter."""
        if retry_number < 1:
            raise ValueError(f"retry_number must be >= 1, got {retry_number!r}")
        if self.delay == 0:
            return 0.0
        try:
            raw = self.delay * self.backoff ** (retry_number - 1)
        except OverflowError:
            return self.max_delay
        return min(self.max_delay, raw)

    def delay_for(self, retry_number: int, random: Callable[[], float] | None = None) -> float:
        """The wait before retry ``retry_number``, jitter applied with ``random()`` (a float
        in ``[0, 1)``; required only when ``jitter`` is non-zero)."""
        base = self.base_delay(retry_number)
        if not self.jitter or not base:
            return base
        if random is None:
            raise ValueError("a random source is needed when jitter is non-zero")
        return base * (1 - self.jitter + 2 * self.jitter * random())


def as_retry_policy(retry: RetryPolicy | int | None) -> RetryPolicy | None:
    """Normalise ``submit``'s ``retry`` argument: ``None``, an int count, or a policy."""
    if retry is None or isinstance(retry, RetryPolicy):
        return retry
    if isinstance(retry, bool) or not isinstance(retry, int):
        raise TypeError(f"retry must be None, an int or a RetryPolicy, got {retry!r}")
    if retry < 0:
        raise ValueError(f"retry must be >= 0, got {retry!r}")
    return RetryPolicy(max_retries=retry) if retry else None
