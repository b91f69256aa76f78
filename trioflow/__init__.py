"""trioflow: task scheduling and multi-agent coordination, the structured-concurrency way.

Public names only; the implementation lives in private modules.
"""

from ._errors import (
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
from ._records import (
    SchedulerStats as SchedulerStats,
    TaskEvent as TaskEvent,
    TaskStatus as TaskStatus,
)
from ._retry import RetryPolicy as RetryPolicy
from ._scheduler import (
    Scheduler as Scheduler,
    TaskHandle as TaskHandle,
    open_scheduler as open_scheduler,
)

__version__ = "0.1.0"

# Show the public path in reprs, tracebacks and docs, as trio does.
for _name, _obj in list(globals().items()):
    if not _name.startswith("_") and getattr(_obj, "__module__", "").startswith("trioflow._"):
        _obj.__module__ = "trioflow"
del _name, _obj
