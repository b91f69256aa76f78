"""Agents across processes from the command line: ``trioflow worker`` and
``trioflow demo machines``.

``trioflow worker --redis URL --agent module:Class`` imports each class, makes one agent of
it (``Class(ID)``) and serves them all with :func:`~trioflow.agents.serve_agents` until
SIGINT or SIGTERM, when it hands back its unfinished work and exits 0.

``trioflow demo machines --redis URL`` shows a failover live: a coordinator under the
monitor, two worker processes started as that command, one of them SIGKILLed while it works;
its task is reassigned, and completes exactly once.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import trio

from .agents import Agent, Coordinator
from .agents.examples import SearchAgent

__all__ = ["RedisUnreachable", "SlowSearchAgent", "load_agents", "machines_demo", "run_worker"]


class WorkerUsageError(Exception):
    """A ``--agent`` that names no agent class, or options that do not fit together."""


class RedisUnreachable(Exception):
    """The machines demo found no Redis answering at its ``--redis`` URL."""


#: How long the machines demo waits for Redis to answer its first ping.
REACH_TIMEOUT = 5.0


async def reach_redis(url: str) -> None:
    """Ping ``url`` once, so that a demo without a Redis says so in one line instead of
    starting workers and a monitor that have nothing to talk to.

    Raises:
        RedisUnreachable: no answer within ``REACH_TIMEOUT`` seconds, or the connection
            failed.
    """
    import coredis

    from .agents.transport._streams import open_client

    client: coredis.Redis[str] = coredis.Redis.from_url(url, decode_responses=True)
    try:
        with trio.fail_after(REACH_TIMEOUT):
            async with open_client(client):
                await client.ping()
    except (OSError, trio.TooSlowError, coredis.exceptions.RedisError) as error:
        why = str(error) or type(error).__name__
        raise RedisUnreachable(f"cannot reach Redis at {url}: {why}") from None


def load_agents(specs: Sequence[str], agent_id: str | None, concurrency: int | None) -> list[Agent]:
    """One agent per ``module:Class`` spec, made as ``Class(id)``: ``agent_id`` (``--id``),
    or else the host name and process id, suffixed ``-1``, ``-2``... when there are several
    specs.

    Raises:
        WorkerUsageError: a spec that is not ``module:Class``, a module that does not
            import, or a class that is not an :class:`~trioflow.agents.Agent`.
    """
    agents: list[Agent] = []
    base = agent_id or f"{socket.gethostname()}-{os.getpid()}"
    for index, spec in enumerate(specs, start=1):
        module_name, sep, class_name = spec.partition(":")
        if not sep or not module_name or not class_name:
            raise WorkerUsageError(f"--agent takes module:Class, got {spec!r}")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise WorkerUsageError(
                f"--agent {spec}: cannot import {module_name!r}: {exc}"
            ) from None
        cls = getattr(module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Agent)):
            raise WorkerUsageError(f"--agent {spec}: {class_name!r} is not an Agent class")
        name = base if len(specs) == 1 else f"{base}-{index}"
        agent = cls(name)  # type: ignore[call-arg]  # an agent class takes its id alone
        if concurrency is not None:
            agent.concurrency = concurrency
        agents.append(agent)
    return agents


async def run_worker(
    url: str,
    agents: Sequence[Agent],
    *,
    namespace: str = "trioflow",
    write: Callable[[str], None] = print,
) -> None:
    """Serve ``agents`` until SIGINT or SIGTERM (then hand back the unfinished work), or
    until every agent has left by itself (``agent.disconnect()``); the command then exits 0."""
    from .agents import RedisTransport, serve_agents

    transport = RedisTransport(url, namespace=namespace)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def serve() -> None:
                await serve_agents(agents, transport=transport)
                nursery.cancel_scope.cancel()

            nursery.start_soon(serve)
            write(
                f"trioflow worker: serving {', '.join(repr(a.id) for a in agents)} "
                f"on {url} (namespace {namespace!r}); Ctrl-C to stop"
            )
            async for signum in signals:
                write(f"trioflow worker: {signal.Signals(signum).name}: handing back, stopping")
                nursery.cancel_scope.cancel()
                break


async def wait_online(coord: Coordinator, count: int) -> None:
    """Wait until ``count`` agents are online (they register from their own processes)."""
    events = coord.subscribe()
    async with events:
        while sum(info.status != "offline" for info in coord.agents.values()) < count:
            await events.receive()


class SlowSearchAgent(SearchAgent):
    """The demo's searcher: a second per search, so a kill lands mid-task."""

    def __init__(self, agent_id: Hashable) -> None:
        super().__init__(agent_id, latency=1.0)


async def machines_demo(
    url: str,
    write: Callable[[str], None] = print,
    *,
    namespace: str | None = None,
    tasks: int = 8,
    plain: bool | None = None,
    slow_after: float = 30.0,
) -> None:
    """Two worker processes, a coordinator under the monitor, one worker SIGKILLed while it
    works: its task goes to the other, and every task completes exactly once."""
    from .agents import AgentCapability, RedisTransport, open_coordinator
    from .monitor import open_monitor

    ns = namespace or f"trioflow-demo-{os.getpid()}"
    await reach_redis(url)
    write(f"== trioflow machines demo: two worker processes on {url}, namespace {ns!r} ==")
    workers: dict[str, trio.Process] = {}
    start = trio.current_time()
    queries = ["trio nursery", "retry backoff", "priority queue", "heartbeat", "LangChain"]
    work = [
        {"type": AgentCapability.SEARCH, "query": queries[n % len(queries)]} for n in range(tasks)
    ]

    async def spawn(name: str) -> None:
        command = [
            sys.executable, "-m", "trioflow", "worker", "--redis", url, "--namespace", ns,
            "--agent", "trioflow._machines:SlowSearchAgent", "--id", name,
        ]  # fmt: skip
        workers[name] = await trio.lowlevel.open_process(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    try:
        async with (
            open_monitor(title="machines", plain=plain, slow_after=slow_after) as mon,
            open_coordinator(
                heartbeat_interval=0.5,
                heartbeat_timeout=1.5,
                transport=RedisTransport(url, namespace=ns),
            ) as coord,
        ):
            mon.attach(coord)
            for name in ("worker-a", "worker-b"):
                await spawn(name)
            with trio.fail_after(30):
                await wait_online(coord, 2)
            handles = [coord.submit(task, id=f"search-{n}") for n, task in enumerate(work)]
            await trio.sleep(1.5)  # both busy with their second task
            victim = workers["worker-a"]
            write(f"-- killing worker-a (pid {victim.pid}) with SIGKILL, mid-task --")
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
            for handle in handles:
                await handle.wait()
        write("\n== results ==")
        for handle in handles:
            result: Any = handle.result
            titles = ", ".join(hit["title"] for hit in result["results"]) or "(no match)"
            write(
                f"  {handle.id!s:<10} by {handle.agent_id!s:<9} "
                f"attempts={handle.attempts}  {titles}"
            )
        stats = coord.stats()
        write(
            f"\n  submitted={stats.submitted} completed={stats.completed} "
            f"reassigned={stats.reassigned} heartbeats_missed={stats.heartbeats_missed}"
        )
        write(f"  wall time {trio.current_time() - start:.2f}s")
    finally:
        with trio.CancelScope(shield=True):
            for process in workers.values():
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                for process in workers.values():
                    await process.wait()
            for process in workers.values():
                if process.returncode is None:
                    process.kill()
