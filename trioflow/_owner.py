"""The shape every task-owning resource shares: a nursery around the user's block.

``open_scheduler``, ``open_coordinator`` and ``open_monitor`` all own a nursery whose tasks
must not outlive the ``async with`` block, and all follow the same three rules:

* The block's own exception propagates **as itself**, not wrapped in an ``ExceptionGroup``:
  it is caught before it reaches the nursery, the resource is told to stop (``_abort``),
  and it is raised again once the nursery has exited. A user who writes
  ``except ValueError`` around the block gets their ``ValueError``.
* A normal exit waits for the resource's work (``_drain``) inside the nursery, so that
  work can still use it.
* Whatever happened, the resource gets ``_close`` once every task has exited: nothing can
  run after it, so that is where unfinished work is given its final state.

The resource's own tasks contain every error of the user code they run, so the nursery
itself raises only on a ``KeyboardInterrupt`` or ``SystemExit`` (which end the program, and
so leave as themselves, unwrapped) or on a bug in trioflow. If a bug ever shows while the
block's exception is propagating, the bug wins (it is the louder fact) and the block's
exception is named in a note on it rather than silently lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

import trio

__all__ = ["Owner", "open_owner"]


class Owner(Protocol):
    def _abort(self, error: BaseException) -> None:
        """The block raised (or was cancelled): stop everything, now, synchronously."""

    async def _drain(self) -> None:
        """The block ended normally: wait, inside the nursery, until the work is done."""

    def _close(self, error: BaseException | None) -> None:
        """Every task has exited; ``error`` is the block's exception, if any."""


OwnerT = TypeVar("OwnerT", bound=Owner)


@asynccontextmanager
async def open_owner(make: Callable[[trio.Nursery], OwnerT]) -> AsyncIterator[OwnerT]:
    """Open a nursery, build the resource on it with ``make``, and yield the resource."""
    resource: OwnerT | None = None
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            resource = make(nursery)
            try:
                yield resource
            except BaseException as exc:
                body_error = exc
                resource._abort(exc)
            else:
                await resource._drain()
    except BaseException as internal:
        fatal = _program_end(internal)
        if fatal is not None:
            # Ctrl-C or sys.exit() in one of the resource's tasks (trio may deliver a
            # KeyboardInterrupt to any task): it ends the program, so it leaves as itself,
            # not in the nursery's group: ``except KeyboardInterrupt`` around the block
            # catches it, and an uncaught SystemExit(3) exits with status 3.
            raise fatal from None
        if body_error is not None and internal is not body_error:
            internal.add_note(f"(raised while the block's own {body_error!r} propagated)")
        raise
    finally:
        if resource is not None:
            resource._close(body_error)
    if body_error is not None:
        try:
            raise body_error
        finally:
            body_error = None  # no reference cycle through the traceback


def _program_end(error: BaseException) -> BaseException | None:
    """The ``KeyboardInterrupt`` or ``SystemExit`` that ``error`` (the nursery's group)
    stands for, when it holds nothing else but ``Cancelled`` (the tasks it cancelled on its
    way out); else ``None``."""
    if not isinstance(error, BaseExceptionGroup):
        return None
    fatal, rest = error.split((KeyboardInterrupt, SystemExit))
    if fatal is None or (rest is not None and rest.split(trio.Cancelled)[1] is not None):
        return None
    first: BaseException = fatal
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first
