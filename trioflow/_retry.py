"""RetryPolicy: how long to wait before each retry, and which errors deserve one.

Pure and synchronous: the policy computes delays and decisions; whoever runs the task does
the sleeping, through trio, so a mock clock drives it. (The shape follows ``stamina``.)
Both engines take it: the scheduler per task (``submit(retry=...)``), the coordinator for
all its tasks (``open_coordinator(retry=...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import attrs

from ._validate import check_int, check_number

__all__ = ["RetryOn", "RetryPolicy", "as_retry_policy"]

#: What ``retry_on`` takes: exception types, or a predicate of the error.
RetryOn: TypeAlias = (
    "type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]"
)


def _int_at_least(minimum: int) -> Callable[[Any, attrs.Attribute[int], int], None]:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        check_int(attribute.name, value, minimum=minimum)

    return check


def _number(*, at_least: float = 0.0) -> Callable[[Any, attrs.Attribute[float], float], None]:
    def check(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
        check_number(attribute.name, value, at_least=at_least)

    return check


def _check_jitter(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if check_number("jitter", value) > 1:
        raise ValueError(f"jitter must be between 0 and 1, got {value!r}")


def _to_retry_on(
    value: RetryOn,
) -> tuple[type[BaseException], ...] | Callable[[BaseException], bool]:
    if isinstance(value, type) and issubclass(value, BaseException):
        return (value,)
    if isinstance(value, tuple):
        for exc_type in value:
            if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
                raise TypeError(f"retry_on must hold exception types, got {exc_type!r}")
        return value
    if callable(value) and not isinstance(value, type):
        predicate: Callable[[BaseException], bool] = value
        return predicate
    raise TypeError(
        f"retry_on must be an exception type, a tuple of them or a predicate, got {value!r}"
    )


@attrs.frozen
class RetryPolicy:
    """Retries with exponential backoff.

    The wait before retry *k* (k = 1, 2, ...) is ``min(max_delay, delay * backoff**(k-1))``,
    multiplied by a random factor in ``[1 - jitter, 1 + jitter]``. An error that does not
    match ``retry_on`` is not retried at all: ``retry_on`` is an exception type, a tuple of
    them, or a predicate ``(error) -> bool`` (a predicate that raises counts as "no").

    Delays must be finite: an infinite wait would keep the block that owns the task from
    ever exiting.

    Raises:
        ValueError: negative ``max_retries``/``delay``/``max_delay``, an infinite or NaN
            delay, ``backoff < 1``, or ``jitter`` outside ``[0, 1]``.
        TypeError: arguments of the wrong type.
    """

    max_retries: int = attrs.field(default=3, validator=_int_at_least(0))
    delay: float = attrs.field(default=1.0, validator=_number())
    backoff: float = attrs.field(default=2.0, validator=_number(at_least=1.0))
    max_delay: float = attrs.field(default=60.0, validator=_number())
    jitter: float = attrs.field(default=0.0, validator=_check_jitter)
    retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = attrs.field(
        default=(Exception,), converter=_to_retry_on
    )

    @property
    def max_attempts(self) -> int:
        """Attempts in all: the first one and ``max_retries`` retries."""
        return self.max_retries + 1

    def matches(self, error: BaseException) -> bool:
        """Whether ``error`` is one that ``retry_on`` retries."""
        retry_on = self.retry_on
        if isinstance(retry_on, tuple):
            return isinstance(error, retry_on)
        try:
            return bool(retry_on(error))
        except Exception:
            return False

    def should_retry(self, error: BaseException, retries_done: int) -> bool:
        """Whether a task that has already been retried ``retries_done`` times and just
        failed with ``error`` gets another attempt."""
        return retries_done < self.max_retries and self.matches(error)

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
    """Normalise a ``retry`` argument: ``None``, an int number of retries, or a policy."""
    if retry is None or isinstance(retry, RetryPolicy):
        return retry
    if isinstance(retry, bool) or not isinstance(retry, int):
        raise TypeError(f"retry must be None, an int or a RetryPolicy, got {retry!r}")
    if retry < 0:
        raise ValueError(f"retry must be >= 0, got {retry!r}")
    return RetryPolicy(max_retries=retry) if retry else None
