"""Agent: the base class users subclass, and the loops it runs over its endpoint.

An agent runs over an :class:`~trioflow.agents.transport.AgentEndpoint` and knows nothing
else of its coordinator: ``concurrency`` work loops take assignments from the endpoint and
call :meth:`Agent.process_task`, a message loop calls :meth:`Agent.on_message`, and a
heartbeat loop calls :meth:`Agent.heartbeat` every interval and reports it. Whoever runs the
agent (the coordinator's supervisor in this process, a worker process for a remote
transport) gives it a cancel scope of its own: if any loop crashes, the whole agent stops
and its work is reassigned; if the heartbeat loop stalls, the coordinator notices the
silence and cancels that scope.

This module does not import the coordinator: ``agent.connect(coordinator)`` asks the
coordinator, through the small :class:`AgentHost` protocol, to connect the agent.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Final, Protocol

import trio

from .._validate import check_int
from ._dispatch import check_agent_id
from ._messages import Message
from .transport._protocol import AgentEndpoint, CoordinatorLink, WorkItem

__all__ = ["CHECKPOINT_EVERY", "Agent", "AgentHost", "runs_below"]

#: A work loop that keeps finding assignments checkpoints after this many even when none of
#: them blocked, so heartbeats and other agents get their turn.
CHECKPOINT_EVERY: Final = 32


class AgentHost(Protocol):
    """What an agent can be connected to (a coordinator)."""

    async def connect(self, agent: Agent) -> None: ...

    async def disconnect(self, agent: Agent) -> None: ...


class Agent:
    """Subclass and implement :meth:`process_task`; ``await agent.connect(coordinator)``.

    Args:
        agent_id: unique among the coordinator's agents.
        capabilities: what the agent can do; any hashables (``AgentCapability`` or strings).
        concurrency: how many tasks it works on at once.

    Raises:
        TypeError: ``agent_id`` is not hashable, ``capabilities`` is a string, or
            ``concurrency`` is not an int.
        ValueError: ``agent_id`` is ``None``, no capabilities, or ``concurrency < 1``.
    """

    def __init__(
        self, agent_id: Hashable, capabilities: Iterable[Hashable], *, concurrency: int = 1
    ) -> None:
        check_agent_id(agent_id)
        if isinstance(capabilities, (str, bytes)):
            raise TypeError("capabilities must be a collection, not a string")
        caps = frozenset(capabilities)
        if not caps:
            raise ValueError(f"agent {agent_id!r} needs at least one capability")
        self.id = agent_id
        self.capabilities = caps
        self.concurrency = check_int("concurrency", concurrency, minimum=1)
        #: The coordinator this agent is connected to, or ``None``.
        self.coordinator: AgentHost | None = None
        self._endpoint: AgentEndpoint | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r}>"

    # -- to override ------------------------------------------------------------------------

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        """Do one task and return its result. Raising fails this attempt; raise
        :class:`~trioflow.TaskRejected` when the task itself is at fault (no retry).

        An attempt runs until it returns, unless the coordinator has a ``task_timeout``
        or the task is cancelled: one that never returns holds one of the agent's
        ``concurrency`` slots, while its heartbeats go on. The coordinator shows how long
        each attempt has run (``coord.agents[id].running``) and logs a warning for one
        that runs past its ``slow_after``."""
        raise NotImplementedError(f"{type(self).__name__} must implement process_task()")

    async def on_message(self, message: Message) -> None:
        """Handle a message another agent sent with :meth:`send_message`."""

    async def heartbeat(self) -> None:
        """Called every heartbeat interval; the coordinator hears the heartbeat only when
        it returns. Override to add a health check: a heartbeat that blocks or raises takes
        the agent offline."""
        await trio.lowlevel.checkpoint()

    # -- to call ----------------------------------------------------------------------------

    async def connect(self, coordinator: AgentHost) -> None:
        """Register with ``coordinator`` and start running in its nursery."""
        await coordinator.connect(self)

    async def disconnect(self) -> None:
        """Leave cleanly: take no new work, hand back what was not started, finish what was,
        then stop. Called from inside the agent's own work, it returns at once and the
        agent leaves when that work is done."""
        if self.coordinator is None:
            raise RuntimeError(f"agent {self.id!r} is not connected")
        await self.coordinator.disconnect(self)

    async def send_message(self, message: Message) -> None:
        """Deliver ``message`` to ``message.receiver``'s :meth:`on_message`.

        Raises:
            UnknownAgentError: no such agent. AgentUnavailableError: it is offline.
        """
        await self._link().send_message(message)

    async def request(self, capability: Hashable, task: Mapping[str, Any]) -> Any:
        """Delegate ``task`` to another agent with ``capability``; return its result.

        The reply comes back only to this call (the task's handle is its correlation id).
        Bound the wait the trio way, with ``trio.fail_after`` or ``move_on_after`` around
        the call: if the call is cancelled, the delegated task is cancelled too.

        A request that can never be served fails at once rather than waiting forever:
        when every agent that may take it is online but busy, in every slot, with work
        that waits (through requests of its own) on this request's caller, as when agent
        A asks B while B asks A with ``concurrency=1`` each. The coordinator finds such a
        cycle the moment the request has to wait (or the moment an agent that could have
        served it goes away), and fails the request with
        :class:`~trioflow.agents.DelegationDeadlock`; a timeout around the call does not
        change that. Only the agents connected at that moment count: one that might
        connect later does not. A request that no online agent may take waits instead,
        as any task does, for one to come back.

        Raises:
            NoCapableAgentError: no other agent has the capability.
            TaskFailed: the delegated task failed, or can never run: a delegation deadlock
                (its cause is a :class:`~trioflow.agents.DelegationDeadlock`), or every
                other agent with the capability is gone once the coordinator's block has
                ended.
        """
        return await self._link().request(capability, task)

    # -- the loops --------------------------------------------------------------------------

    def _link(self) -> CoordinatorLink:
        if self._endpoint is None:
            raise RuntimeError(f"agent {self.id!r} is not connected")
        return self._endpoint.link

    async def _run(self, endpoint: AgentEndpoint) -> None:
        """Run the agent's loops over ``endpoint`` until cancelled or crashed."""
        self._endpoint = endpoint
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeat_loop, endpoint)
            nursery.start_soon(self._message_loop, endpoint)
            for _ in range(self.concurrency):
                nursery.start_soon(self._work_loop, endpoint)

    async def _heartbeat_loop(self, endpoint: AgentEndpoint) -> None:
        link = endpoint.link
        interval = endpoint.settings.heartbeat_interval
        while True:
            await self.heartbeat()
            link.heartbeat()
            await trio.sleep(interval)

    async def _message_loop(self, endpoint: AgentEndpoint) -> None:
        async for message in endpoint.messages:
            await self.on_message(message)

    async def _work_loop(self, endpoint: AgentEndpoint) -> None:
        """Take assignments and run them, one at a time, until the inbox closes.

        The loop runs many attempts inside one cancel scope of its own (``scope``), which
        is what lets the coordinator revoke an attempt (a cancelled task) without a cancel
        scope per attempt: entering and leaving a scope per attempt would cost about as much
        again as the rest of the round trip. ``slot.token`` says which attempt runs under
        the scope right now, and only ``AgentEndpoint.revoke`` of that token cancels it.
        After a revoke the scope is spent: the revoked attempt is handed back (its task is
        already ended, so the report only frees the slot) and a fresh scope is opened.

        A ``task_timeout`` needs a scope of its own per attempt (it has a deadline), so it is
        opened only when the coordinator has one. Its expiry is told apart from a
        ``TooSlowError`` that ``process_task`` raises itself (from its own ``fail_after``):
        only the coordinator's limit makes a timeout report.

        When the link offers ``report_result_and_next`` (the in-memory transport does), a
        result is reported with it and the next assignment comes back as its return value:
        the loop goes on to it without a trip through the work channel. ``pending`` holds
        such an assignment until it starts; it is handled exactly as one received from the
        channel would be (handed back if the agent is leaving meanwhile, run in a fresh
        scope if the old one was spent).
        """
        slot = endpoint.work_slot()
        link = endpoint.link
        work = endpoint.work
        timeout = endpoint.settings.task_timeout
        report_and_next: Callable[[int, Any], WorkItem | None] | None = getattr(
            link, "report_result_and_next", None
        )
        revoked = endpoint.revoked
        pending: WorkItem | None = None
        done = 0
        while True:
            try:
                with trio.CancelScope() as scope:
                    slot.scope = scope
                    slot.revoked = False
                    while True:
                        if pending is not None:
                            item, pending = pending, None
                        else:
                            try:
                                item = work.receive_nowait()
                            except trio.WouldBlock:
                                done = 0
                                try:
                                    item = await work.receive()
                                except trio.EndOfChannel:
                                    return
                            except trio.EndOfChannel:
                                return
                        if endpoint.draining or (revoked and item.token in revoked):
                            revoked.discard(item.token)  # its task ended before it started
                            link.hand_back(item.token)
                            continue
                        token = slot.token = item.token
                        timed_out = False
                        try:
                            if timeout is None:
                                result = await self.process_task(item.task)
                            else:
                                with trio.move_on_after(timeout) as limit:
                                    result = await self.process_task(item.task)
                                # An attempt that overran its limit without a checkpoint to
                                # deliver it (blocking code) timed out all the same.
                                timed_out = (
                                    limit.cancelled_caught or trio.current_time() >= limit.deadline
                                )
                        except Exception as exc:
                            slot.token = 0
                            link.report_failure(token, exc)
                        else:
                            slot.token = 0
                            if timed_out:
                                link.report_timeout(token, _timed_out(timeout, item.attempt))
                            elif report_and_next is not None:
                                pending = report_and_next(token, result)
                            else:
                                link.report_result(token, result)
                        if slot.revoked:
                            break  # revoked, but it finished first: the scope is spent
                        done += 1
                        if done == CHECKPOINT_EVERY:
                            done = 0
                            await trio.lowlevel.checkpoint()
            except Exception:
                # Only a revoked attempt gets here: its cleanup raised while it was being
                # cancelled (a group of its errors, our Cancelled taken out by the scope).
                # Its task is already ended, so the errors have nobody to go to.
                if not scope.cancel_called:
                    raise
            # The scope was revoked: hand back the attempt it cut short, if any.
            if slot.token:
                link.hand_back(slot.token)
                slot.token = 0


def _timed_out(limit: float | None, attempt: int) -> TimeoutError:
    return TimeoutError(f"attempt {attempt} timed out after {limit} s")


def runs_below(ancestor: trio.lowlevel.Task | None) -> bool:
    """Whether the current trio task is ``ancestor`` or runs in a nursery below it: an
    agent's own work calling ``disconnect()``, which must not wait for the agent to stop."""
    task: trio.lowlevel.Task | None = trio.lowlevel.current_task()
    while task is not None:
        if task is ancestor:
            return True
        nursery = task.parent_nursery
        task = None if nursery is None else nursery.parent_task
    return False
