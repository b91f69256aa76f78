"""Agent: the base class users subclass, and its main loop.

An agent runs inside its coordinator's nursery, in a cancel scope of its own, as three kinds
of loop under one nursery: ``concurrency`` work loops that take assignments and call
:meth:`Agent.process_task`, a message loop that calls :meth:`Agent.on_message`, and a
heartbeat loop that calls :meth:`Agent.heartbeat` every interval and reports it. If any loop
crashes the agent is offline and its work is reassigned; if the heartbeat loop stalls, the
coordinator's monitor notices and cancels the agent's scope.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any

import trio

from ._messages import Message
from .transport._memory import AgentEndpoint, WorkItem

if TYPE_CHECKING:
    from ._coordinator import Coordinator

#: A work loop that keeps finding assignments checkpoints after this many even when none of
#: them blocked, so heartbeats and other agents get their turn.
CHECKPOINT_EVERY = 32


class Agent:
    """Subclass and implement :meth:`process_task`; ``await agent.connect(coordinator)``.

    Args:
        agent_id: unique among the coordinator's agents.
        capabilities: what the agent can do; any hashables (``AgentCapability`` or strings).
        concurrency: how many tasks it works on at once.
    """

    def __init__(
        self, agent_id: Hashable, capabilities: Iterable[Hashable], *, concurrency: int = 1
    ) -> None:
        if isinstance(capabilities, (str, bytes)):
            raise TypeError("capabilities must be a collection, not a string")
        caps = frozenset(capabilities)
        if not caps:
            raise ValueError(f"agent {agent_id!r} needs at least one capability")
        if type(concurrency) is not int or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        self.id = agent_id
        self.capabilities = caps
        self.concurrency = concurrency
        self.coordinator: Coordinator | None = None
        self._endpoint: AgentEndpoint | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r}>"

    # -- to override ------------------------------------------------------------------------

    async def process_task(self, task: Any) -> Any:
        """Do one task and return its result. Raising fails this attempt."""
        raise NotImplementedError(f"{type(self).__name__} must implement process_task()")

    async def on_message(self, message: Message) -> None:
        """Handle a message another agent sent with :meth:`send_message`."""

    async def heartbeat(self) -> None:
        """Called every heartbeat interval; the coordinator hears the heartbeat only when
        it returns. Override to add a health check: a heartbeat that blocks or raises takes
        the agent offline."""
        await trio.lowlevel.checkpoint()

    # -- to call ----------------------------------------------------------------------------

    async def connect(self, coordinator: Coordinator) -> None:
        """Register with ``coordinator`` and start running in its nursery."""
        await coordinator._connect(self)

    async def disconnect(self) -> None:
        """Leave cleanly: take no new work, hand back what was not started, finish what was,
        then stop."""
        if self.coordinator is None:
            raise RuntimeError(f"agent {self.id!r} is not connected")
        await self.coordinator._disconnect(self)

    async def send_message(self, message: Message) -> None:
        """Deliver ``message`` to ``message.receiver``'s :meth:`on_message`.

        Raises:
            UnknownAgentError: no such agent. AgentUnavailableError: it is offline.
        """
        await self._link().send_message(message)

    async def request(self, capability: Hashable, task: Any) -> Any:
        """Delegate ``task`` to another agent with ``capability``; return its result.

        The reply comes back only to this call (the task's handle is its correlation id).
        Bound the wait the trio way, with ``trio.fail_after`` or ``move_on_after`` around
        the call: if the call is cancelled, the delegated task is cancelled too.

        Raises:
            NoCapableAgentError: no other agent has the capability.
            TaskFailed: the delegated task failed.
        """
        return await self._link().request(capability, task)

    # -- the loops --------------------------------------------------------------------------

    def _link(self) -> Any:
        if self._endpoint is None:
            raise RuntimeError(f"agent {self.id!r} is not connected")
        return self._endpoint.link

    async def _run(
        self,
        endpoint: AgentEndpoint,
        heartbeat_interval: float,
        task_timeout: float | None,
    ) -> None:
        self._endpoint = endpoint
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeat_loop, endpoint, heartbeat_interval)
            nursery.start_soon(self._message_loop, endpoint)
            for _ in range(self.concurrency):
                nursery.start_soon(self._work_loop, endpoint, task_timeout)

    async def _heartbeat_loop(self, endpoint: AgentEndpoint, interval: float) -> None:
        while True:
            await self.heartbeat()
            endpoint.link.heartbeat()
            await trio.sleep(interval)

    async def _message_loop(self, endpoint: AgentEndpoint) -> None:
        async for message in endpoint.messages:
            await self.on_message(message)

    async def _work_loop(self, endpoint: AgentEndpoint, task_timeout: float | None) -> None:
        work = endpoint.work
        link = endpoint.link
        done = 0
        while True:
            try:
                item: WorkItem = work.receive_nowait()
            except trio.WouldBlock:
                done = 0
                try:
                    item = await work.receive()
                except trio.EndOfChannel:
                    return
            except trio.EndOfChannel:
                return
            if endpoint.draining:
                link.hand_back(item.token)
                continue
            try:
                if task_timeout is None:
                    result = await self.process_task(item.task)
                else:
                    with trio.fail_after(task_timeout):
                        result = await self.process_task(item.task)
            except trio.TooSlowError:
                link.report_failure(
                    item.token, TimeoutError(f"task took longer than {task_timeout} s")
                )
            except Exception as exc:
                link.report_failure(item.token, exc)
            else:
                link.report_result(item.token, result)
            done += 1
            if done == CHECKPOINT_EVERY:
                done = 0
                await trio.lowlevel.checkpoint()
