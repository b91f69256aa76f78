"""The transport seam between the coordinator and its agents, and the in-memory transport.

Dispatch, fencing and fault handling never touch a channel: they hand the transport
:class:`WorkItem`s and messages to deliver, and receive reports through the
:class:`CoordinatorLink` an agent is given. A transport to agents in other processes or on
other machines implements the same two sides over a byte stream; nothing else changes.

In memory, assignments go out with ``send_nowait`` (the dispatcher never gives an agent
more than its concurrency, so the agent's assignment channel, sized to it, never fills) and
reports are plain calls: the fast paths that make a round trip cost well under a microsecond
of channel overhead instead of two scheduler round trips.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, NamedTuple, Protocol

import attrs
import trio

from ..._errors import AgentUnavailableError
from .._messages import Message


class WorkItem(NamedTuple):
    """One assignment as the agent sees it; reports quote ``token``. (A named tuple: frozen,
    and cheap to make once per attempt.)"""

    token: int
    attempt: int
    task: Any


class CoordinatorLink(Protocol):
    """What an agent can tell its coordinator."""

    def report_result(self, token: int, result: Any) -> None: ...

    def report_failure(self, token: int, error: BaseException) -> None: ...

    def hand_back(self, token: int) -> None: ...

    def heartbeat(self) -> None: ...

    async def send_message(self, message: Message) -> None: ...

    async def request(self, capability: Hashable, task: Any) -> Any: ...


class Inbound(Protocol):
    """The coordinator's side of a link: what reports turn into."""

    def _on_result(self, agent_id: Hashable, token: int, result: Any) -> None: ...

    def _on_failure(self, agent_id: Hashable, token: int, error: BaseException) -> None: ...

    def _on_hand_back(self, agent_id: Hashable, token: int) -> None: ...

    def _on_heartbeat(self, agent_id: Hashable) -> None: ...

    async def _route(self, message: Message) -> None: ...

    async def _request(self, agent_id: Hashable, capability: Hashable, task: Any) -> Any: ...


@attrs.define(eq=False)
class AgentEndpoint:
    """An agent's end of the transport: its two inboxes and its link back."""

    agent_id: Hashable
    work: trio.MemoryReceiveChannel[WorkItem]
    messages: trio.MemoryReceiveChannel[Message]
    link: CoordinatorLink
    draining: bool = False


@attrs.define(eq=False)
class _InMemoryLink:
    _inbound: Inbound
    _agent_id: Hashable

    def report_result(self, token: int, result: Any) -> None:
        self._inbound._on_result(self._agent_id, token, result)

    def report_failure(self, token: int, error: BaseException) -> None:
        self._inbound._on_failure(self._agent_id, token, error)

    def hand_back(self, token: int) -> None:
        self._inbound._on_hand_back(self._agent_id, token)

    def heartbeat(self) -> None:
        self._inbound._on_heartbeat(self._agent_id)

    async def send_message(self, message: Message) -> None:
        await self._inbound._route(message)

    async def request(self, capability: Hashable, task: Any) -> Any:
        return await self._inbound._request(self._agent_id, capability, task)


@attrs.define(eq=False)
class _Senders:
    endpoint: AgentEndpoint
    work: trio.MemorySendChannel[WorkItem]
    messages: trio.MemorySendChannel[Message]


class InMemoryTransport:
    """Agents in the coordinator's own trio run, over memory channels."""

    def __init__(self, inbound: Inbound, inbox_size: int = 100) -> None:
        if type(inbox_size) is not int or inbox_size < 1:
            raise ValueError(f"inbox_size must be an int >= 1, got {inbox_size!r}")
        self._inbound = inbound
        self._inbox_size = inbox_size
        self._open: dict[Hashable, _Senders] = {}

    def open_endpoint(self, agent_id: Hashable, concurrency: int) -> AgentEndpoint:
        """A fresh endpoint for ``agent_id`` (closing any previous one)."""
        self.close_endpoint(agent_id)
        work_send, work_receive = trio.open_memory_channel[WorkItem](concurrency)
        message_send, message_receive = trio.open_memory_channel[Message](self._inbox_size)
        endpoint = AgentEndpoint(
            agent_id, work_receive, message_receive, _InMemoryLink(self._inbound, agent_id)
        )
        self._open[agent_id] = _Senders(endpoint, work_send, message_send)
        return endpoint

    def close_endpoint(self, agent_id: Hashable) -> None:
        senders = self._open.pop(agent_id, None)
        if senders is not None:
            senders.work.close()
            senders.messages.close()

    def set_draining(self, agent_id: Hashable) -> None:
        senders = self._open.get(agent_id)
        if senders is not None:
            senders.endpoint.draining = True

    def deliver_work(self, agent_id: Hashable, item: WorkItem) -> None:
        # Never blocks: the dispatcher keeps an agent's assignments within its concurrency.
        self._open[agent_id].work.send_nowait(item)

    async def deliver_message(self, agent_id: Hashable, message: Message) -> None:
        """Put ``message`` in the agent's bounded inbox, waiting while it is full."""
        senders = self._open.get(agent_id)
        if senders is None:
            raise AgentUnavailableError(agent_id)
        try:
            await senders.messages.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise AgentUnavailableError(agent_id) from None
