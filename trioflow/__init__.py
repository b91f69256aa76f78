"""trioflow: task scheduling and multi-agent coordination, the structured-concurrency way.

Public names only; the implementation lives in private modules.
"""

import logging as _logging

from ._errors import (
    AgentGone as AgentGone,
    AgentUnavailableError as AgentUnavailableError,
    CycleError as CycleError,
    DelegationDeadlock as DelegationDeadlock,
    DependencyFailed as DependencyFailed,
    DuplicateTaskError as DuplicateTaskError,
    NoCapableAgentError as NoCapableAgentError,
    SchedulerClosedError as SchedulerClosedError,
    TaskFailed as TaskFailed,
    TaskRejected as TaskRejected,
    TrioflowError as TrioflowError,
    UnknownAgentError as UnknownAgentError,
    UnknownDependencyError as UnknownDependencyError,
    UnknownTaskError as UnknownTaskError,
)
from ._events import EventChannel as EventChannel, EventChannelStatistics as EventChannelStatistics
from ._public import publish as _publish
from ._retry import RetryPolicy as RetryPolicy
from .scheduler import (
    Pool as Pool,
    Scheduler as Scheduler,
    SchedulerStats as SchedulerStats,
    Settled as Settled,
    TaskEvent as TaskEvent,
    TaskHandle as TaskHandle,
    TaskStatus as TaskStatus,
    open_scheduler as open_scheduler,
    settled as settled,
)

__version__ = "0.1.0"

_publish(globals(), "trioflow")

# A library adds no handler of its own but this one, so an application that configures no
# logging sees nothing (and no "no handlers could be found" warning).
_logging.getLogger("trioflow").addHandler(_logging.NullHandler())
