"""open_monitor over real runs: the live view in a recording console, and plain lines."""

from __future__ import annotations

import io

import pytest
import trio
from rich.console import Console
from trio.testing import MockClock

from trioflow import RetryPolicy, open_scheduler
from trioflow.agents import Agent, open_coordinator
from trioflow.monitor import open_monitor


async def sleepy(seconds: float) -> str:
    await trio.sleep(seconds)
    return "ok"


async def broken() -> None:
    raise ValueError("broken on purpose")


def recording_console() -> Console:
    return Console(record=True, width=110, force_terminal=True, color_system=None)


async def test_live_view_of_a_known_run(autojump_clock: MockClock) -> None:
    console = recording_console()
    async with (
        open_monitor(console=console, title="known run") as monitor,
        open_scheduler(max_workers=2) as sched,
    ):
        monitor.attach(sched)
        for i in range(4):
            sched.submit(sleepy, i + 1, id=f"job-{i}")
        sched.submit(broken, id="bad", retry=RetryPolicy(max_retries=1, delay=1))
    assert not monitor.plain
    text = console.export_text()
    final = text[text.rindex("known run") :]
    assert "5/5 finished (100%)" in final
    assert "completed 4" in final and "failed 1" in final
    assert "recent failures" in final
    assert "ValueError: broken on purpose" in final
    assert "retrying" in final


async def test_live_view_shows_running_tasks_while_they_run(autojump_clock: MockClock) -> None:
    console = recording_console()
    async with (
        open_monitor(console=console, refresh_per_second=10) as monitor,
        open_scheduler(max_workers=2) as sched,
    ):
        monitor.attach(sched)
        sched.submit(sleepy, 10, id="long-one")
        await trio.sleep(3)
        snapshot = console.export_text(clear=False)
    assert "running" in snapshot and "long-one" in snapshot
    assert "0/1 finished" in snapshot


async def test_agents_table(autojump_clock: MockClock) -> None:
    """Each agent's row: its completed work, and how long ago it last beat.

    The heartbeat interval (0.4 s) is chosen so that no beat falls on the instant the run
    ends (tasks take 1 s). With the default interval of 1 s the agents' last beats and the
    last task's completion all wake at the same virtual time, and trio deliberately runs a
    batch of tasks woken together in a random order: whether those beats were published
    before the coordinator closed its stream was a coin toss, and so was the
    "last heartbeat" column.
    """

    class Echo(Agent):
        def __init__(self, agent_id: str) -> None:
            super().__init__(agent_id, {"echo"})

        async def process_task(self, task: dict[str, int]) -> object:
            await trio.sleep(1)
            return task["n"]

    console = recording_console()
    async with (
        open_monitor(console=console) as monitor,
        open_coordinator(heartbeat_interval=0.4, heartbeat_timeout=1.2) as coord,
    ):
        monitor.attach(coord)
        await Echo("echo-1").connect(coord)
        await Echo("echo-2").connect(coord)
        await coord.run_all([{"type": "echo", "n": n} for n in range(6)])
    text = console.export_text()
    final = text[text.rindex("trioflow") :]
    assert "6/6 finished" in final
    assert "last heartbeat" in final
    rows = [" ".join(line.replace("│", " ").split()) for line in final.splitlines()]
    # agent, status, in flight, completed, failed, reassigned, restarts, last heartbeat
    assert "echo-1 idle 0 3 0 0 0 0.2s ago" in rows
    assert "echo-2 idle 0 3 0 0 0 0.2s ago" in rows


async def test_plain_lines_when_not_a_terminal(autojump_clock: MockClock) -> None:
    out = io.StringIO()
    async with open_monitor(plain=True, stream=out) as monitor, open_scheduler() as sched:
        monitor.attach(sched)
        sched.submit(sleepy, 2, id="fine")
        sched.submit(broken, id="bad")
    assert monitor.plain
    lines = out.getvalue().splitlines()
    assert any(line.startswith("[+") and "bad failed: ValueError" in line for line in lines)
    assert lines[-1].startswith("[+    2.00s] 2/2 finished (100%)")
    assert "completed 1  failed 1" in lines[-1]


async def test_a_console_that_is_not_a_terminal_gets_plain_lines(
    autojump_clock: MockClock,
) -> None:
    console = Console(file=io.StringIO(), record=True, width=200)
    async with open_monitor(console=console) as monitor, open_scheduler() as sched:
        monitor.attach(sched)
        sched.submit(sleepy, 1)
    assert monitor.plain
    assert "1/1 finished" in console.export_text()


async def test_plain_progress_lines_are_rate_limited(autojump_clock: MockClock) -> None:
    out = io.StringIO()
    start = trio.current_time()
    async with (
        open_monitor(plain=True, stream=out, refresh_per_second=100) as monitor,
        open_scheduler(max_workers=50) as sched,
    ):
        monitor.attach(sched)
        for i in range(500):
            sched.submit(sleepy, 0.01 * (i % 100))
    elapsed = trio.current_time() - start
    progress = [line for line in out.getvalue().splitlines() if "finished" in line]
    # 1500 events, but at most one progress line a second (plus the first and the final one)
    assert 2 <= len(progress) <= elapsed + 2


async def test_interrupting_the_run_says_so_and_propagates(autojump_clock: MockClock) -> None:
    out = io.StringIO()
    with pytest.raises(KeyError):
        async with (
            open_monitor(plain=True, stream=out) as monitor,
            open_scheduler() as sched,
        ):
            monitor.attach(sched)
            sched.submit(sleepy, 100)
            await trio.sleep(1)
            raise KeyError("stop")
    text = out.getvalue()
    assert "interrupted" in text
    assert "cancelled 1" in text


async def test_bad_refresh_rate() -> None:
    with pytest.raises(ValueError, match="refresh_per_second must be > 0"):
        async with open_monitor(refresh_per_second=0):
            pass
