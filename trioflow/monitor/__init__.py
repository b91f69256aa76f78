"""trioflow.monitor: a live view of schedulers and coordinators, from their event streams.

``rich`` draws the live view (``pip install 'trioflow[monitor]'``); without it, or when the
output is not a terminal, the monitor writes plain timestamped lines.
"""

from .._public import publish as _publish
from ._monitor import Monitor as Monitor, open_monitor as open_monitor
from ._view import RunView as RunView

_publish(globals(), "trioflow.monitor")
