"""The optional part of a transport that keeps tasks outside the coordinator's process.

A transport that implements :class:`TaskStore` as well as
:class:`~trioflow.agents.transport.Transport` is told of each task when it is submitted and
when it ends for good, names the tasks the coordinator does not name itself, hands a
restarted coordinator the tasks its predecessor left unfinished, and answers
``coord.result(task_id)`` for tasks of earlier processes. The coordinator looks for it once,
when it starts (``isinstance(transport, TaskStore)``); the in-memory transport does not
implement it, and costs nothing for it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

from .._records import AssignmentStatus

__all__ = ["StoredOutcome", "TaskStore"]


class StoredOutcome(NamedTuple):
    """How a task of an earlier coordinator ended, as the store kept it. ``status`` is
    ``QUEUED`` or ``ASSIGNED`` for one still open."""

    status: AssignmentStatus
    result: Any = None
    error: BaseException | None = None


@runtime_checkable
class TaskStore(Protocol):
    """What a coordinator asks of a transport that keeps its tasks (see the module)."""

    def new_task_id(self, key: int) -> Hashable:
        """An id for the ``key``-th task of this coordinator, unique in the store across
        coordinator restarts, and never one a user would give (``submit(task, id=...)``):
        a clash would make two tasks one record."""

    def submitted(self, task_id: Hashable, task: Mapping[str, Any]) -> None:
        """Keep ``task`` (before any assignment of it is delivered). Never blocks."""

    def finished(
        self, task_id: Hashable, status: AssignmentStatus, error: BaseException | None
    ) -> None:
        """The task ended for good (completions the store learnt from the agent's report
        already). Never blocks."""

    async def recover(self) -> list[tuple[Hashable, Mapping[str, Any]]]:
        """The tasks that were submitted and have not finished, oldest first (called once,
        after ``start``)."""

    async def lookup(self, task_id: Hashable) -> StoredOutcome | None:
        """How the task ``task_id`` stands in the store; ``None`` if it does not know it."""

    async def flush(self) -> None:
        """Wait until everything the store was told is kept (called once every task has
        ended, before the coordinator stops its transport's tasks)."""
