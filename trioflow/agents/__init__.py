"""trioflow.agents: capability-dispatched agents under a coordinator nursery.

Public names only; the implementation lives in private modules.
"""

from .._errors import (
    AgentGone as AgentGone,
    AgentUnavailableError as AgentUnavailableError,
    DelegationDeadlock as DelegationDeadlock,
    NoCapableAgentError as NoCapableAgentError,
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
from ._worker import RegistrationRefused as RegistrationRefused, serve_agents as serve_agents
from .transport import (
    InMemoryTransport as InMemoryTransport,
    RedisTransport as RedisTransport,
    Transport as Transport,
    WorkItem as WorkItem,
)

# The seed chapter's name for the base class.
BaseAgent = Agent

_publish(globals(), "trioflow.agents")
