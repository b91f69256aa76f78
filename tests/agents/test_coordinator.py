"""open_coordinator and Agent through the public API, on the autojump clock."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from trioflow import NoCapableAgentError, RetryPolicy, SchedulerClosedError, TaskFailed
from trioflow.agents import (
    Agent,
    AgentCapability,
    AgentGone,
    AgentUnavailableError,
    AssignmentStatus,
    DelegationDeadlock,
    EventKind,
    Message,
    MessageType,
    RestartPolicy,
    RunningTask,
    UnknownAgentError,
    open_coordinator,
)
from trioflow.agents.examples import CalculatorAgent, SearchAgent

SEARCH = AgentCapability.SEARCH
CALCULATE = AgentCapability.CALCULATE


class Worker(Agent):
    """Records what it processed; ``seconds`` of work per task."""

    def __init__(self, agent_id: str, seconds: float = 1.0, **kwargs: Any) -> None:
        super().__init__(agent_id, {"work"}, **kwargs)
        self.seconds = seconds
        self.done: list[Any] = []

    async def process_task(self, task: Any) -> Any:
        await trio.sleep(self.seconds)
        self.done.append(task["n"])
        return (self.id, task["n"])


class Crasher(Worker):
    async def process_task(self, task: Any) -> Any:
        await trio.sleep(self.seconds)
        raise RuntimeError(f"{self.id} crashed")


class Hanger(Worker):
    """Its heartbeat blocks forever from ``hang_at`` on (virtual seconds)."""

    def __init__(self, agent_id: str, hang_at: float, **kwargs: Any) -> None:
        super().__init__(agent_id, **kwargs)
        self.hang_at = hang_at
        self.start = trio.current_time()

    async def heartbeat(self) -> None:
        if trio.current_time() - self.start >= self.hang_at:
            await trio.sleep_forever()


def work(n: int) -> dict[str, Any]:
    return {"type": "work", "n": n}


# -- the seed scenario --


async def test_seed_scenario(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    async with open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5) as coord:
        for agent in (
            SearchAgent("search-1", latency=1),
            SearchAgent("search-2", latency=1),
            CalculatorAgent("calc-1", latency=0.5),
        ):
            await agent.connect(coord)
        assert [a.id for a in coord.find_agents(SEARCH)] == ["search-1", "search-2"]
        results = await coord.run_all(
            [
                {"type": SEARCH, "query": "Python async"},
                {"type": CALCULATE, "expression": "10 + 20"},
                {"type": SEARCH, "query": "LangChain"},
            ]
        )
        assert trio.current_time() - start == 1.0  # both searches ran side by side
    assert results[0]["results"][0]["title"] == "Python async and await"
    assert results[1] == {"expression": "10 + 20", "result": 30}
    assert results[2]["results"][0]["title"] == "LangChain"
    agents = coord.agents
    assert {a.id: a.tasks_completed for a in agents.values()} == {
        "search-1": 1,
        "search-2": 1,
        "calc-1": 1,
    }
    stats = coord.stats()
    assert (stats.submitted, stats.completed, stats.failed, stats.reassigned) == (3, 3, 0, 0)


# -- load balancing --


async def test_load_is_balanced_across_capable_agents(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    a, b = Worker("a"), Worker("b")
    async with open_coordinator() as coord:
        await a.connect(coord)
        await b.connect(coord)
        handles = [coord.submit(work(n)) for n in range(10)]
    assert trio.current_time() - start == 5.0
    assert len(a.done) == len(b.done) == 5
    assert sorted(a.done + b.done) == list(range(10))
    assert all(h.attempts == 1 for h in handles)


async def test_concurrency_lets_an_agent_take_several_tasks(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    wide = Worker("wide", concurrency=4)
    async with open_coordinator() as coord:
        await wide.connect(coord)
        for n in range(8):
            coord.submit(work(n))
        await trio.sleep(0.5)
        assert coord.agents["wide"].in_flight == 4
        assert coord.agents["wide"].status == "busy"
        assert coord.stats().queued == 4
    assert trio.current_time() - start == 2.0


# -- heartbeats and failover --


async def test_a_hung_agent_is_detected_and_its_task_finished_elsewhere_once(
    autojump_clock: MockClock,
) -> None:
    start = trio.current_time()
    hanger = Hanger("hanger", hang_at=0.5, seconds=10)
    spare = Worker("spare", seconds=1)
    async with open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5) as coord:
        await hanger.connect(coord)
        handle = coord.submit(work(1))
        assert handle.agent_id == "hanger"
        await spare.connect(coord)
        result = await handle.wait()
        detected = trio.current_time() - start
    # last heartbeat at 0.0; the 0.5 one hangs: offline at 0.0 + 1.5 <= hang + timeout + interval
    assert detected == pytest.approx(1.5 + 1.0)
    assert result == ("spare", 1)
    assert (handle.attempts, handle.agent_id, handle.status) == (
        2,
        "spare",
        AssignmentStatus.COMPLETED,
    )
    assert hanger.done == [] and spare.done == [1]
    assert coord.agents["hanger"].status == "offline"
    stats = coord.stats()
    assert (stats.heartbeats_missed, stats.reassigned, stats.completed) == (1, 1, 1)


async def test_a_late_result_from_an_offline_agent_is_discarded(autojump_clock: MockClock) -> None:
    """The silent agent shields its work from cancellation and reports at t=10: too late."""

    class Stubborn(Hanger):
        async def process_task(self, task: Any) -> Any:
            with trio.CancelScope(shield=True):
                await trio.sleep(10)
            return "late"

    stubborn = Stubborn("stubborn", hang_at=0.5)
    spare = Worker("spare", seconds=1)
    async with open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5) as coord:
        await stubborn.connect(coord)
        handle = coord.submit(work(7))
        await spare.connect(coord)
        await trio.sleep(20)  # the stubborn agent's report arrives meanwhile
    assert handle.result == ("spare", 7)
    assert coord.stats().completed == 1
    assert coord.stats().stale_results == 1


async def test_a_crash_is_retried_on_a_different_agent(autojump_clock: MockClock) -> None:
    crasher, worker = Crasher("crasher"), Worker("worker")
    async with open_coordinator() as coord:
        await crasher.connect(coord)
        await worker.connect(coord)
        busy = coord.submit(work(0))  # crasher: idle longest
        other = coord.submit(work(1))
    assert busy.result == ("worker", 0)
    assert busy.attempts == 2
    assert isinstance(busy.errors[0], RuntimeError)
    assert other.result == ("worker", 1)


async def test_all_attempts_fail_with_every_error(autojump_clock: MockClock) -> None:
    async with open_coordinator(max_attempts=3) as coord:
        for name in ("c1", "c2"):
            await Crasher(name).connect(coord)
        handle = coord.submit(work(0))
        with pytest.raises(TaskFailed) as info:
            await handle.wait()
    assert handle.status is AssignmentStatus.FAILED
    assert len(info.value.errors) == 3
    assert [str(e) for e in info.value.errors] == ["c1 crashed", "c2 crashed", "c1 crashed"]
    assert isinstance(info.value.__cause__, RuntimeError)


async def test_a_crash_of_the_agent_loop_takes_it_offline(autojump_clock: MockClock) -> None:
    class BadListener(Worker):
        async def on_message(self, message: Message) -> None:
            raise ValueError("cannot handle messages")

    bad, good, sender = BadListener("bad", seconds=5), Worker("good"), Worker("sender")
    async with open_coordinator() as coord:
        await bad.connect(coord)
        handle = coord.submit(work(1))
        await good.connect(coord)
        await sender.connect(coord)
        await sender.send_message(Message(MessageType.AGENT_STATUS, "sender", "bad", "hi"))
        result = await handle.wait()
    assert result == ("good", 1)
    assert coord.agents["bad"].status == "offline"
    assert isinstance(handle.errors[0], AgentGone)
    assert isinstance(handle.errors[0].__cause__, ExceptionGroup)
    assert "crashed: ValueError('cannot handle messages')" in str(handle.errors[0])


async def test_task_timeout_fails_the_attempt(autojump_clock: MockClock) -> None:
    slow, fast = Worker("slow", seconds=100), Worker("fast", seconds=1)
    async with open_coordinator(task_timeout=5) as coord:
        await slow.connect(coord)
        handle = coord.submit(work(3))
        await fast.connect(coord)
    assert handle.result == ("fast", 3)
    assert isinstance(handle.errors[0], TimeoutError)


# -- queueing --


async def test_no_capable_agent_fails_at_submit(autojump_clock: MockClock) -> None:
    async with open_coordinator() as coord:
        await Worker("w").connect(coord)
        with pytest.raises(NoCapableAgentError):
            coord.submit({"type": AgentCapability.TRANSLATE, "text": "hi"})
        with pytest.raises(NoCapableAgentError):
            await coord.run_all([work(1), {"type": "nobody"}])
        assert coord.stats().submitted == 0  # run_all checks every task first


async def test_work_waits_while_every_capable_agent_is_offline(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    async with open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5) as coord:
        hanger = Hanger("hanger", hang_at=0.0)
        await hanger.connect(coord)
        await trio.sleep(2)
        assert coord.agents["hanger"].status == "offline"
        handle = coord.submit(work(1))
        assert handle.status is AssignmentStatus.QUEUED
        await trio.sleep(3)
        assert handle.status is AssignmentStatus.QUEUED
        await Worker("late").connect(coord)
    assert handle.result == ("late", 1)
    assert trio.current_time() - start == 6.0


async def test_leaving_the_block_fails_work_no_agent_can_ever_run(
    autojump_clock: MockClock,
) -> None:
    async with open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5) as coord:
        await Hanger("hanger", hang_at=0.0).connect(coord)
        await trio.sleep(2)
        handle = coord.submit(work(1))
    assert handle.status is AssignmentStatus.FAILED
    assert "no online agent" in str(handle.error)


# -- restarts --


async def test_a_restart_policy_brings_a_silent_agent_back(autojump_clock: MockClock) -> None:
    class HangsOnce(Worker):
        hung = False

        async def heartbeat(self) -> None:
            if not self.hung and trio.current_time() - start >= 1:
                self.hung = True
                await trio.sleep_forever()

    start = trio.current_time()
    agent = HangsOnce("flaky")
    policy = RestartPolicy(max_restarts=2, period=60, delay=2.0)
    settings = {"heartbeat_interval": 1, "heartbeat_timeout": 3, "restart": policy}
    async with open_coordinator(**settings) as coord:
        await agent.connect(coord)
        await trio.sleep(3.5)
        assert coord.agents["flaky"].status == "offline"  # silent since 0.0, offline at 3.0
        await trio.sleep(2)
        assert coord.agents["flaky"].status == "idle"  # restarted at 5.0
        assert await coord.submit(work(1)).wait() == ("flaky", 1)
    assert coord.stats().restarts == 1


async def test_restart_intensity_is_bounded(autojump_clock: MockClock) -> None:
    class AlwaysBroken(Worker):
        async def heartbeat(self) -> None:
            raise OSError("broken")

    policy = RestartPolicy(max_restarts=3, period=100, delay=1, backoff=2)
    start = trio.current_time()
    async with open_coordinator(restart=policy) as coord:
        events = coord.subscribe()
        await AlwaysBroken("b").connect(coord)
        await trio.sleep(50)
    restarts = [e.at - start async for e in events if e.kind == "agent_restarted"]
    assert restarts == [1.0, 3.0, 7.0]  # delays 1, 2, 4; then it stays offline
    assert coord.agents["b"].status == "offline"


# -- messages and delegation --


class Listener(Worker):
    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id)
        self.inbox: list[Message] = []

    async def on_message(self, message: Message) -> None:
        self.inbox.append(message)


async def test_direct_messages_reach_on_message(autojump_clock: MockClock) -> None:
    alice, bob = Listener("alice"), Listener("bob")
    async with open_coordinator() as coord:
        await alice.connect(coord)
        await bob.connect(coord)
        message = Message(MessageType.AGENT_STATUS, "alice", "bob", {"load": 0})
        await alice.send_message(message)
        await trio.testing.wait_all_tasks_blocked()
        assert bob.inbox == [message]
        assert message.timestamp == trio.current_time()
        with pytest.raises(UnknownAgentError, match="'carol'"):
            await alice.send_message(Message(MessageType.HEARTBEAT, "alice", "carol"))


async def test_a_message_to_an_offline_agent_is_an_error(autojump_clock: MockClock) -> None:
    alice = Listener("alice")
    async with open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5) as coord:
        await alice.connect(coord)
        await Hanger("gone", hang_at=0).connect(coord)
        await trio.sleep(2)
        with pytest.raises(AgentUnavailableError):
            await alice.send_message(Message(MessageType.HEARTBEAT, "alice", "gone"))


async def test_delegation_with_request(autojump_clock: MockClock) -> None:
    class Planner(Agent):
        def __init__(self) -> None:
            super().__init__("planner", {"plan"})

        async def process_task(self, task: Any) -> Any:
            total = await self.request(CALCULATE, {"expression": task["sum"]})
            found = await self.request(SEARCH, {"query": "trio nursery"})
            return total["result"], found["results"][0]["title"]

    async with open_coordinator() as coord:
        for agent in (Planner(), CalculatorAgent("calc"), SearchAgent("search")):
            await agent.connect(coord)
        result = await coord.submit({"type": "plan", "sum": "2 ** 10 - 24"}).wait()
    assert result == (1000, "Trio nurseries")


async def test_a_request_cancelled_by_its_caller_cancels_the_delegated_task(
    autojump_clock: MockClock,
) -> None:
    class Impatient(Agent):
        def __init__(self) -> None:
            super().__init__("impatient", {"ask"})

        async def process_task(self, task: Any) -> Any:
            with trio.move_on_after(1):
                return await self.request("work", {"n": 1})
            return "gave up"

    busy = Worker("busy", seconds=10)
    async with open_coordinator() as coord:
        await busy.connect(coord)
        await Impatient().connect(coord)
        blocker = coord.submit(work(0))  # keeps "busy" occupied, so the request queues
        assert await coord.submit({"type": "ask"}).wait() == "gave up"
        assert coord.stats().cancelled == 1
    assert busy.done == [0]
    assert blocker.status is AssignmentStatus.COMPLETED


async def test_an_agent_cannot_delegate_to_itself(autojump_clock: MockClock) -> None:
    class Selfish(Agent):
        def __init__(self) -> None:
            super().__init__("selfish", {"x"})

        async def process_task(self, task: Any) -> Any:
            return await self.request("x", {})

    async with open_coordinator() as coord:
        await Selfish().connect(coord)
        handle = coord.submit({"type": "x"})
        with pytest.raises(TaskFailed):
            await handle.wait()
    assert all(isinstance(e, NoCapableAgentError) for e in handle.errors)


# -- leaving --


async def test_disconnect_finishes_running_work_and_leaves(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    leaving, staying = Worker("leaving", seconds=2), Worker("staying", seconds=2)
    async with open_coordinator() as coord:
        await leaving.connect(coord)
        await staying.connect(coord)
        handles = [coord.submit(work(n)) for n in range(4)]
        await trio.sleep(1)
        await leaving.disconnect()
        assert trio.current_time() - start == 2.0  # waited for its running task
        assert coord.agents["leaving"].status == "offline"
    assert leaving.done == [0]
    assert staying.done == [1, 2, 3]
    assert all(h.attempts == 1 for h in handles)


async def test_disconnect_returns_when_the_draining_agent_goes_silent(
    autojump_clock: MockClock,
) -> None:
    start = trio.current_time()
    hanger, spare = Hanger("hanger", hang_at=0.5, seconds=10), Worker("spare")
    async with open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5) as coord:
        await hanger.connect(coord)
        handle = coord.submit(work(1))
        await spare.connect(coord)
        await trio.sleep(1)
        await hanger.disconnect()  # waits for its task, but it goes silent at 1.5
        assert trio.current_time() - start == 1.5
    assert handle.result == ("spare", 1)
    assert hanger.coordinator is None


async def test_the_body_exception_propagates_and_unfinished_tasks_fail(
    autojump_clock: MockClock,
) -> None:
    with pytest.raises(KeyError) as info:
        async with open_coordinator() as coord:
            await Worker("w", seconds=100).connect(coord)
            handle = coord.submit(work(1))
            await trio.sleep(1)
            raise KeyError("body")
    assert type(info.value) is KeyError
    with pytest.raises(TaskFailed):
        await handle.wait()
    with pytest.raises(SchedulerClosedError):
        coord.submit(work(2))


async def test_cancelling_the_block_cancels_agents_and_fails_tasks(
    autojump_clock: MockClock,
) -> None:
    with trio.move_on_after(5) as scope:
        async with open_coordinator() as coord:
            await Worker("w", seconds=100).connect(coord)
            handle = coord.submit(work(1))
    assert scope.cancelled_caught
    assert handle.status is AssignmentStatus.CANCELLED


async def test_run_all_raises_a_group_or_returns_failures(autojump_clock: MockClock) -> None:
    async with open_coordinator(max_attempts=1) as coord:
        await CalculatorAgent("calc").connect(coord)
        tasks = [{"type": CALCULATE, "expression": e} for e in ("1 + 1", "__import__('os')")]
        with pytest.RaisesGroup(TaskFailed):
            await coord.run_all(tasks)
        results = await coord.run_all(tasks, return_exceptions=True)
    assert results[0]["result"] == 2
    assert isinstance(results[1], TaskFailed)


async def test_ctrl_c_in_an_agent_leaves_the_block_as_a_keyboard_interrupt(
    autojump_clock: MockClock,
) -> None:
    class Interrupted(Worker):
        async def process_task(self, task: Any) -> Any:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        async with open_coordinator() as coord:
            await Interrupted("i").connect(coord)
            await coord.submit(work(1)).wait()


async def test_cancelling_run_all_cancels_the_tasks_it_submitted(autojump_clock: MockClock) -> None:
    """As run() cancels its task: no agent goes on working for nobody, and the block does
    not wait for work nobody will read."""
    worker = Worker("w", seconds=100)
    async with open_coordinator() as coord:
        await worker.connect(coord)
        with trio.move_on_after(1) as scope:
            await coord.run_all([work(n) for n in range(3)])  # one runs, two queue
        assert scope.cancelled_caught
        stats = coord.stats()
        assert (stats.cancelled, stats.completed) == (3, 0)
        again = await coord.run_all([work(9)])  # the agent is free again at once
    assert again == [("w", 9)]
    assert worker.done == [9]
    assert trio.current_time() == 101


async def test_events_tell_the_story(autojump_clock: MockClock) -> None:
    async with open_coordinator(heartbeat_interval=0.5, heartbeat_timeout=1.5) as coord:
        events = coord.subscribe()
        await Hanger("h", hang_at=0.5, seconds=10).connect(coord)
        handle = coord.submit(work(1))
        await Worker("w").connect(coord)
        await handle.wait()
    kinds = [
        (e.kind, e.agent_id) async for e in events if e.kind not in ("stale_result", "heartbeat")
    ]
    assert kinds == [
        ("agent_online", "h"),
        ("task_assigned", "h"),
        ("agent_online", "w"),
        ("agent_offline", "h"),
        ("task_assigned", "w"),
        ("task_completed", "w"),
    ]


# -- bad input --


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"heartbeat_interval": 0}, ValueError, "heartbeat_interval must be > 0"),
        ({"heartbeat_timeout": -1}, ValueError, "heartbeat_timeout must be > 0"),
        ({"heartbeat_interval": 2, "heartbeat_timeout": 1}, ValueError, "must be longer"),
        ({"heartbeat_interval": "1"}, TypeError, "must be a number"),
        ({"max_attempts": 0}, ValueError, "max_attempts"),
        ({"task_timeout": 0}, ValueError, "task_timeout must be > 0"),
        ({"restart": 3}, TypeError, "RestartPolicy"),
        ({"inbox_size": 0}, ValueError, "inbox_size"),
        ({"slow_after": 0}, ValueError, "slow_after must be > 0"),
        ({"slow_after": "60"}, TypeError, "slow_after must be a number"),
    ],
)
async def test_bad_coordinator_settings(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        async with open_coordinator(**kwargs):
            pass


async def test_bad_tasks_and_agents(autojump_clock: MockClock) -> None:
    async with open_coordinator() as coord:
        worker = Worker("w")
        await worker.connect(coord)
        with pytest.raises(TypeError, match="mapping"):
            coord.submit(["work"])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="'type'"):
            coord.submit({"n": 1})
        with pytest.raises(RuntimeError, match="already connected"):
            await worker.connect(coord)
        with pytest.raises(ValueError, match="already registered"):
            await Worker("w").connect(coord)
        with pytest.raises(TypeError, match="takes a Message"):
            await worker.send_message("hello")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one capability"):
        Agent("x", set())
    with pytest.raises(TypeError, match="not a string"):
        Agent("x", "search")
    with pytest.raises(ValueError, match="concurrency"):
        Agent("x", {"s"}, concurrency=0)
    with pytest.raises(TypeError):
        Message("heartbeat", "a", "b")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not connected"):
        await Agent("lonely", {"s"}).send_message(Message(MessageType.HEARTBEAT, "lonely", "x"))


class Delegating(Agent):
    async def process_task(self, task: dict[str, Any]) -> Any:
        if task.get("inner"):
            return "inner"
        return await self.request("x", {"inner": 1})


async def test_an_agent_id_of_none_or_unhashable_is_refused(autojump_clock: MockClock) -> None:
    """None means "no agent" to the dispatcher (a task's requester to avoid, say): an agent
    with that id was accepted, and its request() for its own capability was given to
    itself and waited for ever instead of raising NoCapableAgentError as for any id."""
    with pytest.raises(ValueError, match=r"^an agent's id may not be None$"):
        Delegating(None, {"x"})
    with pytest.raises(TypeError, match=r"^an agent's id must be hashable, got \['a'\]$"):
        Delegating(["a"], {"x"})
    async with open_coordinator() as coord:
        await Delegating("a", {"x"}).connect(coord)
        with pytest.raises(TaskFailed) as failed:
            await coord.submit({"type": "x"}).wait()
        assert isinstance(failed.value.error, NoCapableAgentError)


async def test_an_unhashable_type_or_id_is_refused_with_a_message_that_says_so(
    autojump_clock: MockClock,
) -> None:
    """submit(), run_all() and request() say which value is not hashable (it was a bare
    "unhashable type: 'list'"), and nothing is submitted."""
    async with open_coordinator() as coord:
        await Delegating("a", {"x"}).connect(coord)
        with pytest.raises(TypeError, match=r"^a task's 'type' must be hashable, got \['x'\]$"):
            coord.submit({"type": ["x"]})
        with pytest.raises(TypeError, match=r"^a task's id must be hashable, got \[1\]$"):
            coord.submit({"type": "x"}, id=[1])
        with pytest.raises(TypeError, match=r"^a task's 'type' must be hashable, got \{\}$"):
            await coord.run_all([{"type": "x"}, {"type": {}}])
        assert coord.stats().submitted == 0


async def test_an_agent_without_process_task_fails_its_tasks(autojump_clock: MockClock) -> None:
    async with open_coordinator(max_attempts=1) as coord:
        await Agent("bare", {"s"}).connect(coord)
        handle = coord.submit({"type": "s"})
    assert isinstance(handle.error, NotImplementedError)


# -- one vocabulary with the scheduler: retry=, max_attempts=, TIMEOUT -------------------------


async def test_retry_none_means_a_single_attempt(autojump_clock: MockClock) -> None:
    async with open_coordinator(retry=None) as coord:
        await Crasher("c1").connect(coord)
        await Crasher("c2").connect(coord)
        handle = coord.submit(work(0))
    assert handle.status is AssignmentStatus.FAILED and handle.attempts == 1


async def test_max_attempts_is_an_alias_of_a_delay_free_retry_policy(
    autojump_clock: MockClock,
) -> None:
    outcomes = []
    for settings in ({"max_attempts": 2}, {"retry": RetryPolicy(max_retries=1, delay=0)}):
        start = trio.current_time()
        async with open_coordinator(**settings) as coord:  # type: ignore[arg-type]
            await Crasher("c").connect(coord)
            handle = coord.submit(work(0))
        outcomes.append((handle.attempts, handle.status, trio.current_time() - start))
    assert outcomes[0] == outcomes[1] == (2, AssignmentStatus.FAILED, 2.0)


async def test_retry_and_max_attempts_together_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        async with open_coordinator(retry=1, max_attempts=2):
            pass


async def test_a_retry_waits_out_its_delay_without_holding_the_agent(
    autojump_clock: MockClock,
) -> None:
    """Crash at 1; wait 1 (free for other work); crash at 3; wait 2; crash at 6: FAILED."""
    start = trio.current_time()
    policy = RetryPolicy(max_retries=2, delay=1.0, backoff=2.0)
    crasher = Crasher("c", seconds=1)
    async with open_coordinator(retry=policy) as coord:
        await crasher.connect(coord)
        events = coord.subscribe()
        handle = coord.submit(work(0))
        await trio.sleep(1.5)
        assert handle.status is AssignmentStatus.WAITING
        assert coord.stats().waiting == 1 and coord.agents["c"].in_flight == 0
        with pytest.raises(TaskFailed):
            await handle.wait()
        ended = trio.current_time() - start
    assert ended == 6.0 and handle.attempts == 3
    story = [(e.kind, e.attempt, e.at - start) async for e in events if e.kind != "heartbeat"]
    assert story == [
        ("task_assigned", 1, 0.0),
        ("attempt_failed", 1, 1.0),
        ("task_waiting", 1, 1.0),
        ("task_assigned", 2, 2.0),
        ("attempt_failed", 2, 3.0),
        ("task_waiting", 2, 3.0),
        ("task_assigned", 3, 5.0),
        ("attempt_failed", 3, 6.0),
        ("task_failed", 3, 6.0),
    ]
    assert coord.stats().retries == 2


async def test_retry_on_decides_which_agent_errors_are_retried(
    autojump_clock: MockClock,
) -> None:
    policy = RetryPolicy(max_retries=3, delay=0, retry_on=(KeyError,))
    async with open_coordinator(retry=policy) as coord:
        await Crasher("c1").connect(coord)  # raises RuntimeError: not retried
        await Crasher("c2").connect(coord)
        handle = coord.submit(work(0))
    assert handle.status is AssignmentStatus.FAILED and handle.attempts == 1


async def test_an_int_retry_uses_the_default_policy_delays(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    async with open_coordinator(retry=1) as coord:
        await Crasher("c", seconds=1).connect(coord)
        handle = coord.submit(work(0))
    assert handle.attempts == 2
    assert trio.current_time() - start == 3.0  # attempt, 1.0 s delay, attempt


async def test_a_timed_out_last_attempt_ends_timeout(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    async with open_coordinator(task_timeout=5, max_attempts=2) as coord:
        await Worker("slow", seconds=100).connect(coord)
        events = coord.subscribe()
        handle = coord.submit(work(1))
        with pytest.raises(TaskFailed) as info:
            await handle.wait()
    assert trio.current_time() - start == 10.0
    assert handle.status is AssignmentStatus.TIMEOUT
    assert info.value.status is AssignmentStatus.TIMEOUT
    assert [type(e) for e in handle.errors] == [TimeoutError, TimeoutError]
    assert str(handle.error) == "attempt 2 timed out after 5.0 s"
    stats = coord.stats()
    assert (stats.timeout, stats.failed, stats.finished) == (1, 0, 1)
    kinds = [e.kind async for e in events if e.kind != EventKind.HEARTBEAT]
    assert kinds[-1] is EventKind.TASK_TIMEOUT


async def test_a_tooslowerror_of_the_agents_own_is_a_plain_failure(
    autojump_clock: MockClock,
) -> None:
    """Only the coordinator's task_timeout makes a TIMEOUT; the agent's own fail_after
    raising TooSlowError is that attempt's error like any other."""

    class Hasty(Worker):
        async def process_task(self, task: Any) -> Any:
            with trio.fail_after(1):
                await trio.sleep(5)

    async with open_coordinator(max_attempts=1) as coord:
        await Hasty("h").connect(coord)
        handle = coord.submit(work(0))
    assert handle.status is AssignmentStatus.FAILED
    assert isinstance(handle.error, trio.TooSlowError)


async def test_attempt_failed_names_the_attempt_that_failed(autojump_clock: MockClock) -> None:
    async with open_coordinator() as coord:
        await Crasher("c").connect(coord)
        await Worker("w").connect(coord)
        events = coord.subscribe()
        await coord.submit(work(0)).wait()
    story = [(e.kind, e.agent_id, e.attempt) async for e in events if e.kind != "heartbeat"]
    assert story == [
        (EventKind.TASK_ASSIGNED, "c", 1),
        (EventKind.ATTEMPT_FAILED, "c", 1),
        (EventKind.TASK_ASSIGNED, "w", 2),
        (EventKind.TASK_COMPLETED, "w", 2),
    ]
    assert all(type(kind) is EventKind for kind, _, _ in story)


# -- cancelling assigned work -----------------------------------------------------------------


async def test_cancelling_an_assigned_task_stops_its_attempt(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    worker = Worker("w", seconds=10)
    async with open_coordinator() as coord:
        await worker.connect(coord)
        first = coord.submit(work(1))
        await trio.sleep(1)
        first.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert coord.agents["w"].in_flight == 0  # the agent is free at once
        second = await coord.submit(work(2)).wait()
    assert second == ("w", 2) and worker.done == [2]
    assert trio.current_time() - start == 11.0
    assert first.status is AssignmentStatus.CANCELLED


async def test_a_task_cancelled_before_its_attempt_starts_never_runs(
    autojump_clock: MockClock,
) -> None:
    worker = Worker("w")
    async with open_coordinator() as coord:
        await worker.connect(coord)
        handle = coord.submit(work(1))  # delivered: the idle agent has it, not started yet
        assert handle.status is AssignmentStatus.ASSIGNED
        handle.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert coord.agents["w"].in_flight == 0  # handed back at once
        assert await coord.submit(work(2)).wait() == ("w", 2)
    assert worker.done == [2] and handle.status is AssignmentStatus.CANCELLED


async def test_a_cancelled_request_frees_the_agent_it_was_delegated_to(
    autojump_clock: MockClock,
) -> None:
    class Impatient(Agent):
        def __init__(self) -> None:
            super().__init__("impatient", {"ask"})

        async def process_task(self, task: Any) -> Any:
            with trio.move_on_after(1):
                return await self.request("work", {"n": 1})
            return "gave up"

    helper = Worker("helper", seconds=10)
    async with open_coordinator() as coord:
        await helper.connect(coord)
        await Impatient().connect(coord)
        assert await coord.submit({"type": "ask"}).wait() == "gave up"
        await trio.testing.wait_all_tasks_blocked()
        assert coord.agents["helper"].status == "idle"
    assert helper.done == []


# -- bad input: the same mistake, the same exception as in the scheduler -----------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"heartbeat_interval": True}, TypeError, "heartbeat_interval must be a number"),
        ({"heartbeat_timeout": float("inf")}, ValueError, "heartbeat_timeout must be finite"),
        ({"task_timeout": "5"}, TypeError, "task_timeout must be a number"),
        ({"max_attempts": "3"}, TypeError, "max_attempts must be an int"),
        ({"max_attempts": True}, TypeError, "max_attempts must be an int"),
        ({"retry": "2"}, TypeError, "retry must be None, an int or a RetryPolicy"),
        ({"retry": -1}, ValueError, "retry must be >= 0"),
        ({"inbox_size": "5"}, TypeError, "inbox_size must be an int"),
        ({"transport": object()}, TypeError, "Transport protocol"),
    ],
)
async def test_bad_settings_get_the_schedulers_exception_types(
    kwargs: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        async with open_coordinator(**kwargs):
            pass


@pytest.mark.parametrize(
    ("concurrency", "error", "message"),
    [
        (0, ValueError, "concurrency must be >= 1, got 0"),
        ("2", TypeError, "concurrency must be an int, got '2'"),
        (True, TypeError, "concurrency must be an int, got True"),
        (1.0, TypeError, "concurrency must be an int, got 1.0"),
    ],
)
def test_bad_agent_concurrency(concurrency: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Agent("x", {"s"}, concurrency=concurrency)  # type: ignore[arg-type]


async def test_submit_from_another_thread_fails_cleanly(autojump_clock: MockClock) -> None:
    async with open_coordinator() as coord:
        await Worker("w").connect(coord)

        def from_a_thread() -> BaseException | None:
            try:
                coord.submit(work(1))
            except RuntimeError as error:
                return error
            return None

        error = await trio.to_thread.run_sync(from_a_thread)
        assert isinstance(error, RuntimeError) and "thread" in str(error)
        assert coord.stats().submitted == 0


# -- big batches -------------------------------------------------------------------------------


async def test_a_huge_run_all_does_not_starve_the_heartbeats() -> None:
    """On the real clock: 300,000 tasks over four agents with a 0.15 s heartbeat timeout.
    run_all checks, submits and collects in batches with checkpoints between them, the work
    loops checkpoint every 32 tasks, and what stalls remain (the garbage collector's, the
    machine's) the monitor sees as its own lateness: no healthy agent is declared offline."""

    class Echo(Agent):
        async def process_task(self, task: Any) -> Any:
            return task["n"]

    tasks = [{"type": "echo", "n": n} for n in range(300_000)]
    async with open_coordinator(heartbeat_interval=0.05, heartbeat_timeout=0.15) as coord:
        for i in range(4):
            await Echo(f"echo-{i}", {"echo"}).connect(coord)
        results = await coord.run_all(tasks)
    assert results[::100_000] == [0, 100_000, 200_000] and len(results) == 300_000
    stats = coord.stats()
    assert (stats.heartbeats_missed, stats.reassigned, stats.completed) == (0, 0, 300_000)
    assert all(row.completed > 0 for row in stats.agents.values())


# -- hung work ---------------------------------------------------------------------------------


class Stuck(Agent):
    """A ``process_task`` that never returns, while the agent keeps beating."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id, {"work"})

    async def process_task(self, task: Any) -> Any:
        await trio.sleep_forever()


def slow_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "trioflow.agents"]


async def test_hung_work_shows_how_long_it_has_run_and_is_logged_once(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trioflow")
    start = trio.current_time()
    async with open_coordinator(slow_after=30) as coord:
        await Stuck("stuck").connect(coord)
        await Worker("fine").connect(coord)
        hung = coord.submit(work(1))
        await trio.sleep(20)
        done = await coord.submit(work(2)).wait()  # the other agent is not held up
        await trio.sleep(79)
        info = coord.agents["stuck"]
        assert info.status == "busy" and info.in_flight == 1
        assert info.running == (RunningTask(hung.id, 1, start, 100.0),)
        assert info.longest_running == 100.0
        assert coord.stats().agents["stuck"].running == info.running
        assert coord.agents["fine"].running == () and coord.agents["fine"].longest_running == 0
        hung.cancel()  # what stops it: a task_timeout, or cancelling the task
    assert done == ("fine", 2) and hung.status is AssignmentStatus.CANCELLED
    assert slow_warnings(caplog) == [
        f"task {hung.id} (attempt 1) has run on agent 'stuck' for 30.0 s; it may be hung"
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


async def test_slow_after_none_never_warns_and_task_timeout_is_named(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trioflow")
    async with open_coordinator(slow_after=None) as coord:
        await Worker("w", seconds=500).connect(coord)
        coord.submit(work(1))
    assert slow_warnings(caplog) == []
    async with open_coordinator(task_timeout=90, max_attempts=1) as coord:  # default: 60 s
        await Worker("w", seconds=500).connect(coord)
        await Worker("quick", seconds=59).connect(coord)
        coord.submit(work(1))
        coord.submit(work(2))
    assert slow_warnings(caplog) == [
        "task 1 (attempt 1) has run on agent 'w' for 60.0 s; it may be hung (task_timeout: 90.0 s)"
    ]


# -- delegation deadlocks ------------------------------------------------------------------------


class Delegator(Agent):
    """Handles its capability by asking ``asks`` while the task has ``hops`` left; returns
    the agents on the way."""

    def __init__(self, agent_id: str, mine: str, asks: str, **kwargs: Any) -> None:
        super().__init__(agent_id, {mine}, **kwargs)
        self.asks = asks

    async def process_task(self, task: Any) -> Any:
        hops = task.get("hops", 10)
        if not hops:
            await trio.sleep(1)
            return [self.id]
        return [self.id, *await self.request(self.asks, {"hops": hops - 1})]


def root_cause(error: BaseException | None) -> BaseException | None:
    while error is not None and error.__cause__ is not None:
        error = error.__cause__
    return error


async def test_a_delegation_cycle_fails_at_once_with_a_clear_error(
    autojump_clock: MockClock,
) -> None:
    """a asks b, b asks a, each with one slot: a's only slot waits for b, so b's request
    can never be served. It fails at once (no hang, no time passes) with DelegationDeadlock,
    and the failure travels back through both requests."""
    start = trio.current_time()
    with trio.fail_after(60):
        async with open_coordinator(retry=None) as coord:
            await Delegator("agent-a", "a", "b").connect(coord)
            await Delegator("agent-b", "b", "a").connect(coord)
            handle = coord.submit({"type": "a"})
            with pytest.raises(TaskFailed):
                await handle.wait()
    assert trio.current_time() == start
    deadlock = root_cause(handle.error)
    assert isinstance(deadlock, DelegationDeadlock)
    assert (deadlock.requester, deadlock.capability) == ("agent-b", "a")
    assert deadlock.cycle == ["agent-b", "agent-a", "agent-b"]
    assert str(deadlock) == (
        "agent 'agent-b' requested 'a', which no agent can ever take: every agent that may "
        "is busy waiting on 'agent-b''s own request ('agent-b' -> 'agent-a' -> 'agent-b')"
    )
    assert coord.stats().failed == 3  # the task, a's request to b, b's request to a
    assert all(info.status == "idle" for info in coord.agents.values())


async def test_a_longer_cycle_with_retries_still_ends(autojump_clock: MockClock) -> None:
    """a -> b -> c -> a, under the default retry policy: every retry meets the same
    deadlock, and the task ends FAILED once retries are spent, instead of hanging."""
    with trio.fail_after(60):
        async with open_coordinator() as coord:
            for name, asks in (("a", "b"), ("b", "c"), ("c", "a")):
                await Delegator(f"agent-{name}", name, asks).connect(coord)
            handle = coord.submit({"type": "a"})
            with pytest.raises(TaskFailed):
                await handle.wait()
    assert handle.status is AssignmentStatus.FAILED and handle.attempts == 3
    deadlock = root_cause(handle.error)
    assert isinstance(deadlock, DelegationDeadlock)
    assert deadlock.cycle == ["agent-c", "agent-a", "agent-b", "agent-c"]


async def test_delegation_that_can_be_served_is_not_called_a_deadlock(
    autojump_clock: MockClock,
) -> None:
    """No false alarms: a request that waits for a slot that another attempt, one that
    waits on nothing, will free; a request served by the requester's second slot; a
    request made from on_message, outside any attempt, which holds no slot."""

    class Asker(Agent):
        def __init__(self) -> None:
            super().__init__("asker", {"ask"})
            self.answers: list[Any] = []

        async def on_message(self, message: Message) -> None:
            self.answers.append(await self.request("a", {"hops": 1}))

    start = trio.current_time()
    with trio.fail_after(60):
        async with open_coordinator() as coord:
            await Delegator("agent-a", "a", "b", concurrency=2).connect(coord)
            await Delegator("agent-b", "b", "a").connect(coord)
            busy = coord.submit({"type": "b", "hops": 0})  # b is busy until 1.0
            # a -> b (queued behind busy) -> a (in a's second slot), which answers at 2.0
            chain = await coord.submit({"type": "a", "hops": 2}).wait()
            assert chain == ["agent-a", "agent-b", "agent-a"]
            assert await busy.wait() == ["agent-b"]
            assert trio.current_time() - start == 2.0
            asker = Asker()
            await asker.connect(coord)
            await asker.send_message(Message(MessageType.AGENT_STATUS, "asker", "asker"))
            await trio.sleep(5)
            assert asker.answers == [["agent-a", "agent-b"]]
    assert coord.stats().failed == 0


async def test_capacity_lost_later_can_turn_a_wait_into_a_deadlock(
    autojump_clock: MockClock,
) -> None:
    """b's request for "a" waits for "spare", the one agent with "a" that is not busy
    waiting on b; when "spare" goes silent, the request can never be served and fails."""

    class Spare(Agent):
        async def heartbeat(self) -> None:
            if trio.current_time() >= 0.6:
                await trio.sleep_forever()

        async def process_task(self, task: Any) -> Any:
            await trio.sleep(100)

    settings = {"heartbeat_interval": 0.5, "heartbeat_timeout": 1.5, "retry": None}
    with trio.fail_after(60):
        async with open_coordinator(**settings) as coord:  # type: ignore[arg-type]
            await Spare("spare", {"a"}).connect(coord)
            coord.submit({"type": "a", "hops": 0})  # spare works on it, and hangs at 0.6
            await Delegator("agent-a", "a", "b").connect(coord)
            await Delegator("agent-b", "b", "a").connect(coord)
            handle = coord.submit({"type": "a"})  # agent-a -> b -> "a": waits for spare
            await trio.sleep(1)
            assert handle.status is AssignmentStatus.ASSIGNED  # a wait, not a deadlock yet
            with pytest.raises(TaskFailed):
                await handle.wait()
            assert trio.current_time() == 2.0  # spare's last beat at 0.5: offline at 2.0
    assert isinstance(root_cause(handle.error), DelegationDeadlock)


async def test_an_attempt_that_blocks_past_task_timeout_times_out(
    autojump_clock: MockClock,
) -> None:
    """Blocking code gives the deadline no checkpoint to be delivered at: the attempt ran
    past its limit all the same, so it times out rather than completing."""
    import time

    class Blocker(Agent):
        def __init__(self) -> None:
            super().__init__("blocker", {"block"})

        async def process_task(self, task: Any) -> Any:
            time.sleep(0.05)  # noqa: ASYNC251 - blocking on purpose
            return "too late"

    autojump_clock.rate = 1.0  # virtual time follows real time through the blocking call
    async with open_coordinator(task_timeout=0.01, retry=0) as coord:
        await Blocker().connect(coord)
        handle = coord.submit({"type": "block"})
    assert handle.status is AssignmentStatus.TIMEOUT
    assert isinstance(handle.error, TimeoutError) and handle.result is None


async def test_a_made_up_id_never_clashes_with_a_named_one(autojump_clock: MockClock) -> None:
    """Unnamed tasks are numbered; a task the user named with a number that an unnamed
    one would get keeps its name, and both finish, each under its own id."""
    async with open_coordinator() as coord:
        await Worker("w", seconds=1).connect(coord)
        named = coord.submit(work(0), id=2)
        first, second = coord.submit(work(1)), coord.submit(work(2))
        assert len({named.id, first.id, second.id}) == 3
        assert await coord.result(2) == ("w", 0)
        assert await coord.result(second.id) == ("w", 2)
    assert coord.stats().completed == 3
