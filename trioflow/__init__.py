"""trioflow: task scheduling and multi-agent coordination, the structured-concurrency way.

Public names only; the implementation lives in private modules.
"""

from ._errors import (
    CycleError as CycleError,
)
from ._errors import (
    DependencyFailed as DependencyFailed,
)
from ._errors import (
    DuplicateTaskError as DuplicateTaskError,
)
from ._errors import (
    NoCapableAgentError as NoCapableAgentError,
)
from ._errors import (
    SchedulerClosedError as SchedulerClosedError,
)
from ._errors import (
    TaskFailed as TaskFailed,
)
from ._errors import (
    TrioflowError as TrioflowError,
)
from ._errors import (
    UnknownDependencyError as UnknownDependencyError,
)
from ._records import (
    SchedulerStats as SchedulerStats,
)
from ._records import (
    TaskEvent as TaskEvent,
)
from ._records import (
    TaskStatus as TaskStatus,
)
from ._retry import RetryPolicy as RetryPolicy
from ._scheduler import (
    Scheduler as Scheduler,
)
from ._scheduler import (
    TaskHandle as TaskHandle,
)
from ._scheduler import (
    open_scheduler as open_scheduler,
)

__version__ = "0.1.0"

# Show the public path in reprs, tracebacks and docs, as trio does.
for _name, _obj in list(globals().items()):
    if not _name.startswith("_") and getattr(_obj, "__module__", "").startswith("trioflow._"):
        _obj.__module__ = "trioflow"
del _name, _obj
