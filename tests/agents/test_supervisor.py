"""Agent lifecycle (the supervisor): containment, restarts, leaving, the heartbeat monitor."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from trioflow import EventChannel, SchedulerClosedError, TaskFailed
from trioflow.agents import (
    Agent,
    AgentGone,
    AssignmentStatus,
    RestartPolicy,
    open_coordinator,
)


class Worker(Agent):
    def __init__(self, agent_id: str, seconds: float = 1.0, caps: frozenset = frozenset({"work"})):
        super().__init__(agent_id, caps)
        self.seconds = seconds
        self.done: list[Any] = []

    async def process_task(self, task: Any) -> Any:
        await trio.sleep(self.seconds)
        self.done.append(task.get("n"))
        return (self.id, task.get("n"))


def work(n: int) -> dict[str, Any]:
    return {"type": "work", "n": n}


class HeartbeatCrashesAt(Worker):
    """Its heartbeat raises once, at the first beat at or after ``at`` (virtual seconds)."""

    def __init__(self, agent_id: str, at: float, **kwargs: Any) -> None:
        super().__init__(agent_id, **kwargs)
        self.at = at
        self.crashed = False

    async def heartbeat(self) -> None:
        if not self.crashed and trio.current_time() >= self.at:
            self.crashed = True
            raise OSError("heartbeat failed")


# -- containment ------------------------------------------------------------------------------


async def test_a_crash_during_the_agents_own_cancellation_is_contained(
    autojump_clock: MockClock,
) -> None:
    """The monitor cancels a silent agent whose task nursery then raises a group that mixes
    Cancelled with a real error: that agent is gone, nothing else is."""

    class MessyCleanup(Worker):
        async def heartbeat(self) -> None:
            if trio.current_time() >= 0.5:
                await trio.sleep_forever()

        async def process_task(self, task: Any) -> Any:
            async def fails_when_cancelled() -> None:
                try:
                    await trio.sleep_forever()
                finally:
                    raise RuntimeError("cleanup failed")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(fails_when_cancelled)
                nursery.start_soon(trio.sleep_forever)

    messy, spare, bystander = MessyCleanup("messy"), Worker("spare"), Worker("other", 5)
    async with open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5) as coord:
        await messy.connect(coord)
        handle = coord.submit(work(1))
        await spare.connect(coord)
        other = coord.submit({"type": "work", "n": 2})  # spare is idle: it takes this one
        await bystander.connect(coord)
        assert await other.wait() == ("spare", 2)
        assert (await handle.wait())[1] == 1  # finished elsewhere, once
        assert handle.agent_id in ("spare", "other")
    assert coord.agents["messy"].status == "offline"
    assert isinstance(handle.errors[0], AgentGone)


async def test_a_crash_of_the_agents_own_loop_alone_is_contained(
    autojump_clock: MockClock,
) -> None:
    async with open_coordinator() as coord:
        await HeartbeatCrashesAt("crashy", at=0.5).connect(coord)
        await Worker("fine").connect(coord)
        results = await coord.run_all([work(n) for n in range(4)])
    assert len(results) == 4
    assert coord.agents["crashy"].status == "offline"
    assert coord.agents["fine"].status == "idle"


# -- restarts ---------------------------------------------------------------------------------


async def test_a_restart_is_honoured_after_the_block_has_ended(
    autojump_clock: MockClock,
) -> None:
    """The sole agent crashes after the body ended: its task waits for the restart instead
    of failing for want of an agent."""
    start = trio.current_time()
    agent = HeartbeatCrashesAt("solo", at=0.5, seconds=2)
    fast = {"heartbeat_interval": 0.5, "heartbeat_timeout": 1.5}
    async with open_coordinator(restart=RestartPolicy(delay=1.0), **fast) as coord:
        await agent.connect(coord)
        handle = coord.submit(work(1))
    assert handle.status is AssignmentStatus.COMPLETED
    assert handle.attempts == 2
    assert trio.current_time() - start == 0.5 + 1.0 + 2.0
    assert coord.stats().restarts == 1


async def test_an_agent_disconnected_while_waiting_to_restart_stays_offline(
    autojump_clock: MockClock,
) -> None:
    agent = HeartbeatCrashesAt("flaky", at=0.5)
    fast = {"heartbeat_interval": 0.5, "heartbeat_timeout": 1.5}
    async with open_coordinator(restart=RestartPolicy(delay=5.0), **fast) as coord:
        await agent.connect(coord)
        await trio.sleep(1)
        assert coord.agents["flaky"].status == "offline"  # restart due at 5.5
        await agent.disconnect()
        assert agent.coordinator is None
        await trio.sleep(10)
        assert coord.agents["flaky"].status == "offline"
    assert coord.stats().restarts == 0


async def test_work_waiting_for_a_restart_fails_once_the_restart_is_called_off(
    autojump_clock: MockClock,
) -> None:
    agent = HeartbeatCrashesAt("flaky", at=0.5)
    fast = {"heartbeat_interval": 0.5, "heartbeat_timeout": 1.5}
    async with open_coordinator(restart=RestartPolicy(delay=5.0), **fast) as coord:
        await agent.connect(coord)
        await trio.sleep(1)
        handle = coord.submit(work(1))

        async def leave_later() -> None:
            await trio.sleep(1)
            await agent.disconnect()

        coord._nursery.start_soon(leave_later)
    assert handle.status is AssignmentStatus.FAILED
    assert "no online agent" in str(handle.error)


# -- leaving ----------------------------------------------------------------------------------


async def test_an_agent_can_disconnect_from_inside_its_own_work(
    autojump_clock: MockClock,
) -> None:
    class Quitter(Worker):
        async def process_task(self, task: Any) -> Any:
            await self.disconnect()  # returns at once: it leaves once this task is done
            await trio.sleep(1)
            return "bye"

    quitter, spare = Quitter("quitter"), Worker("spare")
    with trio.fail_after(60):
        async with open_coordinator() as coord:
            await quitter.connect(coord)
            first = coord.submit(work(1))
            await spare.connect(coord)
            assert await first.wait() == "bye"
            await trio.testing.wait_all_tasks_blocked()
            assert coord.agents["quitter"].status == "offline"
            assert await coord.submit(work(2)).wait() == ("spare", 2)
    assert quitter.coordinator is None


async def test_concurrent_disconnects_of_one_agent_all_return(autojump_clock: MockClock) -> None:
    """Two tasks disconnect the same busy agent: both return once its work is done (the
    second used to replace the event the first waited on, which then waited forever)."""
    agent = Worker("w", seconds=1)
    returned: list[float] = []

    async def leave(disconnect: Any) -> None:
        await disconnect()
        returned.append(trio.current_time())

    with trio.fail_after(60):
        async with open_coordinator() as coord:
            await agent.connect(coord)
            handle = coord.submit(work(1))
            await trio.sleep(0.5)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(leave, agent.disconnect)
                nursery.start_soon(leave, lambda: coord.disconnect(agent))
    assert returned == [1.0, 1.0]
    assert handle.result == ("w", 1)


async def test_a_disconnect_waiting_outside_the_block_returns_when_the_block_fails(
    autojump_clock: MockClock,
) -> None:
    """A task outside the coordinator waits for a busy agent to leave; the block raises,
    which cancels the agent: the wait ends then, instead of never."""
    agent = Worker("w", seconds=10)
    returned: list[float] = []

    async def leave() -> None:
        await agent.disconnect()
        returned.append(trio.current_time())

    with trio.fail_after(60):
        async with trio.open_nursery() as outside:
            with pytest.raises(ValueError, match="body"):
                async with open_coordinator() as coord:
                    await agent.connect(coord)
                    coord.submit(work(1))
                    await trio.sleep(0.5)
                    outside.start_soon(leave)
                    await trio.sleep(0.5)
                    raise ValueError("body")
    assert returned == [1.0]


async def test_a_request_only_the_requester_could_serve_fails_clearly(
    autojump_clock: MockClock,
) -> None:
    """The only other agent with the capability is gone for good: once the block has ended,
    the delegated task fails (it does not hang), and with it the request."""

    class Asker(Agent):
        def __init__(self) -> None:
            super().__init__("asker", {"x"})

        async def process_task(self, task: Any) -> Any:
            return await self.request("x", {"q": 1})

    class Gone(Worker):
        async def heartbeat(self) -> None:
            await trio.sleep_forever()

    with trio.fail_after(60):
        async with open_coordinator(
            heartbeat_interval=0.5, heartbeat_timeout=1.5, max_attempts=1
        ) as coord:
            await Asker().connect(coord)
            await Gone("helper", caps=frozenset({"x"})).connect(coord)
            await trio.sleep(2)
            assert coord.agents["helper"].status == "offline"
            handle = coord.submit({"type": "x"})
    assert handle.status is AssignmentStatus.FAILED
    assert isinstance(handle.error, TaskFailed)
    assert "no online agent other than 'asker'" in str(handle.error.__cause__)


# -- the heartbeat monitor --------------------------------------------------------------------


async def test_the_monitor_does_not_blame_agents_for_its_own_lateness(
    autojump_clock: MockClock,
) -> None:
    """The loop is held up for 5 s (no task runs, no heartbeat can be sent): the agents
    are given one interval to beat again before anyone is called silent."""
    async with open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5) as coord:
        for name in ("a", "b", "c"):
            await Worker(name).connect(coord)
        await trio.sleep(0.1)
        autojump_clock.jump(5)  # as a long synchronous stretch would
        await trio.sleep(3)
        assert [info.status for info in coord.agents.values()] == ["idle"] * 3
    assert coord.stats().heartbeats_missed == 0


async def test_a_silent_agent_is_still_found_after_a_stall(autojump_clock: MockClock) -> None:
    class Silent(Worker):
        async def heartbeat(self) -> None:
            if trio.current_time() >= 0.2:
                await trio.sleep_forever()

    async with open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5) as coord:
        await Silent("silent").connect(coord)
        await Worker("fine").connect(coord)
        await trio.sleep(0.1)
        autojump_clock.jump(5)
        stalled_until = trio.current_time()
        events = coord.subscribe()
        await trio.sleep(3)
        offline = [e.at async for e in _until_closed(events, coord) if e.kind == "agent_offline"]
    assert offline == [pytest.approx(stalled_until + 0.5)]  # one interval of grace
    assert coord.agents["fine"].status == "idle"


async def _until_closed(events: EventChannel[Any], coord: Any) -> Any:
    while True:
        try:
            yield events.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return


async def test_a_stall_that_ends_just_after_a_deadline_blames_nobody(
    autojump_clock: MockClock,
) -> None:
    """Beats at 0, 1, 2, 3; the monitor's deadline for the agent is 3 + 1.2 = 4.2. The loop
    is held from 3.9 to 4.21, so the beat due at 4 cannot happen: the monitor wakes only
    0.01 late at its deadline, but its ticks saw the stall, and the agent is not blamed."""
    async with open_coordinator(heartbeat_interval=1.0, heartbeat_timeout=1.2) as coord:
        await Worker("steady").connect(coord)
        await trio.sleep(3.9)
        autojump_clock.jump(0.31)  # as a long synchronous stretch would
        await trio.sleep(5)
        assert coord.agents["steady"].status == "idle"
    assert coord.stats().heartbeats_missed == 0


# -- connecting while the coordinator shuts down ------------------------------------------------


async def keep_connecting(coord: Any, outcomes: list[tuple[Worker, str]], step: float) -> None:
    """Connect new agents, every ``step`` seconds (0: every scheduler batch), until refused
    (or 500 of them)."""
    for n in range(500):
        agent = Worker(f"late-{n}")
        try:
            await agent.connect(coord)
        except SchedulerClosedError:
            outcomes.append((agent, "refused"))
            return
        outcomes.append((agent, "connected"))
        await trio.sleep(step)


@pytest.mark.parametrize("step", [0.1, 0])
async def test_connect_racing_the_coordinators_shutdown_is_all_or_nothing(
    autojump_clock: MockClock, step: float
) -> None:
    """A task outside the coordinator keeps connecting agents while the coordinator's block
    ends and its last task finishes (at 1.5). Each connect either registers and runs its
    agent, or fails with SchedulerClosedError having registered nothing: never trio's
    "Nursery is closed to new arrivals" with the agent left registered but never run (the
    nursery closes a scheduler batch before the coordinator marks itself finished). And
    agents connected as it stops do not keep it from stopping: connecting every batch used
    to keep its nursery open for as long as it went on."""
    for _ in range(10):
        outcomes: list[tuple[Worker, str]] = []
        with trio.fail_after(60):
            async with trio.open_nursery() as outside, open_coordinator() as coord:
                await Worker("w", seconds=1.5).connect(coord)
                coord.submit(work(0))  # the block ends at 1.0, its work at 1.5
                await trio.sleep(1.5 if step == 0 else 1)
                outside.start_soon(keep_connecting, coord, outcomes, step)
        *connected, (refused, last) = outcomes
        assert last == "refused" and {how for _, how in connected} <= {"connected"}
        assert len(connected) <= (6 if step else 1)
        assert refused.id not in coord.agents and refused.coordinator is None
        for agent, _ in connected:
            assert agent.id in coord.agents and agent.coordinator is None
