"""RedisTransport against a real redis-server, with agents in real worker processes.

Timing bounds here are generous (a loaded CI machine): they tell "detected within the
heartbeat timeout" from "never", not fast from slow.
"""

from __future__ import annotations

import functools
import random
import signal
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import coredis
import pytest
import trio

from trioflow import TaskFailed, TaskRejected, UnknownAgentError, UnknownTaskError
from trioflow._machines import wait_online
from trioflow.agents import (
    Agent,
    AgentCapability,
    AgentGone,
    AssignmentStatus,
    Coordinator,
    EventKind,
    Message,
    MessageType,
    NoCapableAgentError,
    RedisTransport,
    open_coordinator,
    serve_agents,
)

from ._server import redis_server
from ._workers import worker_process
from .agents import Marker

# coredis 6.9 leaves the anyio memory streams of a connection unclosed when the connection is
# dropped under it (the server killed, or a client torn down by a cancel); they warn when
# collected. Not trioflow's streams: these tests kill servers and cancel clients on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning")

EXAMPLES = "trioflow.agents.examples"
SLEEPER = "redis_transport.agents:Sleeper"
MARKER = "redis_transport.agents:Marker"
QUITTER = "redis_transport.agents:Quitter"
FAST = {"heartbeat_interval": 0.2, "heartbeat_timeout": 1.0}


def sleep_task(n: int, seconds: float) -> dict[str, Any]:
    return {"type": "sleep", "n": n, "seconds": seconds}


@asynccontextmanager
async def served_coordinator(
    redis_url: str, ns: str, online: int, **options: Any
) -> AsyncIterator[Coordinator]:
    """A coordinator of namespace ``ns`` with the FAST heartbeats (and ``options``), once
    ``online`` agents are online in it."""
    transport = RedisTransport(redis_url, namespace=ns)
    async with open_coordinator(**{**FAST, **options}, transport=transport) as coord:
        await wait_online(coord, online)
        yield coord


def serve_in(nursery: trio.Nursery, agents: list[Any], redis_url: str, ns: str) -> None:
    """Serve ``agents`` as a worker of namespace ``ns``, in this process, until ``nursery``
    is cancelled."""
    transport = RedisTransport(redis_url, namespace=ns)
    nursery.start_soon(functools.partial(serve_agents, agents, transport=transport))


async def wait_status(coord: Coordinator, agent_id: str, online: bool) -> None:
    events = coord.subscribe()
    async with events:
        while (coord.agents.get(agent_id) is not None) != True or (  # noqa: E712
            (coord.agents[agent_id].status != "offline") != online
        ):
            await events.receive()


async def test_the_seed_scenario_with_agents_in_two_worker_processes(
    redis_url: str, ns: str
) -> None:
    """Section 3's example, its agents in two `trioflow worker` processes: they show in
    coord.agents with their capabilities and heartbeats, the results come back in order,
    and SIGTERM makes each worker leave and exit 0."""
    searchers = [f"{EXAMPLES}:SearchAgent", f"{EXAMPLES}:SearchAgent"]
    with trio.fail_after(60):
        async with (
            worker_process(redis_url, ns, searchers, "search") as search_worker,
            worker_process(redis_url, ns, [f"{EXAMPLES}:CalculatorAgent"], "calc-1") as calc,
            open_coordinator(
                heartbeat_interval=0.5,
                heartbeat_timeout=1.5,
                transport=RedisTransport(redis_url, namespace=ns),
            ) as coord,
        ):
            await wait_online(coord, 3)
            agents = coord.agents
            assert set(agents) == {"search-1", "search-2", "calc-1"}
            assert agents["calc-1"].capabilities == {AgentCapability.CALCULATE}
            assert agents["search-2"].capabilities == {AgentCapability.SEARCH}
            assert {info.status for info in agents.values()} == {"idle"}
            results = await coord.run_all(
                [
                    {"type": AgentCapability.SEARCH, "query": "trio"},
                    {"type": AgentCapability.CALCULATE, "expression": "10 + 20"},
                ]
            )
            assert results[0]["query"] == "trio" and results[0]["results"]
            assert results[1] == {"expression": "10 + 20", "result": 30}
            with pytest.raises(TypeError, match="not JSON serializable"):
                coord.submit({"type": AgentCapability.SEARCH, "query": object()})
            with pytest.raises(TypeError):
                coord.submit({"type": AgentCapability.CALCULATE, "expression": float("nan")})
            beat = coord.agents["calc-1"].last_heartbeat
            await trio.sleep(1.2)
            assert coord.agents["calc-1"].last_heartbeat > beat
            for worker in (search_worker, calc):
                worker.signal(signal.SIGTERM)
            assert await search_worker.process.wait() == 0, search_worker.output()
            assert await calc.process.wait() == 0, calc.output()
            await wait_status(coord, "calc-1", online=False)
            assert "handing back" in calc.output()
    assert coord.stats().completed == 2


async def test_a_sigkilled_worker_is_detected_and_its_task_finishes_on_another_once(
    redis_url: str, ns: str
) -> None:
    """SIGKILL mid-task: the agent is offline within heartbeat_timeout (plus a tick), its
    task is reassigned and completes exactly once, on the other worker."""
    with trio.fail_after(60):
        async with (
            worker_process(redis_url, ns, [SLEEPER], "a") as a,
            worker_process(redis_url, ns, [SLEEPER], "b") as b,
            open_coordinator(**FAST, transport=RedisTransport(redis_url, namespace=ns)) as coord,
        ):
            workers = {"a": a, "b": b}
            await wait_online(coord, 2)
            events = coord.subscribe()
            handle = coord.submit(sleep_task(1, 3.0), id="long")
            victim = str(handle.agent_id)
            survivor = "b" if victim == "a" else "a"
            await trio.sleep(0.5)
            killed_at = trio.current_time()
            workers[victim].signal(signal.SIGKILL)
            assert await handle.wait() == {"by": survivor, "n": 1}
            offline = [
                event
                async for event in _until(events, EventKind.AGENT_OFFLINE)
                if event.kind is EventKind.AGENT_OFFLINE
            ]
            assert offline[0].agent_id == victim
            # Detected within the timeout after its last beat: from the kill, at most the
            # timeout plus a poll; 2 s of slack for a loaded machine.
            assert offline[0].at - killed_at < 1.0 + 2.0
            assert handle.attempts == 2 and isinstance(handle.errors[0], AgentGone)
            assert coord.agents[victim].status == "offline"
        async with coredis.Redis.from_url(redis_url, decode_responses=True) as client:
            stored = await client.hgetall(f"{ns}:task:long")
            assert stored["state"] == "done" and survivor in stored["result"]
            assert await client.zcard(f"{ns}:open") == 0
    assert coord.stats().completed == 1


async def _until(events: Any, kind: EventKind) -> Any:
    """The events up to and including the first of ``kind``."""
    async for event in events:
        yield event
        if event.kind is kind:
            return


async def test_a_hung_worker_loses_its_task_and_comes_back(redis_url: str, ns: str) -> None:
    """SIGSTOP mid-task: the task is reassigned and completes once; on SIGCONT the worker
    finds its lease gone, drops its attempt, registers again and takes new work."""
    with trio.fail_after(60):
        async with (
            worker_process(redis_url, ns, [SLEEPER], "a") as a,
            worker_process(redis_url, ns, [SLEEPER], "b") as b,
            open_coordinator(**FAST, transport=RedisTransport(redis_url, namespace=ns)) as coord,
        ):
            workers = {"a": a, "b": b}
            await wait_online(coord, 2)
            handle = coord.submit(sleep_task(1, 2.0), id="hung")
            victim = str(handle.agent_id)
            await trio.sleep(0.3)
            workers[victim].signal(signal.SIGSTOP)
            result = await handle.wait()
            assert result["by"] != victim and handle.attempts == 2
            workers[victim].signal(signal.SIGCONT)
            await wait_status(coord, victim, online=True)
            more = await coord.run_all([sleep_task(n, 0.5) for n in range(2, 6)])
            assert {r["by"] for r in more} == {"a", "b"}
            await trio.sleep(2.5)  # anything the woken worker still had would report now
            assert "lost its lease" in workers[victim].output() or (
                "taken offline" in workers[victim].output()
            )
    stats = coord.stats()
    assert stats.completed == 5 and stats.submitted == 5


async def test_a_restarted_coordinator_finishes_the_unfinished_tasks(
    redis_url: str, ns: str
) -> None:
    """A coordinator dies with tasks in flight; the next one on the namespace adopts them,
    and coord.result(id) gives every result, also of tasks the first one finished."""
    with trio.fail_after(60):
        async with worker_process(redis_url, ns, [SLEEPER], "a"):
            with trio.CancelScope() as crash:
                async with open_coordinator(
                    **FAST, transport=RedisTransport(redis_url, namespace=ns)
                ) as first:
                    await wait_online(first, 1)
                    await first.submit(sleep_task(0, 0), id="early").wait()
                    for n in range(1, 5):
                        first.submit(sleep_task(n, 0.4), id=f"job-{n}")
                    await trio.sleep(0.3)
                    crash.cancel()  # dies: nothing more is written
            async with open_coordinator(
                **FAST, transport=RedisTransport(redis_url, namespace=ns)
            ) as second:
                results = [await second.result(f"job-{n}") for n in range(1, 5)]
                assert results == [{"by": "a", "n": n} for n in range(1, 5)]
                assert await second.result("early") == {"by": "a", "n": 0}
                with pytest.raises(UnknownTaskError):
                    await second.result("never")
                # Adopted: those still open when it started (the first may have finished
                # job-1 meanwhile: the worker completed it under the old epoch).
                assert second.stats().submitted in (3, 4)


async def test_a_redis_restart_with_aof_loses_nothing(ns: str, redis_server_bin: None) -> None:
    """kill -9 of Redis mid-run, then a restart on the same data (appendonly yes): every
    task completes exactly once and nothing is left open."""
    with redis_server(aof=True) as server, trio.fail_after(90):
        url = server.url
        async with (
            worker_process(url, ns, [SLEEPER], "a"),
            worker_process(url, ns, [SLEEPER], "b"),
            open_coordinator(
                heartbeat_interval=0.5,
                heartbeat_timeout=3.0,
                transport=RedisTransport(url, namespace=ns),
            ) as coord,
        ):
            await wait_online(coord, 2)
            handles = [coord.submit(sleep_task(n, 0.2), id=f"t{n}") for n in range(16)]
            await trio.sleep(0.7)
            server.kill()
            await trio.sleep(0.5)
            server.start()
            results = [await handle.wait() for handle in handles]
            assert [r["n"] for r in results] == list(range(16))
        async with coredis.Redis.from_url(url, decode_responses=True) as client:
            assert await client.zcard(f"{ns}:open") == 0
            states = [await client.hget(f"{ns}:task:t{n}", "state") for n in range(16)]
            assert states == ["done"] * 16
    stats = coord.stats()
    assert stats.completed == 16 and stats.failed == 0


async def test_garbage_on_the_wire_is_dead_lettered_with_the_reason(
    redis_url: str, ns: str
) -> None:
    """Entries that do not decode, of unknown kinds or malformed, sent to the coordinator
    and to an agent, go to the dead-letter stream with the reason; both carry on."""
    with trio.fail_after(60):
        async with (
            coredis.Redis.from_url(redis_url, decode_responses=True) as client,
            worker_process(redis_url, ns, [SLEEPER], "a"),
            open_coordinator(**FAST, transport=RedisTransport(redis_url, namespace=ns)) as coord,
        ):
            await wait_online(coord, 1)
            garbage = [
                (f"{ns}:in", {"junk": "1"}),
                (f"{ns}:in", {"k": "report", "a": "a", "tok": "1:1", "o": "done", "d": "{"}),
                (f"{ns}:in", {"k": "register", "a": "z", "s": "1", "d": "not json"}),
                (f"{ns}:in", {"k": "report", "a": "a", "tok": "garbage", "o": "done", "d": "1"}),
                (f"{ns}:agent:a", {"k": "msg", "d": "{broken"}),
                (f"{ns}:agent:a", {"k": "nonsense"}),
            ]
            for stream, fields in garbage:
                await client.xadd(stream, fields)
            assert await coord.submit(sleep_task(1, 0)).wait() == {"by": "a", "n": 1}
            while await client.xlen(f"{ns}:dead") < len(garbage):  # noqa: ASYNC110 - polls Redis
                await trio.sleep(0.05)
            dead = await client.xrange(f"{ns}:dead")
            reasons = sorted(dict(entry.field_values)["reason"] for entry in dead)
            assert any(reason.startswith("unknown kind None") for reason in reasons)
            assert any(reason.startswith("unknown kind 'nonsense'") for reason in reasons)
            assert any("malformed report" in reason for reason in reasons)
            assert any("malformed register" in reason for reason in reasons)
            assert any("malformed msg" in reason for reason in reasons)
            assert await coord.submit(sleep_task(2, 0)).wait() == {"by": "a", "n": 2}


class Echo(Agent):
    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id, {"echo"}, concurrency=4)

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        await trio.sleep(0.05)
        return task["n"]


async def test_ids_a_user_gives_never_clash_with_the_ones_made_up(redis_url: str, ns: str) -> None:
    """Tasks named "1-1", "1-2"... (on a fresh namespace: the first coordinator's epoch is 1)
    beside unnamed ones, alone and in a run_all: each runs its own payload and keeps its own
    result. A made-up id was "{epoch}-{n}", so it could be a name the user had given: the
    two tasks shared one record in Redis (the second ran the first's payload) and the
    coordinator crashed with a KeyError when the second one finished."""
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            serve_in(nursery, [Echo("e")], redis_url, ns)
            async with served_coordinator(redis_url, ns, 1) as coord:
                handles = []
                for n in range(1, 7):
                    handles.append(coord.submit({"type": "echo", "n": f"named {n}"}, id=f"1-{n}"))
                    handles.append(coord.submit({"type": "echo", "n": f"unnamed {n}"}))
                batch = coord.run_all([{"type": "echo", "n": f"batch {n}"} for n in range(6)])
                assert await batch == [f"batch {n}" for n in range(6)]
                assert [await handle.wait() for handle in handles] == [
                    f"{kind} {n}" for n in range(1, 7) for kind in ("named", "unnamed")
                ]
                assert len({handle.id for handle in handles}) == 12
                for n in range(1, 7):
                    assert await coord.result(f"1-{n}") == f"named {n}"
            nursery.cancel_scope.cancel()
    assert coord.stats().completed == 18


class Sleepy(Agent):
    """``{"type": "nap", "seconds": S}``; counts its naps."""

    naps = 0

    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id, {"nap"})

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        type(self).naps += 1
        await trio.sleep(task["seconds"])


class Unencodable(Agent):
    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id, {"odd"})

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        await trio.lowlevel.checkpoint()
        return {"set": object()} if task.get("bad") else {"ok": task["n"]}


async def test_a_result_that_cannot_cross_the_wire_fails_its_attempt(
    redis_url: str, ns: str
) -> None:
    """serve_agents in this process: an unencodable result fails that attempt with a
    TypeError that says so; the agent goes on working."""
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            serve_in(nursery, [Unencodable("u")], redis_url, ns)
            async with served_coordinator(redis_url, ns, 1, retry=None) as coord:
                bad = coord.submit({"type": "odd", "bad": True, "n": 1})
                with pytest.raises(TaskFailed) as failed:
                    await bad.wait()
                assert isinstance(failed.value.error, TypeError)
                assert "cannot cross the wire" in str(failed.value.error)
                assert await coord.submit({"type": "odd", "n": 2}).wait() == {"ok": 2}
            nursery.cancel_scope.cancel()


async def test_sigterm_hands_back_unfinished_work_without_charging_an_attempt(
    redis_url: str, ns: str
) -> None:
    """A worker stopped with SIGTERM mid-task exits 0; its task goes to another worker as
    if it had never been started (attempts stays 1)."""
    with trio.fail_after(60):
        async with (
            worker_process(redis_url, ns, [SLEEPER], "a") as a,
            worker_process(redis_url, ns, [SLEEPER], "b") as b,
            open_coordinator(**FAST, transport=RedisTransport(redis_url, namespace=ns)) as coord,
        ):
            workers = {"a": a, "b": b}
            await wait_online(coord, 2)
            handle = coord.submit(sleep_task(1, 2.0))
            leaving = str(handle.agent_id)
            await trio.sleep(0.5)
            workers[leaving].signal(signal.SIGTERM)
            assert await workers[leaving].process.wait() == 0, workers[leaving].output()
            result = await handle.wait()
            assert result["by"] != leaving
            assert handle.attempts == 1 and handle.status is AssignmentStatus.COMPLETED
            await wait_status(coord, leaving, online=False)
    assert coord.stats().heartbeats_missed == 0


async def test_an_agent_of_a_worker_that_disconnects_itself_leaves_as_in_process(
    redis_url: str, ns: str
) -> None:
    """`await self.disconnect()` inside a task of an agent served by a worker (issue 13: an
    agent class runs unchanged in another process): the task finishes there and is reported,
    a task queued meanwhile goes to another agent without counting an attempt, the
    coordinator sees the agent leave and its block ends; the worker serves its other agent
    on, and never registers the one that left again, not even with a new coordinator."""
    quitter = "w-1"
    with trio.fail_after(60):
        async with worker_process(redis_url, ns, [QUITTER, MARKER], "w") as w:
            async with served_coordinator(redis_url, ns, 2) as coord:
                events = coord.subscribe()
                leaving = coord.submit({**sleep_task(1, 1.0), "leave": True})
                queued = coord.submit(sleep_task(2, 0))
                await trio.sleep(0.5)  # the quitter has left by now; only then is b there
                async with worker_process(redis_url, ns, [SLEEPER], "b"):
                    assert await leaving.wait() == {"by": quitter, "n": 1}
                    assert await queued.wait() == {"by": "b", "n": 2}
                    assert leaving.attempts == 1 and queued.attempts == 1
                    async with events:
                        async for event in events:
                            if event.kind is EventKind.AGENT_OFFLINE:
                                break
                    assert event.agent_id == quitter
                    assert isinstance(event.error, AgentGone)
                    assert str(event.error) == f"agent {quitter!r} left"
                    assert coord.agents[quitter].status == "offline"
            # The block ended. A new coordinator hears from the worker's other agent, never
            # from the one that left.
            async with open_coordinator(
                **FAST, transport=RedisTransport(redis_url, namespace=ns)
            ) as second:
                await wait_online(second, 1)
                await trio.sleep(1.0)  # five heartbeat intervals: every agent registered
                assert sorted(second.agents) == ["w-2"]
                assert w.process.returncode is None, w.output()
                assert "crashed" not in w.output()


async def test_a_worker_whose_last_agent_disconnected_itself_exits_0(
    redis_url: str, ns: str
) -> None:
    """serve_agents returns once every agent it served has left, and `trioflow worker`
    exits 0; the task of the leaving agent is done and reported first."""
    with trio.fail_after(60):
        async with (
            worker_process(redis_url, ns, [QUITTER], "q") as q,
            open_coordinator(**FAST, transport=RedisTransport(redis_url, namespace=ns)) as coord,
        ):
            await wait_online(coord, 1)
            handle = coord.submit({**sleep_task(1, 0.2), "leave": True})
            assert await handle.wait() == {"by": "q", "n": 1}
            assert await q.process.wait() == 0, q.output()
            await wait_status(coord, "q", online=False)
    assert coord.stats().heartbeats_missed == 0


class Relay(Agent):
    """Delegates ``{"type": "relay", "n": N}`` to a sleeper and keeps what it is sent."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id, {"relay"})
        self.inbox: list[Any] = []
        self.got = trio.Event()

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        delegated = await self.request("sleep", {"n": task["n"], "seconds": 0})
        await self.send_message(Message(MessageType.AGENT_STATUS, self.id, "relay-2", "hello"))
        try:
            await self.send_message(Message(MessageType.AGENT_STATUS, self.id, "nobody", "?"))
        except UnknownAgentError as exc:
            refused = f"{type(exc).__name__}: {exc}"
        return {"via": self.id, "delegated": delegated, "refused": refused}

    async def on_message(self, message: Message) -> None:
        self.inbox.append((message.sender, message.content))
        self.got.set()


async def test_requests_and_messages_between_remote_agents(redis_url: str, ns: str) -> None:
    """request() delegates through the coordinator and returns the result to the asking
    attempt; send_message() reaches the receiver's on_message, across processes, and an
    unknown receiver raises in the sender as it would in process."""
    relays = [Relay("relay-1"), Relay("relay-2")]
    with trio.fail_after(30):
        async with (
            worker_process(redis_url, ns, [SLEEPER], "s"),
            trio.open_nursery() as nursery,
        ):
            serve_in(nursery, relays, redis_url, ns)
            async with served_coordinator(redis_url, ns, 3) as coord:
                handle = coord.submit({"type": "relay", "n": 7}, id="relayed")
                result = await handle.wait()
                assert result["delegated"] == {"by": "s", "n": 7}
                # An unknown receiver is the sender's error, across processes as in one.
                assert (
                    result["refused"]
                    == "UnknownAgentError: no agent with id 'nobody' is registered"
                )
                await relays[1].got.wait()
                assert relays[1].inbox == [(result["via"], "hello")]
            nursery.cancel_scope.cancel()


def test_the_worker_command_names_its_agents() -> None:
    """--id ID makes Class(ID); several --agent get -1, -2...; --concurrency applies."""
    from trioflow._machines import WorkerUsageError, load_agents

    (one,) = load_agents([SLEEPER], "solo", None)
    assert one.id == "solo" and one.concurrency == 1
    two = load_agents([SLEEPER, f"{EXAMPLES}:SearchAgent"], "w", 4)
    assert [agent.id for agent in two] == ["w-1", "w-2"]
    assert {agent.concurrency for agent in two} == {4}
    unnamed = load_agents([SLEEPER, SLEEPER], None, None)
    assert len({agent.id for agent in unnamed}) == 2
    with pytest.raises(WorkerUsageError, match="module:Class"):
        load_agents(["no-colon"], None, None)
    with pytest.raises(WorkerUsageError, match="not an Agent class"):
        load_agents(["trioflow:RetryPolicy"], None, None)


async def test_work_that_does_not_decode_is_dead_lettered_and_its_task_fails(
    redis_url: str, ns: str
) -> None:
    """A work entry whose payload the worker cannot decode goes to the dead-letter stream
    with the reason, and its task fails at once with a TaskRejected that says so (no
    retry, no hang); the agent goes on working."""
    with trio.fail_after(30):
        async with (
            coredis.Redis.from_url(redis_url, decode_responses=True) as client,
            trio.open_nursery() as nursery,
        ):
            serve_in(nursery, [Echo("e")], redis_url, ns)
            async with served_coordinator(redis_url, ns, 1) as coord:
                # Encodes, but decodes to no AgentCapability on the worker's side.
                bad = coord.submit({"type": "echo", "n": 1, "x": {"__capability__": "nope"}})
                with pytest.raises(TaskFailed) as failed:
                    await bad.wait()
                assert bad.attempts == 1
                assert isinstance(failed.value.error, TaskRejected)
                assert "did not decode on agent 'e'" in str(failed.value.error)
                assert f"dead-letter stream '{ns}:dead'" in str(failed.value.error)
                (dead,) = await client.xrange(f"{ns}:dead")
                fields = dict(dead.field_values)
                assert fields["stream"] == f"{ns}:agent:e"
                assert fields["reason"].startswith(f"work of task {bad.id!r} did not decode")
                assert await coord.submit({"type": "echo", "n": 2}).wait() == 2
            nursery.cancel_scope.cancel()


async def test_a_cancelled_task_does_not_run_again_when_the_worker_reconnects(
    redis_url: str, ns: str, tmp_path: Path
) -> None:
    """A task cancelled while it runs does not run again after the worker's reader lost
    its connection and walked its pending list again (the work entry of a cancelled task
    was left pending, and ran again)."""
    marks = tmp_path / "marks"

    def mark(n: int) -> dict[str, Any]:
        return {"type": "mark", "n": n, "path": str(marks)}

    with trio.fail_after(30):
        async with (
            coredis.Redis.from_url(redis_url, decode_responses=True) as client,
            trio.open_nursery() as nursery,
        ):
            serve_in(nursery, [Marker("m"), Sleepy("s")], redis_url, ns)
            async with served_coordinator(redis_url, ns, 2) as coord:
                running = coord.submit({"type": "nap", "seconds": 30})
                await trio.sleep(0.5)
                running.cancel()
                assert await coord.submit(mark(2)).wait() == 2
                for info in await client.client_list():
                    if info["name"].startswith("trioflow-reader:"):
                        await client.client_kill(identifier=int(info["id"]))
                await trio.sleep(1.0)  # the readers reconnect and walk their pending lists
                assert await coord.submit(mark(3)).wait() == 3
                for agent in ("m", "s"):
                    assert (await client.xpending(f"{ns}:agent:{agent}", "trioflow")).pending == 0
            nursery.cancel_scope.cancel()
    assert marks.read_text().split() == ["2", "3"]
    assert Sleepy.naps == 1


async def test_a_task_revoked_before_its_worker_saw_the_work_never_runs(
    redis_url: str, ns: str, tmp_path: Path
) -> None:
    """The worker reads a revoke before the work it revokes (the work entry sat unseen in
    its pending list, as after a read whose reply was lost): the work is handed back when
    it turns up, never run, and the slot it held is freed."""
    marks = tmp_path / "marks"

    def mark(n: int) -> dict[str, Any]:
        return {"type": "mark", "n": n, "path": str(marks)}

    inbox = f"{ns}:agent:m"
    with trio.fail_after(60):
        async with (
            coredis.Redis.from_url(redis_url, decode_responses=True) as client,
            worker_process(redis_url, ns, [MARKER], "m") as worker,
            open_coordinator(
                heartbeat_interval=0.5,
                heartbeat_timeout=10.0,
                transport=RedisTransport(redis_url, namespace=ns),
            ) as coord,
        ):
            await wait_online(coord, 1)
            assert await coord.submit(mark(0)).wait() == 0
            worker.signal(signal.SIGSTOP)
            await trio.sleep(0.3)  # its blocked read (100 ms) is over: none waits now
            handle = coord.submit(mark(1))
            while not await client.xlen(inbox):  # noqa: ASYNC110 - polls Redis
                await trio.sleep(0.02)
            # Read as the worker's consumer: pending for it, never seen by it.
            await client.xreadgroup("trioflow", "m", streams={inbox: ">"}, count=1)
            handle.cancel()
            while await client.xlen(inbox) < 2:  # noqa: ASYNC110 - polls Redis
                await trio.sleep(0.02)
            worker.signal(signal.SIGCONT)
            # One slot: the next task runs once the revoked assignment is reported.
            assert await coord.submit(mark(2)).wait() == 2
    assert marks.read_text().split() == ["0", "2"]


class Asker(Agent):
    """Delegates to a capability nobody has, and to one whose task fails, catching what
    ``request()`` raises in process."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id, {"ask"})

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        try:
            await self.request("nobody", {})
        except NoCapableAgentError as exc:
            nobody = exc.capability
        try:
            await self.request("refuse", {"why": "bad input"})
        except TaskFailed as exc:
            return [nobody, exc.status.value, type(exc.error).__name__, str(exc.error)]


class Refuser(Agent):
    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id, {"refuse"})

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        await trio.lowlevel.checkpoint()
        raise TaskRejected(task["why"])


async def test_a_remote_request_raises_what_it_raises_in_process(redis_url: str, ns: str) -> None:
    """An agent of a worker process that delegates gets NoCapableAgentError (with its
    capability) and TaskFailed (with its status and cause) from request(), as in process;
    they came back as RemoteError, which its except clauses did not catch."""
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            serve_in(nursery, [Asker("asker"), Refuser("refuser")], redis_url, ns)
            async with served_coordinator(redis_url, ns, 2) as coord:
                assert await coord.submit({"type": "ask"}).wait() == [
                    "nobody",
                    "failed",
                    "TaskRejected",
                    "bad input",
                ]
            nursery.cancel_scope.cancel()


class Delegator(Agent):
    """``{"type": "delegate"}``: asks a napper for a one-second nap, returns its answer."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id, {"delegate"})

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        return ["asked", await self.request("nap", {"seconds": 1.0})]


async def test_a_request_waiting_when_the_coordinator_restarts_is_answered_by_the_new_one(
    redis_url: str, ns: str
) -> None:
    """A remote agent's request() in progress when its coordinator stops is asked again of
    the coordinator that takes over (the old one's answer will never come), so the task
    that waits on it finishes; it waited for ever."""
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            serve_in(nursery, [Delegator("delegator"), Sleepy("napper")], redis_url, ns)
            with trio.CancelScope() as first:
                async with served_coordinator(redis_url, ns, 2) as coord:
                    coord.submit({"type": "delegate"}, id="delegating")
                    await trio.sleep(0.3)  # the request is made, the nap under way
                    first.cancel()
            async with open_coordinator(
                **FAST, transport=RedisTransport(redis_url, namespace=ns)
            ) as second:
                with trio.fail_after(10):
                    assert await second.result("delegating") == ["asked", None]
            nursery.cancel_scope.cancel()


class Wide(Agent):
    """``{"type": "wide", "n": N}``: 50 ms, then N; 50 at a time."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(agent_id, {"wide"}, concurrency=50)

    async def process_task(self, task: Mapping[str, Any]) -> Any:
        await trio.sleep(0.05)
        return task["n"]


async def test_redis_keeps_the_outcome_the_coordinator_gave_a_cancelled_task(
    redis_url: str, ns: str
) -> None:
    """Tasks cancelled about when their agent finishes them: whichever way each went, Redis
    keeps the outcome its handle gave, and coord.result() of a later coordinator says the
    same. A result that reached Redis before the cancel stayed there as "done" (for a
    quarter of the cancelled tasks here), so the task ended cancelled for one caller and
    completed for the next."""
    rng = random.Random(13)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            serve_in(nursery, [Wide("w")], redis_url, ns)
            async with served_coordinator(redis_url, ns, 1) as coord:
                handles = []
                async with trio.open_nursery() as cancels:
                    for n in range(120):
                        handle = coord.submit({"type": "wide", "n": n}, id=f"t{n}")
                        handles.append(handle)
                        cancels.start_soon(_cancel_after, handle, 0.05 + rng.uniform(-0.005, 0.01))
                        await trio.sleep(0.005)
            outcomes = {handle.id: handle.status for handle in handles}
            # Here about a quarter complete first; how many depends on the machine.
            ended = {AssignmentStatus.COMPLETED, AssignmentStatus.CANCELLED}
            assert set(outcomes.values()) <= ended
            async with open_coordinator(
                **FAST, transport=RedisTransport(redis_url, namespace=ns)
            ) as later:
                for task_id, status in outcomes.items():
                    if status is AssignmentStatus.COMPLETED:
                        assert await later.result(task_id) == int(str(task_id)[1:])
                    else:
                        with pytest.raises(TaskFailed) as failed:
                            await later.result(task_id)
                        assert failed.value.status is AssignmentStatus.CANCELLED
            nursery.cancel_scope.cancel()


async def _cancel_after(handle: Any, seconds: float) -> None:
    await trio.sleep(seconds)
    handle.cancel()


async def test_serve_agents_refuses_an_agent_connected_in_this_process() -> None:
    """An agent connected to a coordinator here is refused by serve_agents at once (it ran
    in both, its request() and send_message() then going through the worker's link), as
    are the other bad arguments; nothing is connected to Redis for them."""
    nowhere = "redis://127.0.0.1:1/0"
    async with open_coordinator() as coord:
        echo = Echo("e")
        await echo.connect(coord)
        with (
            trio.fail_after(5),  # it tried to reach Redis (and waited for a coordinator)
            pytest.raises(RuntimeError, match=r"^agent 'e' is already connected to a coordinator$"),
        ):
            await serve_agents([echo], transport=RedisTransport(nowhere))
        await echo.disconnect()
    with pytest.raises(ValueError, match=r"^serve_agents needs at least one agent$"):
        await serve_agents([], transport=RedisTransport(nowhere))
    with pytest.raises(ValueError, match=r"^two agents have the id 'x'$"):
        await serve_agents([Echo("x"), Echo("x")], transport=RedisTransport(nowhere))
    with pytest.raises(TypeError, match="needs a string id"):
        await serve_agents([Sleepy(7)], transport=RedisTransport(nowhere))  # type: ignore[arg-type]
