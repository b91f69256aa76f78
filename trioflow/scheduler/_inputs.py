"""What a task receives: the results (or outcomes) of other tasks, put in place at run time.

Pure and synchronous. At ``submit`` the arguments are scanned once for inputs: a
``TaskHandle`` (a data dependency: the task receives its result), or ``settled(handle)``
(the task receives an ``outcome.Outcome`` and runs however that task ended), either passed
directly or inside an exact ``list``, ``tuple`` or ``dict`` (values), one level deep. The
scan records *where* the inputs are, so that at run time only those places are rebuilt and
every other argument is passed as the very object the user gave.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, final

import attrs
import outcome

from ._decider import TaskRecord
from ._records import TaskStatus

__all__ = ["Inputs", "Settled", "resolve", "scan"]

T = TypeVar("T")


@final
@attrs.frozen
class Settled(Generic[T]):
    """An input that waits for a task to end in any way; made by ``trioflow.settled``."""

    handle: Any  # a TaskHandle[T]; Any here so the pure layer need not import the runner

    def outcome(self) -> outcome.Outcome[T]:
        """``Value(result)`` if the task completed, else ``Error(its error)`` (for a plain
        cancel, whose error is ``None``: the ``TaskFailed`` that ``wait()`` raises)."""
        task: TaskRecord = self.handle
        if task.status is TaskStatus.COMPLETED:
            return outcome.Value(task.result)
        error = task.error if task.error is not None else task.failure()
        return outcome.Error(error)


@attrs.frozen
class Inputs:
    """Where a task's inputs are: positions in ``args`` and keys of ``kwargs`` to rebuild."""

    positions: tuple[int, ...]
    keys: tuple[str, ...]


def _is_input(value: object, handle_type: type) -> bool:
    kind = type(value)
    return kind is handle_type or kind is Settled


def _holds_input(value: object, handle_type: type) -> bool:
    kind = type(value)
    if kind is handle_type or kind is Settled:
        return True
    if kind is list or kind is tuple:
        return any(_is_input(item, handle_type) for item in value)  # type: ignore[attr-defined]
    if kind is dict:
        return any(_is_input(item, handle_type) for item in value.values())  # type: ignore[attr-defined]
    return False


def _inputs_in(value: object, handle_type: type) -> list[Any]:
    kind = type(value)
    if kind is handle_type or kind is Settled:
        return [value]
    items: Any = value.values() if kind is dict else value  # type: ignore[attr-defined]
    return [item for item in items if _is_input(item, handle_type)]


def scan(
    args: tuple[Any, ...], kwargs: dict[str, Any] | None, handle_type: type
) -> tuple[list[Any], Inputs | None]:
    """The inputs among ``args`` and ``kwargs`` values (handles and :class:`Settled`
    markers, in order), and where they are; ``([], None)`` when there are none."""
    positions = [i for i, value in enumerate(args) if _holds_input(value, handle_type)]
    keys = (
        [key for key, value in kwargs.items() if _holds_input(value, handle_type)] if kwargs else []
    )
    if not positions and not keys:
        return [], None
    found: list[Any] = []
    for i in positions:
        found.extend(_inputs_in(args[i], handle_type))
    for key in keys:
        found.extend(_inputs_in(kwargs[key], handle_type))  # type: ignore[index]
    return found, Inputs(tuple(positions), tuple(keys))


def _value_of(value: Any, handle_type: type) -> Any:
    kind = type(value)
    if kind is handle_type:
        return value.result
    if kind is Settled:
        return value.outcome()
    return value


def _resolved(value: Any, handle_type: type) -> Any:
    kind = type(value)
    if kind is list:
        return [_value_of(item, handle_type) for item in value]
    if kind is tuple:
        return tuple(_value_of(item, handle_type) for item in value)
    if kind is dict:
        return {key: _value_of(item, handle_type) for key, item in value.items()}
    return _value_of(value, handle_type)


def resolve(
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
    inputs: Inputs | tuple[int, ...],
    handle_type: type,
) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
    """The arguments with every input replaced by its result or outcome. ``inputs`` is an
    :class:`Inputs`, or (the common case of handles passed as themselves) just the
    positions of those handles."""
    if type(inputs) is tuple:
        rebuilt = list(args)
        for i in inputs:
            rebuilt[i] = rebuilt[i].result
        return tuple(rebuilt), kwargs
    assert isinstance(inputs, Inputs)
    if inputs.positions:
        rebuilt = list(args)
        for i in inputs.positions:
            rebuilt[i] = _resolved(args[i], handle_type)
        args = tuple(rebuilt)
    if inputs.keys:
        assert kwargs is not None
        kwargs = dict(kwargs)
        for key in inputs.keys:
            kwargs[key] = _resolved(kwargs[key], handle_type)
    return args, kwargs
