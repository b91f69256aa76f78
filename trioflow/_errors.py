"""trioflow's exception hierarchy.

Every error trioflow raises on its own account subclasses :class:`TrioflowError`, so callers
can catch "anything trioflow refused or reported" in one clause. Bad arguments that are plain
Python mistakes (a non-callable, a negative delay) stay ``TypeError`` / ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


class TrioflowError(Exception):
    """Base class of every exception defined by trioflow."""


class DuplicateTaskError(TrioflowError, ValueError):
    """A task was submitted with an id that is already in use."""

    def __init__(self, task_id: Hashable) -> None:
        super().__init__(f"task id {task_id!r} is already in use")
        self.task_id = task_id


class UnknownDependencyError(TrioflowError, LookupError):
    """A task depends on an id that was never submitted (or on another scheduler's task)."""

    def __init__(self, task_id: Hashable, dependency: Hashable) -> None:
        super().__init__(f"task {task_id!r} depends on unknown task {dependency!r}")
        self.task_id = task_id
        self.dependency = dependency


class CycleError(TrioflowError, ValueError):
    """The dependency graph has a cycle; ``.cycle`` lists its ids, first repeated last."""

    def __init__(self, cycle: Sequence[Hashable]) -> None:
        path = " -> ".join(repr(node) for node in cycle)
        super().__init__(f"dependency cycle: {path}")
        self.cycle = list(cycle)


class SchedulerClosedError(TrioflowError, RuntimeError):
    """Work was submitted to a scheduler (or coordinator) that has already finished."""


class DependencyFailed(TrioflowError):
    """A task never ran because one of its dependencies did not complete.

    ``dependency`` is the id of the direct dependency that failed, timed out or was
    cancelled; ``root`` is the id of the task whose failure started the chain (the same as
    ``dependency`` when the failure is one step upstream).
    """

    def __init__(self, task_id: Hashable, dependency: Hashable, root: Hashable) -> None:
        detail = "" if root == dependency else f" (root cause: {root!r})"
        super().__init__(
            f"task {task_id!r} cancelled: dependency {dependency!r} did not complete{detail}"
        )
        self.task_id = task_id
        self.dependency = dependency
        self.root = root


class TaskFailed(TrioflowError):
    """Raised by ``wait()`` for a task that did not complete.

    Its ``__cause__`` is the task's own last error (``None`` for a plain cancel); ``status``
    says how it ended, ``errors`` holds every attempt's error where that is known.
    """

    def __init__(
        self,
        task_id: Hashable,
        status: object,
        error: BaseException | None,
        errors: Sequence[BaseException] = (),
    ) -> None:
        state = getattr(status, "value", status)
        reason = f": {error!r}" if error is not None else ""
        super().__init__(f"task {task_id!r} ended {state}{reason}")
        self.task_id = task_id
        self.status = status
        self.error = error
        self.errors = tuple(errors) if errors else ((error,) if error is not None else ())
        self.__cause__ = error


class UnknownTaskError(TrioflowError, LookupError):
    """``coord.result(task_id)`` was asked for a task id that neither the coordinator nor
    its transport knows."""

    def __init__(self, task_id: Hashable) -> None:
        super().__init__(f"no task with id {task_id!r} is known")
        self.task_id = task_id


class NoCapableAgentError(TrioflowError, LookupError):
    """No registered agent has the capability a task needs."""

    def __init__(self, capability: Hashable) -> None:
        super().__init__(f"no registered agent has capability {capability!r}")
        self.capability = capability


class UnknownAgentError(TrioflowError, LookupError):
    """A message was addressed to an agent id that is not registered."""

    def __init__(self, agent_id: Hashable) -> None:
        super().__init__(f"no agent with id {agent_id!r} is registered")
        self.agent_id = agent_id


class AgentUnavailableError(TrioflowError):
    """A message was addressed to an agent that is offline."""

    def __init__(self, agent_id: Hashable) -> None:
        super().__init__(f"agent {agent_id!r} is offline")
        self.agent_id = agent_id


class AgentGone(TrioflowError):
    """An agent went away while it held work: it crashed, missed its heartbeats, left, or
    the coordinator shut down. Recorded as the error of each attempt so cut short."""


class TaskRejected(TrioflowError, ValueError):
    """Raised by an agent's ``process_task`` when the *task* is at fault (bad input, say),
    not the agent: the task fails at once instead of being retried on another agent."""


class DelegationDeadlock(TrioflowError):
    """A delegated task (an agent's ``request()``) can never be served: every agent that
    may take it is busy, in every slot, with work that waits (through requests of its own)
    for the requester's work to finish. Agent A asking B while B asks A, both with
    ``concurrency=1``, is the smallest case.

    It is the error of that delegated task, which fails at once instead of waiting
    forever, so the ``request()`` raises :class:`TaskFailed` with this as its cause.
    ``cycle`` lists the agents in the wait, from the requester on until one repeats (the
    requester itself, in a plain cycle).
    """

    def __init__(self, requester: Hashable, capability: Hashable, cycle: Sequence[Hashable]):
        path = " -> ".join(repr(agent) for agent in cycle)
        super().__init__(
            f"agent {requester!r} requested {capability!r}, which no agent can ever take: "
            f"every agent that may is busy waiting on {requester!r}'s own request ({path})"
        )
        self.requester = requester
        self.capability = capability
        self.cycle = list(cycle)


class RegistrationRefused(TrioflowError):
    """The coordinator refused an agent's registration (an id that is online already with
    a different agent, or that came back with other capabilities)."""
