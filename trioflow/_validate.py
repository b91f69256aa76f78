"""Argument checks shared by every public entry point.

One rule everywhere, so the same mistake gets the same exception in both engines: a value
of the wrong *type* is a ``TypeError``, a value of the right type but out of range is a
``ValueError``. Messages name the argument and quote the value (``"max_workers must be >=
1, got 0"``), as trio's own checks do, and tests match them exactly.

``bool`` is refused where an int or a number is expected: ``True`` as a worker count or a
delay is always a mistake, even though Python lets it pass as ``1``.
"""

from __future__ import annotations

import math

__all__ = ["check_hashable", "check_int", "check_number", "check_optional_number"]


def check_hashable(name: str, value: object) -> None:
    """Raise a ``TypeError`` that names ``name`` when ``value`` is not hashable (the bare
    "unhashable type" of a dict lookup says nothing of where it came from)."""
    try:
        hash(value)
    except TypeError:
        raise TypeError(f"{name} must be hashable, got {value!r}") from None


def check_int(name: str, value: object, *, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``.

    Raises:
        TypeError: not an int (a bool included).
        ValueError: below ``minimum``.
    """
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
        value = int(value)  # an int subclass such as an IntEnum member
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def check_number(
    name: str,
    value: object,
    *,
    positive: bool = False,
    finite: bool = True,
    at_least: float | None = None,
    at_most: float | None = None,
) -> float:
    """``value`` as a float: never NaN, finite unless ``finite=False``, ``> 0`` when
    ``positive``, else ``>= 0`` (or ``>= at_least``), and ``<= at_most`` when given.

    Infinity is refused by default because every number checked here is a time or a factor
    that someone will wait on: an infinite retry or restart delay would keep a block from
    ever exiting, which is a hang dressed up as a setting.

    Raises:
        TypeError: not an int or a float (a bool included).
        ValueError: NaN, infinite when ``finite``, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    number = float(value)
    # NaN fails every comparison, so the range checks below refuse it with their message.
    if finite and math.isinf(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive:
        if not number > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")
    else:
        floor = 0.0 if at_least is None else at_least
        if not number >= floor:
            raise ValueError(f"{name} must be >= {_show(floor)}, got {value!r}")
    if at_most is not None and number > at_most:
        raise ValueError(f"{name} must be <= {_show(at_most)}, got {value!r}")
    return number


def check_optional_number(
    name: str, value: object, *, positive: bool = False, finite: bool = True
) -> float | None:
    """``None`` as itself, anything else as :func:`check_number` checks it."""
    if value is None:
        return None
    return check_number(name, value, positive=positive, finite=finite)


def _show(limit: float) -> str:
    return str(int(limit)) if limit == int(limit) else str(limit)
