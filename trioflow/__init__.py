"""trioflow: task scheduling and multi-agent coordination, the structured-concurrency way.

Public names only; the implementation lives in private modules.
"""

from ._errors import (
    AgentGone as AgentGone,
    AgentUnavailableError as AgentUnavailableError,
    CycleError as CycleError,
    DependencyFailed as DependencyFailed,
    DuplicateTaskError as DuplicateTaskError,
    NoCapableAgentError as NoCapableAgentError,
    SchedulerClosedError as SchedulerClosedError,
    TaskFailed as TaskFailed,
    TaskRejected as TaskRejected,
    TrioflowError as TrioflowError,
    UnknownAgentError as UnknownAgentError,
    UnknownDependencyError as UnknownDependencyError,
)
from ._public import publish as _publish
from ._retry import RetryPolicy as RetryPolicy
from .scheduler import (
    Scheduler as Scheduler,
    SchedulerStats as SchedulerStats,
    TaskEvent as TaskEvent,
    TaskHandle as TaskHandle,
    TaskStatus as TaskStatus,
    open_scheduler as open_scheduler,
)

__version__ = "0.1.0"

_publish(globals(), "trioflow")
