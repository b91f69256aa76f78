"""trioflow.agents: capability-dispatched agents under a coordinator nursery.

Public names only; the implementation lives in private modules.
"""

from typing import TYPE_CHECKING

from .._errors import (
    AgentGone as AgentGone,
    AgentUnavailableError as AgentUnavailableError,
    DelegationDeadlock as DelegationDeadlock,
    NoCapableAgentError as NoCapableAgentError,
    RegistrationRefused as RegistrationRefused,
    TaskFailed as TaskFailed,
    TaskRejected as TaskRejected,
    UnknownAgentError as UnknownAgentError,
    UnknownTaskError as UnknownTaskError,
)
from .._public import publish as _publish
from ._agent import Agent as Agent
from ._coordinator import (
    AssignmentHandle as AssignmentHandle,
    Coordinator as Coordinator,
    open_coordinator as open_coordinator,
)
from ._messages import (
    AgentCapability as AgentCapability,
    Message as Message,
    MessageType as MessageType,
)
from ._records import (
    AgentInfo as AgentInfo,
    AgentStats as AgentStats,
    AgentStatus as AgentStatus,
    AssignmentStatus as AssignmentStatus,
    CoordinatorEvent as CoordinatorEvent,
    CoordinatorStats as CoordinatorStats,
    EventKind as EventKind,
    RunningTask as RunningTask,
)
from ._supervision import RestartPolicy as RestartPolicy
from .transport import (
    InMemoryTransport as InMemoryTransport,
    RedisTransport as RedisTransport,
    Transport as Transport,
    WorkItem as WorkItem,
)

if TYPE_CHECKING:
    from ._worker import serve_agents as serve_agents

# The seed chapter's name for the base class.
BaseAgent = Agent


def __getattr__(name: str) -> object:
    # serve_agents needs coredis (the ``redis`` extra): it is imported on first use, so
    # that ``import trioflow.agents`` (and every in-process use) works without it.
    if name == "serve_agents":
        from .transport._redis import import_redis

        import_redis()
        from ._worker import serve_agents

        serve_agents.__module__ = __name__
        globals()[name] = serve_agents
        return serve_agents
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "serve_agents"})


_publish(globals(), "trioflow.agents")
