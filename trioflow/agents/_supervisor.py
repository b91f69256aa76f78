"""Agent lifecycle: connect, supervise, restart, watch heartbeats, disconnect.

The :class:`Supervisor` keeps one :class:`Member` record per agent and owns everything that
happens to an agent as a whole; what happens to tasks is the coordinator's. An agent is one
of two kinds:

* **local**: an :class:`~trioflow.agents.Agent` object connected with ``coord.connect``. It
  runs in the coordinator's nursery under a supervising task (:meth:`Supervisor._supervise`)
  and in a cancel scope of its own, which is what taking it offline cancels. With a
  :class:`~trioflow.agents.RestartPolicy`, the supervising task restarts it after a crash
  or a silence, with backoff, while the policy's intensity allows.
* **remote**: an agent that registered itself through the transport (a worker process). It
  has no task here: the coordinator knows it by its heartbeats and reports only. Taking it
  offline detaches it from the transport (its assignments are void; late reports carry
  tokens that no longer count); restarting it is its worker's business, and it is back
  when it registers again.

Going offline (:meth:`Supervisor.take_offline`) is one synchronous step, whoever causes it
(a crash, the heartbeat monitor, a completed disconnect): the dispatcher reassigns the
agent's work, the transport detaches it, its scope is cancelled, and the restart decision is
made *at that moment*, so that the coordinator, when it looks for work nobody can ever run
(after its block has ended), already counts an agent about to restart as able to run it.

**Containment.** An agent's loops run user code. Whatever the agent's nursery raises is
split: the ``Exception`` part is the agent's crash (it goes offline; the coordinator and the
other agents carry on), and only ``Cancelled`` and other base exceptions propagate. A
crash that coincides with the agent being cancelled (an exception group that mixes the two)
is therefore contained like any other crash: the ``Cancelled`` part is absorbed by the
agent's own scope, or goes on to the coordinator's nursery if that is what is being
cancelled.

**The heartbeat monitor** (:meth:`Supervisor.monitor`) is one task that takes agents that
stay silent for ``heartbeat_timeout`` offline. It must not blame an agent for the event
loop's own stalls: while the loop is held up by a long synchronous stretch (a huge batch of
work, a blocking call, the process being descheduled), heartbeat loops cannot run either.
So the monitor watches the loop as well as the agents. It wakes at the next moment an agent
would have been silent for ``heartbeat_timeout``, and in any case every *tick* (half of
the smaller of ``heartbeat_interval`` and ``heartbeat_timeout - heartbeat_interval``). A
wake-up more than a fifth of a tick late means the loop was stalled, and then every agent
gets one more heartbeat interval, from that moment, before anyone is declared silent.

Why a tick, and not only the deadlines: a stall that ends just after an agent's deadline
(say the loop is held from just before the agent's due beat until just after the deadline)
makes the monitor wake only a little late at that deadline, in the same scheduler batch as
the agent's heartbeat loop, which needs one more batch to report. Waking every tick, the
monitor is late by at least the stall's length less a tick, so any stall longer than
about 1.2 ticks is noticed. A stall it does not notice delays a heartbeat by less than
that, which is less than the slack ``heartbeat_timeout - heartbeat_interval`` (two ticks at
least): no healthy agent misses its deadline for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Final, final

import attrs
import trio

from .._errors import AgentGone, SchedulerClosedError
from .._validate import check_int
from ._agent import Agent, AgentHost, runs_below
from ._dispatch import AgentRecord, Dispatcher, Outcome
from ._records import EventKind
from ._supervision import RestartBudget, RestartPolicy
from .transport._protocol import AgentEndpoint, AgentRegistration, AgentSettings, Transport

__all__ = ["Member", "Supervisor"]

_AGENT_ONLINE: Final = EventKind.AGENT_ONLINE
_AGENT_OFFLINE: Final = EventKind.AGENT_OFFLINE
_AGENT_RESTARTED: Final = EventKind.AGENT_RESTARTED

#: ``publish(kind, agent_id, error)``: an agent event for the coordinator's subscribers.
PublishAgentEvent = Callable[[EventKind, Hashable, BaseException | None], None]


@attrs.define(eq=False)
class Member:
    """One agent of a coordinator: everything its lifecycle needs, in one record."""

    registration: AgentRegistration
    state: AgentRecord
    """The dispatcher's record: online, draining, in flight, counters, last heartbeat."""
    agent: Agent | None
    """The agent object; ``None`` for an agent that registered itself through the transport."""
    budget: RestartBudget | None = None
    scope: trio.CancelScope | None = None
    """Cancels the running agent, or the wait before its restart."""
    task: trio.lowlevel.Task | None = None
    """The trio task that supervises a local agent (its loops run below it)."""
    restarts: int = 0
    restart_delay: float | None = None
    """Set when it went offline with a restart to come; ``None``: it stays offline."""
    leaving: bool = False
    """It asked to leave: it takes no new work and is never restarted."""
    drained: trio.Event | None = None
    """Set when it goes offline (or the coordinator finishes), for the ``disconnect()``
    calls waiting for its work to finish."""

    @property
    def id(self) -> Hashable:
        return self.registration.agent_id


@final
class Supervisor:
    """The agents of one coordinator, from connect to disconnect.

    Args:
        nursery: the coordinator's; local agents run in it.
        owner: the coordinator, as agents see it (``agent.coordinator``).
        dispatcher: the coordinator's pure decider, told of every change of an agent.
        transport: how agents are reached.
        settings: heartbeat interval and timeout, task timeout.
        restart: restart policy for local agents, or ``None``.
        apply: the coordinator's way of carrying out an :class:`Outcome`.
        publish: the coordinator's way of publishing an agent event.
        fail_stranded: called whenever an agent goes (for good, or to leave), so the
            coordinator can fail work that nobody can run any more.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        owner: AgentHost,
        dispatcher: Dispatcher,
        transport: Transport,
        settings: AgentSettings,
        restart: RestartPolicy | None,
        *,
        apply: Callable[[Outcome], None],
        publish: PublishAgentEvent,
        fail_stranded: Callable[[], None],
    ) -> None:
        self._nursery = nursery
        self._owner = owner
        self._dispatch = dispatcher
        self._transport = transport
        self._settings = settings
        self._restart = restart
        self._apply = apply
        self._publish = publish
        self._fail_stranded = fail_stranded
        self._now = trio.lowlevel.current_clock().current_time
        self.members: dict[Hashable, Member] = {}
        #: Members draining towards a disconnect: checked after each report of theirs.
        self.leaving: dict[Hashable, Member] = {}
        self.heartbeats_missed = 0
        self.closed = False
        self._wakeup = trio.Event()

    # -- joining --------------------------------------------------------------------------------

    async def connect(self, agent: Agent) -> None:
        """Register a local agent and start it, supervised, in the coordinator's nursery.

        All or nothing: the agent is registered by its supervising task's first step,
        before it reports itself started, so a connect that fails (the coordinator shutting
        down meanwhile, say) has registered nothing, and one that succeeds has an agent
        that runs. Once the coordinator's nursery is being cancelled (its block has ended
        and its work is done, or the block raised or was cancelled), connecting is refused:
        an agent started then would only be cancelled, and a task that kept connecting
        agents would keep the nursery from ever closing.

        Raises:
            SchedulerClosedError: the coordinator has finished, or is shutting down.
            TypeError: not an :class:`Agent`.
            RuntimeError: the agent is connected already.
            ValueError: another agent has its id.
        """
        self._check_joining(agent)
        try:
            await self._nursery.start(self._supervise, agent)
        except RuntimeError:
            if self._closing or self.closed:  # the nursery closed to new arrivals meanwhile
                raise SchedulerClosedError("the coordinator has finished") from None
            raise

    def _check_joining(self, agent: Agent) -> None:
        if self.closed:
            raise SchedulerClosedError("the coordinator has finished")
        if self._closing:
            raise SchedulerClosedError("the coordinator is shutting down")
        if not isinstance(agent, Agent):
            raise TypeError(f"connect takes an Agent, got {agent!r}")
        if agent.coordinator is not None:
            raise RuntimeError(f"agent {agent.id!r} is already connected")
        if agent.id in self.members:
            raise ValueError(f"an agent with id {agent.id!r} is already registered")

    @property
    def _closing(self) -> bool:
        """The coordinator's nursery is being cancelled: its work is done (or the block
        raised, or was cancelled) and it is stopping every agent."""
        return self._nursery.cancel_scope.cancel_called

    def _join(self, agent: Agent) -> tuple[Member, AgentEndpoint]:
        """Register a local agent (synchronously: the first step of its supervising task)."""
        self._check_joining(agent)  # again: another task may have changed things meanwhile
        registration = AgentRegistration(agent.id, agent.capabilities, agent.concurrency)
        endpoint = self._transport.attach(registration)
        outcome = self._dispatch.register(
            agent.id, agent.capabilities, agent.concurrency, self._now()
        )
        budget = None if self._restart is None else RestartBudget(self._restart)
        member = Member(registration, self._dispatch.agents[agent.id], agent, budget)
        self.members[agent.id] = member
        agent.coordinator = self._owner
        self._came_online(member, _AGENT_ONLINE, outcome)
        return member, endpoint

    def register(self, registration: AgentRegistration) -> None:
        """An agent registered itself through the transport (or came back after going
        offline, with the same capabilities and concurrency).

        Raises:
            SchedulerClosedError: the coordinator has finished.
            TypeError, ValueError: a malformed registration, or one for an id that is
                online, local, or registered with other capabilities.
        """
        if self.closed:
            raise SchedulerClosedError("the coordinator has finished")
        if not isinstance(registration, AgentRegistration):
            raise TypeError(f"register takes an AgentRegistration, got {registration!r}")
        agent_id = registration.agent_id
        check_int("concurrency", registration.concurrency, minimum=1)
        member = self.members.get(agent_id)
        if member is None:
            outcome = self._dispatch.register(
                agent_id, registration.capabilities, registration.concurrency, self._now()
            )
            member = Member(registration, self._dispatch.agents[agent_id], None)
            self.members[agent_id] = member
            self._came_online(member, _AGENT_ONLINE, outcome)
            return
        if member.agent is not None or member.state.online:
            raise ValueError(f"an agent with id {agent_id!r} is already registered")
        if member.registration != registration:
            raise ValueError(f"agent {agent_id!r} came back with other capabilities or concurrency")
        member.leaving = False
        self._came_online(member, _AGENT_ONLINE, self._dispatch.set_online(agent_id, self._now()))

    def _came_online(self, member: Member, kind: EventKind, outcome: Outcome) -> None:
        self._publish(kind, member.id, None)
        self._wakeup.set()  # the monitor may be idle, with no online agent to watch
        self._apply(outcome)

    # -- running a local agent ------------------------------------------------------------------

    async def _supervise(
        self,
        agent: Agent,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Register a local agent and run it; when it stops, restart it if a restart was
        planned. Nothing awaits before ``started()``: registering and starting are one
        step, and an error in registering goes to ``connect``'s caller."""
        member, endpoint = self._join(agent)
        member.task = trio.lowlevel.current_task()
        task_status.started()
        while True:
            with trio.CancelScope() as scope:
                member.scope = scope
                try:
                    await agent._run(endpoint)
                except BaseException as exc:
                    crash, propagate = _contain(exc)
                    if crash is not None:
                        self._crashed(member, crash)
                    if propagate is exc:
                        raise
                    if propagate is not None:
                        raise propagate from None
            member.scope = None
            if member.state.online:
                # Its loops all ended without an error: only closing its inboxes does that.
                self.take_offline(member, AgentGone(f"agent {member.id!r} stopped"))
            delay = member.restart_delay
            if delay is None:
                return
            with trio.CancelScope() as scope:
                member.scope = scope
                await trio.sleep(delay)
            member.scope = None
            member.restart_delay = None
            if scope.cancelled_caught or member.leaving or self.closed:
                self._fail_stranded()  # the restart it was counted on is off
                return
            endpoint = self._transport.attach(member.registration)
            member.restarts += 1
            outcome = self._dispatch.set_online(member.id, self._now())
            self._came_online(member, _AGENT_RESTARTED, outcome)

    def _crashed(self, member: Member, error: BaseException) -> None:
        crash = AgentGone(f"agent {member.id!r} crashed: {_innermost(error)!r}")
        crash.__cause__ = error
        self.take_offline(member, crash)

    # -- leaving ----------------------------------------------------------------------------------

    def take_offline(self, member: Member, error: BaseException) -> None:
        """Declare the agent gone: reassign its work, detach it, cancel it, and decide now
        whether it will be restarted. Idempotent."""
        if not member.state.online:
            return
        now = self._now()
        outcome = self._dispatch.set_offline(member.id, error, now)
        self._transport.detach(member.id)
        if member.scope is not None:
            member.scope.cancel()
        if member.budget is not None and not member.leaving and not self.closed:
            member.restart_delay = member.budget.next_delay(now)
        self.leaving.pop(member.id, None)
        if member.leaving and member.agent is not None:
            member.agent.coordinator = None
        self._release_drained(member)
        self._publish(_AGENT_OFFLINE, member.id, error)
        self._apply(outcome)
        self._fail_stranded()

    async def disconnect(self, agent: Agent) -> None:
        """Let a local agent leave: no new work, hand back what it has not started, finish
        what it has, then go offline (never to be restarted). Waits for that, unless called
        from inside the agent's own work, which it would then wait for forever.

        Raises:
            RuntimeError: the agent is not connected to this coordinator.
        """
        member = self.members.get(getattr(agent, "id", None))
        if member is None or member.agent is not agent:
            raise RuntimeError(f"agent {getattr(agent, 'id', agent)!r} is not connected here")
        member.leaving = True
        if member.state.online:
            self._begin_leaving(member)
            if member.state.online and not runs_below(member.task):
                # One event for every caller waiting for this agent to leave.
                if member.drained is None:
                    member.drained = trio.Event()
                await member.drained.wait()
                return
        elif member.restart_delay is not None:
            # Offline, waiting to be restarted: it stays offline now.
            member.restart_delay = None
            if member.scope is not None:
                member.scope.cancel()
            agent.coordinator = None
            self._fail_stranded()
        else:
            agent.coordinator = None
        await trio.lowlevel.checkpoint()

    @staticmethod
    def _release_drained(member: Member) -> None:
        """Wake every ``disconnect()`` waiting for the agent to leave."""
        if member.drained is not None:
            member.drained.set()
            member.drained = None

    def leave(self, agent_id: Hashable) -> None:
        """An agent asked, through the transport, to leave (it drains, then goes offline)."""
        member = self.members.get(agent_id)
        if member is not None and member.state.online:
            member.leaving = True
            self._begin_leaving(member)

    def _begin_leaving(self, member: Member) -> None:
        self._dispatch.set_draining(member.id)
        self._transport.drain(member.id)
        if member.state.in_flight:
            self.leaving[member.id] = member
            self._fail_stranded()  # it takes no new work: a request may be left unserved
        else:
            self.take_offline(member, AgentGone(f"agent {member.id!r} left"))

    def check_drained(self, agent_id: Hashable) -> None:
        """After a report: a leaving agent whose work is all back goes offline."""
        member = self.leaving.get(agent_id)
        if member is not None and not member.state.in_flight:
            self.take_offline(member, AgentGone(f"agent {agent_id!r} left"))

    # -- heartbeats -------------------------------------------------------------------------------

    async def monitor(self) -> None:
        """Take agents that stay silent for ``heartbeat_timeout`` offline (see the module
        docstring for how it avoids blaming agents for the loop's own stalls)."""
        dispatch = self._dispatch
        timeout = self._settings.heartbeat_timeout
        interval = self._settings.heartbeat_interval
        tick = min(interval, timeout - interval) / 2
        on_time = tick / 5
        grace_until = -math.inf
        while True:
            deadline = dispatch.next_silence_deadline(timeout)
            if deadline is None:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            due = max(deadline, grace_until)
            wake = min(due, self._now() + tick)
            await trio.sleep_until(wake)
            now = self._now()
            if now - wake > on_time:
                # The loop was held up: nobody could beat. One interval for everyone.
                grace_until = now + interval
                continue
            if now < due:
                continue
            for agent_id in dispatch.silent_agents(now, timeout):
                self.heartbeats_missed += 1
                self.take_offline(
                    self.members[agent_id],
                    AgentGone(f"agent {agent_id!r} sent no heartbeat for {timeout} s"),
                )

    # -- for the coordinator ----------------------------------------------------------------------

    def restarting_agents(self) -> set[Hashable]:
        """The agents that are offline now but will be restarted."""
        return {member.id for member in self.members.values() if member.restart_delay is not None}

    def restarting_capabilities(self) -> set[Hashable]:
        """The capabilities of the agents that are offline now but will be restarted."""
        caps: set[Hashable] = set()
        for member in self.members.values():
            if member.restart_delay is not None:
                caps |= member.registration.capabilities
        return caps

    @property
    def restarts(self) -> int:
        return sum(member.restarts for member in self.members.values())

    def close(self) -> None:
        """The coordinator has finished: nothing restarts or connects any more."""
        self.closed = True
        for member in self.members.values():
            member.restart_delay = None
            # Its agent was cancelled with the coordinator: it has left, for a caller of
            # disconnect() outside the coordinator's block as for anyone.
            self._release_drained(member)
            if member.agent is not None and member.agent.coordinator is self._owner:
                member.agent.coordinator = None


def _contain(error: BaseException) -> tuple[BaseException | None, BaseException | None]:
    """``(the agent's crash, what must propagate)``: the ``Exception`` part of ``error`` is
    the agent's own failure; ``Cancelled`` and other base exceptions go on up."""
    if isinstance(error, Exception):
        return error, None
    if isinstance(error, BaseExceptionGroup):
        return error.split(Exception)
    return None, error


def _innermost(error: BaseException) -> BaseException:
    """The error inside the nursery's single-exception groups, for a readable message."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
