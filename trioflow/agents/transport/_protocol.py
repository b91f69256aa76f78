"""The transport seam: how a coordinator and its agents reach each other.

The coordinator decides everything (placement, fencing tokens, retries, who is online); a
transport only carries its decisions out and brings reports back. It has three parts:

* :class:`Transport`, what the coordinator drives. Every call names an agent by id, never by
  object, so the agent may live in this trio run (:class:`InMemoryTransport`) or in another
  process behind a broker. Delivery calls that can happen once per task (``deliver_work``,
  ``revoke``, ``drain``, ``detach``) are synchronous and must not block: a transport to
  another process queues them and writes them out from a background task, in batches, which
  is what a broker's round trips reward anyway.
* :class:`Inbound`, what the transport tells the coordinator: reports of attempts
  (quoting the fencing token they were given), heartbeats, messages and delegated requests
  from agents, and agents that register themselves or leave. The coordinator hands it to
  :meth:`Transport.start`; it is a record of callables, so the transport needs no name of the
  coordinator's and a call costs what a method call costs.
* :class:`AgentEndpoint`, an agent's end: its inbox of work (:class:`WorkItem`), its inbox of
  messages, the :class:`CoordinatorLink` back, and the settings its loops run by. An agent
  runs over an endpoint and nothing else, so an agent class written for the in-process
  coordinator runs unchanged wherever a transport can give it an endpoint.

A transport to other processes (Redis Streams, say) fits as follows: ``start`` opens its
connections and starts its readers in the coordinator's nursery (registrations, reports and
heartbeats arrive there and become :class:`Inbound` calls, one per entry); ``deliver_work``
and ``revoke`` append to a stream per agent; ``detach`` is what a lease loss is (the worker
cancels its attempts, and any late report carries a token the coordinator no longer
accepts); ``attach`` may serve an agent of this process through the broker too, or refuse.
Recovering the unfinished work of a previous coordinator is not part of this protocol yet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar, final, runtime_checkable

import attrs
import trio

from .._messages import Message

__all__ = [
    "AgentEndpoint",
    "AgentRegistration",
    "AgentSettings",
    "CoordinatorLink",
    "Inbound",
    "Transport",
    "WorkItem",
]


class WorkItem(NamedTuple):
    """One assignment as the agent sees it; reports quote ``token``. ``task_id`` is the
    task's id (a transport that keeps tasks elsewhere files the assignment under it). (A
    named tuple: frozen, and cheap to make once per attempt.)"""

    token: int
    attempt: int
    task: Mapping[str, Any]
    task_id: Hashable = None


@attrs.frozen
class AgentRegistration:
    """What a coordinator needs to know of an agent to dispatch to it."""

    agent_id: Hashable
    capabilities: frozenset[Hashable]
    concurrency: int


@attrs.frozen
class AgentSettings:
    """The coordinator's settings that an agent's loops run by (a worker in another process
    takes them from its transport, so it needs no timing flags of its own)."""

    heartbeat_interval: float
    heartbeat_timeout: float
    task_timeout: float | None


C = TypeVar("C", bound=type)


def implements(*protocols: type) -> Callable[[C], C]:
    """Class decorator: a method of the class that has no docstring of its own takes the
    one of the same method in ``protocols``, so an implementation documents what it does
    in one place (the protocol) and the API reference shows it on both."""

    def decorate(cls: C) -> C:
        for name, value in vars(cls).items():
            if name.startswith("_") or not callable(value) or value.__doc__:
                continue
            for protocol in protocols:
                doc = getattr(getattr(protocol, name, None), "__doc__", None)
                if doc:
                    value.__doc__ = doc
                    break
        return cls

    return decorate


class CoordinatorLink(Protocol):
    """What an agent can tell its coordinator. Reports quote the assignment's token.

    A link may also have ``report_result_and_next(token, result) -> WorkItem | None``:
    ``report_result`` that returns the agent's next assignment rather than delivering it
    to the work inbox. An agent's work loop uses it when the link has it (the in-memory
    transport's does, over :attr:`Inbound.result_and_next`): it saves a channel send and
    receive per task.
    """

    def report_result(self, token: int, result: Any) -> None:
        """The attempt under ``token`` returned ``result``."""

    def report_failure(self, token: int, error: BaseException) -> None:
        """The attempt under ``token`` raised ``error`` (a ``TaskRejected``: the task is at
        fault, so it fails at once)."""

    def report_timeout(self, token: int, error: TimeoutError) -> None:
        """The attempt overran the coordinator's ``task_timeout`` and was cancelled."""

    def hand_back(self, token: int) -> None:
        """An assignment not started (the agent is leaving) or revoked: no attempt counts."""

    def heartbeat(self) -> None:
        """The agent is alive (its ``heartbeat()`` returned)."""

    async def send_message(self, message: Message) -> None:
        """Route ``message`` to its receiver's ``on_message``."""

    async def request(self, capability: Hashable, task: Mapping[str, Any]) -> Any:
        """Delegate ``task`` to another agent with ``capability``; return its result."""


class RequestCallable(Protocol):
    """The type of :attr:`Inbound.request` (positional arguments, ``waiter`` optional)."""

    def __call__(
        self,
        requester: Hashable,
        capability: Hashable,
        task: Mapping[str, Any],
        waiter: int = 0,
        /,
    ) -> Awaitable[Any]: ...


@final
@attrs.frozen
class Inbound:
    """The coordinator, as its transport reaches it: one callable per kind of news.

    ``register`` raises ``ValueError`` for an id that is online already; every report for
    an unknown agent or under a superseded token is discarded (and counted as stale), so a
    transport may pass on whatever arrives.
    """

    register: Callable[[AgentRegistration], None]
    """An agent announced itself (a worker process started, or came back)."""
    leave: Callable[[Hashable], None]
    """The agent is leaving: it gets no new work and goes offline once its work is back."""
    result: Callable[[Hashable, int, Any], None]
    failure: Callable[[Hashable, int, BaseException], None]
    timeout: Callable[[Hashable, int, TimeoutError], None]
    hand_back: Callable[[Hashable, int], None]
    heartbeat: Callable[[Hashable], None]
    send_message: Callable[[Message], Awaitable[None]]
    """Route an agent's message to its receiver (raises for an unknown or offline one)."""
    request: RequestCallable
    """``request(requester_id, capability, task, waiter=0)``: run a delegated task, return
    its result (cancelling the call cancels the task). ``waiter`` is the fencing token of
    the requester's attempt that waits for the result, when the transport knows it
    (:meth:`AgentEndpoint.current_attempt` tells it on the agent's side); with it the
    coordinator can tell a request that can never be served, because every agent that may
    take it waits on the requester (a delegation deadlock), from one that waits its turn.
    ``0``: not known, or not made from an attempt."""
    result_and_next: Callable[[Hashable, int, Any], WorkItem | None] | None = None
    """A fast path for transports whose agents run in the coordinator's own trio run:
    ``result(agent_id, token, result)``, returning the agent's next assignment instead of
    delivering it with ``deliver_work`` (``None``: no assignment for it now, or one that went
    out through ``deliver_work``). Other transports need not use it."""


@final
class _WorkSlot:
    """What one of an agent's work loops is doing: the token of the attempt it runs (0 when
    none) and the cancel scope around it, so that attempt alone can be revoked.
    ``revoked`` says that scope was cancelled: reading it costs nothing, where the scope's
    ``cancel_called`` reads the clock. ``task`` is the work loop's trio task."""

    __slots__ = ("revoked", "scope", "task", "token")

    def __init__(self) -> None:
        self.token = 0
        self.scope: trio.CancelScope | None = None
        self.revoked = False
        self.task = trio.lowlevel.current_task()


@final
@attrs.define(eq=False)
class AgentEndpoint:
    """An agent's end of a transport: its two inboxes, its link back, its settings.

    ``draining`` is set by the transport when the agent is leaving: the agent then hands
    back what it receives instead of starting it. ``revoked`` holds the tokens of
    assignments revoked before any work loop started them (still in the work inbox, or
    just handed back by ``report_result_and_next``): they are handed back, not started.
    """

    agent_id: Hashable
    work: trio.MemoryReceiveChannel[WorkItem]
    messages: trio.MemoryReceiveChannel[Message]
    link: CoordinatorLink
    settings: AgentSettings
    draining: bool = False
    revoked: set[int] = attrs.field(init=False, factory=set)
    _slots: list[_WorkSlot] = attrs.field(init=False, factory=list)

    def work_slot(self) -> _WorkSlot:
        """A slot for one work loop (the agent's side calls it once per loop, from the
        loop's own trio task)."""
        slot = _WorkSlot()
        self._slots.append(slot)
        return slot

    def current_attempt(self) -> int:
        """The fencing token of the attempt that the calling code runs in (the agent's
        ``process_task``, or a task it started), or 0 when it runs in none (an
        ``on_message`` handler, say). Found by walking up from the current trio task to
        one of the agent's work loops: O(nesting depth), and nothing per attempt."""
        loops = {slot.task: slot for slot in self._slots}
        task: trio.lowlevel.Task | None = trio.lowlevel.current_task()
        while task is not None:
            slot = loops.get(task)
            if slot is not None:
                return slot.token
            nursery = task.parent_nursery
            task = None if nursery is None else nursery.parent_task
        return 0

    def revoke(self, token: int) -> bool:
        """Cancel the attempt ``token`` if a work loop is running it, or see that none
        starts it; either way the loop hands it back. Returns whether it was running.
        O(concurrency), and nothing at all per attempt that is not revoked."""
        for slot in self._slots:
            if slot.token == token and slot.scope is not None:
                slot.revoked = True
                slot.scope.cancel()
                return True
        self.revoked.add(token)
        return False


@runtime_checkable
class Transport(Protocol):
    """What a coordinator needs from a transport. See the module docstring."""

    async def start(self, inbound: Inbound, nursery: trio.Nursery, settings: AgentSettings) -> None:
        """Bind to a coordinator (once) and start any background tasks in ``nursery``, which
        is the coordinator's: they are cancelled when it finishes. Called before the
        coordinator's block body runs."""

    def check_task(self, task: Mapping[str, Any]) -> None:
        """Raise ``TypeError`` if this transport cannot carry ``task`` (called at submit)."""

    def attach(self, registration: AgentRegistration) -> AgentEndpoint:
        """An endpoint for an agent object of this process (``coord.connect(agent)``),
        replacing any previous one of that id (a restart).

        Raises:
            TypeError: this transport serves only agents that register themselves.
        """

    def deliver_work(self, agent_id: Hashable, item: WorkItem) -> None:
        """Queue an assignment for the agent. Never blocks: the coordinator never gives an
        agent more than its ``concurrency`` assignments at once."""

    def revoke(self, agent_id: Hashable, token: int) -> None:
        """The assignment ``token`` no longer counts (its task was cancelled): ask the agent
        to stop it. The agent still reports it (``hand_back``), which frees its slot."""

    async def deliver_message(self, agent_id: Hashable, message: Message) -> None:
        """Put ``message`` in the agent's inbox, waiting while it is full.

        Raises:
            AgentUnavailableError: the agent is detached (or its inbox is gone).
        """

    def drain(self, agent_id: Hashable) -> None:
        """The agent is leaving: it should hand back assignments it has not started."""

    def detach(self, agent_id: Hashable) -> None:
        """The agent is offline for the coordinator: deliver nothing more to it, and let it
        know its assignments are void. (Idempotent; unknown ids are ignored.)"""

    def close(self) -> None:
        """The coordinator has finished (every task of its nursery has exited)."""
