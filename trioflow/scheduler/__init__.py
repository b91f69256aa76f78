"""trioflow.scheduler: the task scheduler, as a pure decider and a trio runner.

The same names are exported from :mod:`trioflow`; import them from there.
"""

from .._public import publish
from ._handle import TaskHandle as TaskHandle, settled as settled
from ._inputs import Settled as Settled
from ._pools import Pool as Pool
from ._records import (
    SchedulerStats as SchedulerStats,
    TaskEvent as TaskEvent,
    TaskStatus as TaskStatus,
)
from ._runner import Scheduler as Scheduler, open_scheduler as open_scheduler

publish(globals(), "trioflow")
