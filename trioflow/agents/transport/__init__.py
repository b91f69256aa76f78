"""trioflow.agents.transport: the seam between a coordinator and its agents.

:class:`Transport` is the protocol a coordinator drives; :class:`InMemoryTransport` is the
default, for agents in the coordinator's own trio run; :class:`RedisTransport` reaches agents in
other processes and on other hosts (``pip install 'trioflow[redis]'``), which run with
:func:`trioflow.agents.serve_agents`. The other names are what a transport implementation
works with.
"""

from ..._public import publish as _publish
from ._codec import Codec as Codec, JsonCodec as JsonCodec, RemoteError as RemoteError
from ._memory import InMemoryTransport as InMemoryTransport
from ._protocol import (
    AgentEndpoint as AgentEndpoint,
    AgentRegistration as AgentRegistration,
    AgentSettings as AgentSettings,
    CoordinatorLink as CoordinatorLink,
    Inbound as Inbound,
    Transport as Transport,
    WorkItem as WorkItem,
)
from ._redis import RedisTransport as RedisTransport
from ._store import StoredOutcome as StoredOutcome, TaskStore as TaskStore

_publish(globals(), "trioflow.agents.transport")
