"""trioflow.agents: capability-dispatched agents under a coordinator nursery.

Public names only; the implementation lives in private modules.
"""

from .._errors import (
    AgentGone as AgentGone,
    AgentUnavailableError as AgentUnavailableError,
    NoCapableAgentError as NoCapableAgentError,
    TaskFailed as TaskFailed,
    TaskRejected as TaskRejected,
    UnknownAgentError as UnknownAgentError,
)
from .._public import publish as _publish
from ._agent import Agent as Agent
from ._coordinator import (
    AgentInfo as AgentInfo,
    AgentStats as AgentStats,
    AssignmentHandle as AssignmentHandle,
    Coordinator as Coordinator,
    CoordinatorEvent as CoordinatorEvent,
    CoordinatorStats as CoordinatorStats,
    open_coordinator as open_coordinator,
)
from ._dispatch import AssignmentStatus as AssignmentStatus
from ._messages import (
    AgentCapability as AgentCapability,
    Message as Message,
    MessageType as MessageType,
)
from ._supervision import RestartPolicy as RestartPolicy
from .transport._memory import WorkItem as WorkItem

# The seed chapter's name for the base class.
BaseAgent = Agent

_publish(globals(), "trioflow.agents")
