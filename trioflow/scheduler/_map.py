"""The state of a ``map()`` call, and its items when they take the full path.

A call is a :class:`~trioflow.scheduler._decider.Source` in the ready queue; each time a
worker pops it, one item is taken from the caller's iterable and started at once. Items
that need nothing but a call run on the runner's fast path (``Scheduler._drain_source``),
without a record each; the others become :class:`MapItem` records, tasks with no handle,
counted but not kept in ``sched.tasks``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from typing import Any

import trio

from ._decider import Call, Source, TaskRecord, TaskSpec

__all__ = ["MapItem", "MapRun"]


class MapItem(TaskRecord):
    """One item of a ``map()`` call: a task with no handle, counted but not kept."""

    __slots__ = ("_index", "_run")

    def __init__(self, run: MapRun, index: int, item: object, now: float) -> None:
        if run.context is None:
            args: tuple[Any, ...] | Call = (item,)
        else:
            args = Call((item,))
            args.context = run.context.copy()  # one copy each: items run concurrently
        super().__init__((run.label, index), run.spec, args, run.priority, now)
        self._run = run
        self._index = index


class MapRun:
    """The state of one ``map()`` call."""

    __slots__ = (
        "context",
        "done",
        "error",
        "fast",
        "items",
        "label",
        "live",
        "priority",
        "results",
        "running",
        "scopes",
        "source",
        "spec",
    )

    def __init__(
        self,
        label: str,
        spec: TaskSpec,
        items: Iterable[Any],
        priority: int,
        context: contextvars.Context | None,
    ) -> None:
        self.label = label
        self.spec = spec
        self.items = iter(items)
        self.priority = priority
        self.context = context
        self.results: list[Any] = []
        self.live: set[MapItem] = set()
        self.error: BaseException | None = None
        self.done = trio.Event()
        self.source = Source(priority, spec.pool, self)
        # Items that need nothing but a call (an async fn; no timeout, retry, pool or
        # context of their own) run on the fast path: no record each, see _drain_source.
        self.fast = (
            spec.is_async
            and spec.timeout is None
            and spec.retry is None
            and spec.pool is None
            and context is None
        )
        self.running = 0  # fast-path items running now
        self.scopes: set[trio.CancelScope] = set()  # the scopes they run in, to cancel them

    def finished(self) -> bool:
        return self.source.exhausted and not self.live and not self.running
