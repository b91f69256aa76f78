"""The transport seam: transport= of open_coordinator, and a transport to agents elsewhere.

``Remote`` stands for a transport to agents in other processes: the coordinator never sees
an agent object, only registrations, reports and heartbeats by id, all arriving from the
transport's own background tasks, as a broker's readers would deliver them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Mapping
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from trioflow.agents import (
    Agent,
    AgentGone,
    AgentUnavailableError,
    AssignmentStatus,
    InMemoryTransport,
    Message,
    MessageType,
    RedisTransport,
    Transport,
    open_coordinator,
)
from trioflow.agents.transport import (
    AgentEndpoint,
    AgentRegistration,
    AgentSettings,
    Inbound,
    WorkItem,
)


class Remote:
    """A transport whose agents live "elsewhere": a worker task per agent answers its work
    after ``seconds``, and beats while ``alive[agent_id]``."""

    def __init__(self, agents: dict[str, float]) -> None:
        self.seconds = agents
        self.alive = dict.fromkeys(agents, True)
        self.detached: list[Hashable] = []
        self.revoked: list[tuple[Hashable, int]] = []
        self.settings: AgentSettings | None = None
        self.closed = False
        self._inbound: Inbound | None = None
        self._queues: dict[Hashable, trio.MemorySendChannel[WorkItem]] = {}

    async def start(self, inbound: Inbound, nursery: trio.Nursery, settings: AgentSettings) -> None:
        self._inbound, self.settings = inbound, settings
        for agent_id in self.seconds:
            send, receive = trio.open_memory_channel[WorkItem](math.inf)
            self._queues[agent_id] = send
            nursery.start_soon(self._worker, agent_id, receive)
            inbound.register(AgentRegistration(agent_id, frozenset({"remote"}), 1))
        nursery.start_soon(self._heartbeats)
        await trio.lowlevel.checkpoint()

    def check_task(self, task: Mapping[str, Any]) -> None:
        json.dumps(dict(task), default=str)  # raises TypeError for what JSON cannot carry
        if any(not isinstance(v, (str, int, float, bool, type(None))) for v in task.values()):
            raise TypeError(f"task is not serializable: {task!r}")

    def attach(self, registration: AgentRegistration) -> AgentEndpoint:
        raise TypeError("this transport serves only agents that register themselves")

    def deliver_work(self, agent_id: Hashable, item: WorkItem) -> None:
        self._queues[agent_id].send_nowait(item)

    def revoke(self, agent_id: Hashable, token: int) -> None:
        self.revoked.append((agent_id, token))

    async def deliver_message(self, agent_id: Hashable, message: Message) -> None:
        await trio.lowlevel.checkpoint()
        raise AgentUnavailableError(agent_id)

    def drain(self, agent_id: Hashable) -> None:
        pass

    def detach(self, agent_id: Hashable) -> None:
        self.detached.append(agent_id)

    def close(self) -> None:
        self.closed = True

    async def _worker(self, agent_id: str, work: trio.MemoryReceiveChannel[WorkItem]) -> None:
        assert self._inbound is not None
        async for item in work:
            await trio.sleep(self.seconds[agent_id])
            self._inbound.result(agent_id, item.token, {"by": agent_id, "n": item.task["n"]})

    async def _heartbeats(self) -> None:
        assert self._inbound is not None and self.settings is not None
        while True:
            for agent_id, alive in self.alive.items():
                if alive:
                    self._inbound.heartbeat(agent_id)
            await trio.sleep(self.settings.heartbeat_interval)


def job(n: int) -> dict[str, Any]:
    return {"type": "remote", "n": n}


def test_both_transports_implement_the_protocol() -> None:
    assert isinstance(InMemoryTransport(), Transport)
    assert isinstance(Remote({}), Transport)


async def test_agents_that_register_through_the_transport_get_work(
    autojump_clock: MockClock,
) -> None:
    remote = Remote({"r1": 1.0, "r2": 1.0})
    start = trio.current_time()
    async with open_coordinator(transport=remote, task_timeout=30) as coord:
        assert coord.transport is remote
        assert {a.id: a.status for a in coord.agents.values()} == {"r1": "idle", "r2": "idle"}
        results = await coord.run_all([job(n) for n in range(4)])
    assert trio.current_time() - start == 2.0
    assert [r["n"] for r in results] == [0, 1, 2, 3]
    assert {r["by"] for r in results} == {"r1", "r2"}
    assert remote.settings == AgentSettings(1.0, 3.0, 30.0)
    assert remote.closed


async def test_a_remote_agent_that_goes_silent_loses_its_work(autojump_clock: MockClock) -> None:
    remote = Remote({"dies": 10.0, "lives": 1.0})
    async with open_coordinator(transport=remote) as coord:
        handle = coord.submit(job(1))
        assert handle.agent_id == "dies"  # registered first: idle longest
        remote.alive["dies"] = False
        assert (await handle.wait())["by"] == "lives"
        assert coord.agents["dies"].status == "offline"
        assert remote.detached == ["dies"]
        assert isinstance(handle.errors[0], AgentGone)
        await trio.sleep(20)  # the silent worker still answers at t=10: too late
    assert coord.stats().stale_results == 1 and coord.stats().completed == 1


async def test_a_remote_agent_can_come_back_by_registering_again(
    autojump_clock: MockClock,
) -> None:
    remote = Remote({"r": 1.0})
    async with open_coordinator(transport=remote) as coord:
        remote.alive["r"] = False
        await trio.sleep(4)
        assert coord.agents["r"].status == "offline"
        handle = coord.submit(job(1))
        assert handle.status is AssignmentStatus.QUEUED
        remote.alive["r"] = True
        assert remote._inbound is not None
        remote._inbound.register(AgentRegistration("r", frozenset({"remote"}), 1))
        assert (await handle.wait())["by"] == "r"
        with pytest.raises(ValueError, match="already registered"):
            remote._inbound.register(AgentRegistration("r", frozenset({"remote"}), 1))


async def test_a_remote_agent_can_leave(autojump_clock: MockClock) -> None:
    remote = Remote({"leaver": 2.0, "stayer": 2.0})
    async with open_coordinator(transport=remote) as coord:
        first, second, third = (coord.submit(job(n)) for n in range(3))
        assert remote._inbound is not None
        remote._inbound.leave("leaver")  # it finishes what it has, takes nothing new
        await first.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert coord.agents["leaver"].status == "offline"
        await third.wait()
    assert {h.agent_id for h in (first, second, third)} == {"leaver", "stayer"}
    assert third.agent_id == "stayer" and first.attempts == 1


async def test_the_transport_can_refuse_a_task_at_submit(autojump_clock: MockClock) -> None:
    remote = Remote({"r": 1.0})
    async with open_coordinator(transport=remote) as coord:
        with pytest.raises(TypeError, match="not serializable"):
            coord.submit({"type": "remote", "n": object()})
        assert coord.stats().submitted == 0


async def test_a_transport_for_remote_agents_may_refuse_local_ones(
    autojump_clock: MockClock,
) -> None:
    class Local(Agent):
        async def process_task(self, task: Any) -> Any:
            return None

    async with open_coordinator(transport=Remote({"r": 1.0})) as coord:
        local = Local("local", {"remote"})
        with pytest.raises(TypeError, match="only agents that register themselves"):
            await local.connect(coord)
        assert local.coordinator is None and "local" not in coord.agents


async def test_cancelling_an_assigned_task_revokes_it_through_the_transport(
    autojump_clock: MockClock,
) -> None:
    remote = Remote({"r": 5.0})
    async with open_coordinator(transport=remote) as coord:
        handle = coord.submit(job(1))
        handle.cancel()
        assert coord.agents["r"].in_flight == 1  # until the agent answers for it
        await trio.sleep(10)
        assert coord.agents["r"].in_flight == 0
    assert remote.revoked == [("r", 1)]
    assert handle.status is AssignmentStatus.CANCELLED
    assert coord.stats().stale_results == 1  # its late answer was discarded


async def test_an_explicit_in_memory_transport(autojump_clock: MockClock) -> None:
    class Echo(Agent):
        async def process_task(self, task: Any) -> Any:
            return task["n"]

    transport = InMemoryTransport(inbox_size=1)
    async with open_coordinator(transport=transport) as coord:
        await Echo("e", {"echo"}).connect(coord)
        assert await coord.run_all([{"type": "echo", "n": 1}]) == [1]
    with pytest.raises(RuntimeError, match="already in use"):
        async with open_coordinator(transport=transport):
            pass


async def test_inbox_size_belongs_to_the_default_transport() -> None:
    with pytest.raises(ValueError, match="inbox_size"):
        async with open_coordinator(transport=InMemoryTransport(), inbox_size=5):
            pass


async def test_a_full_inbox_makes_the_sender_wait(autojump_clock: MockClock) -> None:
    class Slow(Agent):
        def __init__(self, agent_id: str) -> None:
            super().__init__(agent_id, {"x"})
            self.got: list[Any] = []

        async def on_message(self, message: Message) -> None:
            await trio.sleep(1)
            self.got.append(message.content)

    start = trio.current_time()
    slow, sender = Slow("slow"), Slow("sender")
    async with open_coordinator(inbox_size=1) as coord:
        await slow.connect(coord)
        await sender.connect(coord)
        for n in range(3):  # one being handled, one in the inbox, the third waits
            await sender.send_message(Message(MessageType.AGENT_STATUS, "sender", "slow", n))
        assert trio.current_time() - start == 1.0
        await trio.sleep(5)
    assert slow.got == [0, 1, 2]


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("notaurl", ValueError, "not a Redis URL"),
        ("localhost:6379", ValueError, "not a Redis URL"),
        ("http://127.0.0.1:6379", ValueError, "not a Redis URL"),
        (6379, TypeError, "url must be a string"),
    ],
)
def test_a_redis_transport_checks_its_url_when_made(
    url: object, error: type[Exception], message: str
) -> None:
    """Checked up front: coredis would fail only when it first connects, with a bare
    AssertionError. (No server is needed: nothing connects.)"""
    with pytest.raises(error, match=message):
        RedisTransport(url)  # type: ignore[arg-type]


def test_a_redis_transport_takes_the_urls_coredis_takes() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://user:pw@host:6380", "unix:///tmp/r.sock"):
        assert RedisTransport(url).url == url
