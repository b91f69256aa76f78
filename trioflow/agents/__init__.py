"""trioflow.agents: capability-dispatched agents under a coordinator nursery.

Public names only; the implementation lives in private modules.
"""

from .._errors import (
    AgentUnavailableError as AgentUnavailableError,
    NoCapableAgentError as NoCapableAgentError,
    TaskFailed as TaskFailed,
    TaskRejected as TaskRejected,
    UnknownAgentError as UnknownAgentError,
)
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
from ._dispatch import AgentGone as AgentGone, AssignmentStatus as AssignmentStatus
from ._messages import (
    AgentCapability as AgentCapability,
    Message as Message,
    MessageType as MessageType,
)
from ._supervision import RestartPolicy as RestartPolicy
from ._transport import WorkItem as WorkItem

# The seed chapter's name for the base class.
BaseAgent = Agent

for _name, _obj in list(globals().items()):
    if not _name.startswith("_") and getattr(_obj, "__module__", "").startswith(
        "trioflow.agents._"
    ):
        _obj.__module__ = "trioflow.agents"
del _name, _obj
