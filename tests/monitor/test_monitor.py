"""open_monitor over real runs: the live view in a recording console, and plain lines."""

from __future__ import annotations

import io
import math
import re
import sys

import pytest
import trio
from rich.console import Console
from trio.testing import MockClock

from trioflow import RetryPolicy, TaskEvent, TaskStatus, open_scheduler
from trioflow.agents import Agent, open_coordinator
from trioflow.monitor import open_monitor

STAMP = re.compile(r"^\[\+ *([0-9.]+)s\] ")


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


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"refresh_per_second": 0}, ValueError, "refresh_per_second must be > 0, got 0"),
        ({"refresh_per_second": "4"}, TypeError, "refresh_per_second must be a number, got '4'"),
        ({"slow_after": -1.0}, ValueError, "slow_after must be > 0, got -1.0"),
        ({"slow_after": math.inf}, ValueError, "slow_after must be finite, got inf"),
        ({"title": None}, TypeError, "title must be a str, got None"),
        ({"plain": "yes"}, TypeError, "plain must be a bool or None, got 'yes'"),
        ({"stream": "x"}, TypeError, "stream must be a text stream (with write()), got 'x'"),
    ],
)
async def test_bad_options(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        async with open_monitor(**options):  # type: ignore[arg-type]
            pass


async def test_attach_checks_its_arguments() -> None:
    async with open_monitor(plain=True, stream=io.StringIO()) as monitor:
        expected = "source must be a scheduler or a coordinator (with subscribe()), got <object"
        with pytest.raises(TypeError, match=f"^{re.escape(expected)}"):
            monitor.attach(object())  # type: ignore[arg-type]
        source = FakeSource()
        monitor.attach(source, name="mine")
        with pytest.raises(TypeError, match=r"^name must be a str, got 1$"):
            monitor.attach(source, name=1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"^a source named 'mine' is already watched$"):
            monitor.attach(source, name="mine")


# -- several sources ---------------------------------------------------------------------------


class FakeSource:
    """A source whose events the test sends itself, at the times it chooses."""

    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[TaskEvent](math.inf)

    def subscribe(self) -> trio.MemoryReceiveChannel[TaskEvent]:
        return self.receive


def stamps(text: str) -> list[float]:
    return [float(m.group(1)) for line in text.splitlines() if (m := STAMP.match(line))]


async def test_schedulers_that_share_task_ids_are_kept_apart(autojump_clock: MockClock) -> None:
    out = io.StringIO()
    async with (
        open_monitor(plain=True, stream=out) as monitor,
        open_scheduler() as first,
        open_scheduler() as second,
    ):
        monitor.attach(first)
        monitor.attach(second)
        first.submit(sleepy, 1, id="job")
        second.submit(broken, id="job")
    lines = out.getvalue().splitlines()
    assert any(
        line.endswith("] scheduler-2:job failed: ValueError: broken on purpose") for line in lines
    )
    assert "2/2 finished (100%)" in lines[-1] and "completed 1  failed 1" in lines[-1]


async def test_coordinators_that_share_agent_and_task_ids_are_kept_apart(
    autojump_clock: MockClock,
) -> None:
    class Echo(Agent):
        def __init__(self) -> None:
            super().__init__("echo", {"echo"})

        async def process_task(self, task: dict[str, int]) -> object:
            await trio.sleep(task["n"])
            return task["n"]

    console = recording_console()
    # (heartbeats that never fall on the instant the run ends: see test_agents_table)
    async with (
        open_monitor(console=console, title="two") as monitor,
        open_coordinator(heartbeat_interval=0.4, heartbeat_timeout=1.2) as left,
        open_coordinator(heartbeat_interval=0.4, heartbeat_timeout=1.2) as right,
    ):
        monitor.attach(left, name="left")
        monitor.attach(right, name="right")
        await Echo().connect(left)
        await Echo().connect(right)
        left.submit({"type": "echo", "n": 1})
        right.submit({"type": "echo", "n": 3})
        await trio.sleep(2)
        snapshot = console.export_text(clear=False)
    running = snapshot[snapshot.rindex("two") :]
    assert re.search(r"right:\d+ +│ +1 +│ +[12]\.\ds +│ echo", running)
    assert not re.search(r"left:\d+ +│", running)  # finished at 1 s
    final = console.export_text()
    final = final[final.rindex("two") :]
    assert "2/2 finished" in final
    rows = [" ".join(line.replace("│", " ").split()) for line in final.splitlines()]
    assert "left:echo idle 0 1 0 0 0 0.2s ago" in rows
    assert "right:echo idle 0 1 0 0 0 0.2s ago" in rows


async def test_plain_timestamps_never_go_backwards(autojump_clock: MockClock) -> None:
    """An event read late (another source's channel was read first) is not stamped before
    lines already written: never earlier than the last stamp, never earlier than itself."""
    out = io.StringIO()
    prompt, laggard = FakeSource(), FakeSource()
    async with open_monitor(plain=True, stream=out) as monitor:
        monitor.attach(prompt, name="prompt")
        monitor.attach(laggard, name="laggard")
        await trio.sleep(6)
        prompt.send.send_nowait(TaskEvent("a", TaskStatus.FAILED, 1, 5.0, ValueError("a")))
        await trio.testing.wait_all_tasks_blocked()
        # the laggard's event happened earlier, but is read only now
        laggard.send.send_nowait(TaskEvent("b", TaskStatus.FAILED, 1, 2.0, ValueError("b")))
        await trio.sleep(0.5)
        # and this one arrives as the monitor closes
        laggard.send.send_nowait(TaskEvent("c", TaskStatus.FAILED, 1, 3.0, ValueError("c")))
    text = out.getvalue()
    assert "[+    5.00s] prompt:a failed: ValueError: a" in text
    assert "[+    6.00s] laggard:b failed: ValueError: b" in text
    assert "[+    6.00s] laggard:c failed: ValueError: c" in text
    assert text.splitlines()[-1].startswith("[+    6.50s] 3/3 finished")
    times = stamps(text)
    assert len(times) == 5 and times == sorted(times)


async def test_timestamps_of_a_real_multi_source_run_are_in_order(
    autojump_clock: MockClock,
) -> None:
    out = io.StringIO()
    async with (
        open_monitor(plain=True, stream=out) as monitor,
        open_scheduler(max_workers=3) as first,
        open_scheduler(max_workers=2) as second,
    ):
        monitor.attach(first)
        monitor.attach(second)
        for i in range(30):
            first.submit(broken if i % 3 == 0 else sleepy, *(() if i % 3 == 0 else (0.1 * i,)))
            second.submit(broken if i % 4 == 0 else sleepy, *(() if i % 4 == 0 else (0.2 * i,)))
    times = stamps(out.getvalue())
    assert len([line for line in out.getvalue().splitlines() if " failed: " in line]) == 18
    assert times == sorted(times)


# -- ending ------------------------------------------------------------------------------------


async def test_interrupting_a_big_run_prints_one_summary_not_a_line_per_task(
    autojump_clock: MockClock,
) -> None:
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        async with (
            open_monitor(plain=True, stream=out) as monitor,
            open_scheduler(max_workers=4) as sched,
        ):
            monitor.attach(sched)
            roots = [sched.submit(sleepy, 10, id=f"root-{i}") for i in range(100)]
            for i, root in enumerate(roots):
                # cancelled through a cancelled dependency, when the roots are
                sched.submit(sleepy, 1, root, id=f"leaf-{i}")
            await trio.sleep(1)
            raise KeyboardInterrupt
    lines = out.getvalue().splitlines()
    assert not [line for line in lines if re.search(r"\] \S+ cancelled", line)]
    assert lines[-1] == (
        "[+    1.00s] interrupted: the run was cancelled; 200 tasks: cancelled 200"
    )
    assert "200/200 finished" in lines[-2] and "cancelled 200" in lines[-2]
    assert len(lines) <= 4


class ClosedAfter(io.StringIO):
    """A pipe whose reader goes away after reading ``lines`` lines."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.lines = lines
        self.refused = 0

    def write(self, text: str) -> int:
        if self.getvalue().count("\n") >= self.lines:
            self.refused += 1
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


async def test_a_closed_output_stops_the_run_and_nothing_more_is_written(
    autojump_clock: MockClock,
) -> None:
    out = ClosedAfter(lines=2)
    with pytest.RaisesGroup(BrokenPipeError, allow_unwrapped=True, flatten_subgroups=True):
        async with (
            open_monitor(plain=True, stream=out) as monitor,
            open_scheduler(max_workers=1) as sched,
        ):
            monitor.attach(sched)
            handles = [sched.submit(sleepy, 0.7) for _ in range(100)]
    # lines at 0 and 1 s; the redraw at 2 s found the pipe closed, and the run stopped
    assert trio.current_time() == 2.0
    assert out.refused == 1
    assert len(out.getvalue().splitlines()) == 2
    assert [h.status for h in handles].count(TaskStatus.COMPLETED) == 2  # at 0.7 and 1.4 s
    assert [h.status for h in handles].count(TaskStatus.CANCELLED) == 98


# -- hung work ---------------------------------------------------------------------------------


async def test_a_hung_task_gets_one_still_running_line(autojump_clock: MockClock) -> None:
    """No event comes from a hung task: the monitor's own timer notices it crossing
    ``slow_after``, and says so once."""
    out = io.StringIO()
    async with (
        open_monitor(plain=True, stream=out, slow_after=10) as monitor,
        open_scheduler() as sched,
    ):
        monitor.attach(sched)
        sched.submit(sleepy, 1, id="quick")
        hung = sched.submit(trio.sleep_forever, id="hung")
        await trio.sleep(25)
        so_far = out.getvalue().splitlines()
        hung.cancel()
    assert so_far[-2:] == [
        "[+   10.00s] hung still running after 10.0s (attempt 1)",
        "[+   10.00s] 1/2 finished (50%)  0.1/s  ETA 10.0s  elapsed 10.0s | running 1  "
        "completed 1 | running hung 10.0s (slow)",
    ]
    assert sum("still running" in line for line in out.getvalue().splitlines()) == 1


async def test_a_hung_agent_assignment_gets_one_still_running_line(
    autojump_clock: MockClock,
) -> None:
    class Stuck(Agent):
        def __init__(self) -> None:
            super().__init__("stuck-1", {"work"})

        async def process_task(self, task: dict[str, str]) -> object:
            await trio.sleep_forever()

    out = io.StringIO()
    async with (
        open_monitor(plain=True, stream=out, slow_after=5) as monitor,
        open_coordinator() as coord,
    ):
        monitor.attach(coord)
        await Stuck().connect(coord)
        handle = coord.submit({"type": "work"})
        await trio.sleep(8)
        handle.cancel()
    notices = [line for line in out.getvalue().splitlines() if "still running" in line]
    assert len(notices) == 1
    assert re.fullmatch(
        r"\[\+ +5\.00s\] \S+@stuck-1 still running after 5\.0s \(attempt 1\)", notices[0]
    )
    assert re.search(r"\| running \S+@stuck-1 [67]\.0s \(slow\)", out.getvalue())


async def test_live_view_ticks_running_times_and_marks_slow_tasks(
    autojump_clock: MockClock,
) -> None:
    """The running time keeps growing on screen while no event comes, and turns "slow"."""
    console = recording_console()
    async with (
        open_monitor(console=console, slow_after=5) as monitor,
        open_scheduler() as sched,
    ):
        monitor.attach(sched)
        hung = sched.submit(trio.sleep_forever, id="hung")
        await trio.sleep(8)
        text = console.export_text(clear=False)
        hung.cancel()
    shown = [float(t) for t in re.findall(r"hung +│ +1 +│ +([0-9.]+)s", text)]
    # redrawn about once a second with no event at all
    assert len(shown) >= 7 and shown == sorted(shown) and shown[-1] >= 7.0
    assert re.search(r"hung +│ +1 +│ +[5-9]\.\ds slow", text)
    assert "1 running longer than 5.0s" in text


async def test_brackets_in_ids_and_errors_are_shown_as_written_not_as_markup(
    autojump_clock: MockClock,
) -> None:
    """Ids and error messages are the user's text: "[/]" in one used to raise rich's
    MarkupError from a redraw, which stopped the run; "[bold]" vanished as a style."""

    async def bad() -> None:
        raise ValueError("no match for [/] in line [bold]3")

    console = recording_console()
    async with open_monitor(console=console) as monitor, open_scheduler() as sched:
        monitor.attach(sched)
        slow = sched.submit(sleepy, 5, id="job[/x]")
        failed = sched.submit(bad, id="[bold]bad")
        await trio.sleep(2)
        snapshot = console.export_text(clear=False)
    assert slow.status is TaskStatus.COMPLETED and failed.status is TaskStatus.FAILED
    assert "job[/x]" in snapshot  # in the running table
    final = console.export_text()
    assert "[bold]bad" in final
    assert "ValueError: no match for [/] in line [bold]3" in final


async def test_an_id_used_again_after_it_was_forgotten_counts_as_a_new_task(
    autojump_clock: MockClock,
) -> None:
    """keep_finished lets a forgotten id be submitted again: the view used to count the
    three runs of "daily" as one task finished three times ("3/1 finished (300%)")."""
    out = io.StringIO()
    async with (
        open_monitor(plain=True, stream=out) as monitor,
        open_scheduler(keep_finished=0) as sched,
    ):
        monitor.attach(sched)
        for _ in range(3):
            await sched.submit(sleepy, 1, id="daily").wait()
    assert (monitor.view.total, monitor.view.finished) == (3, 3)
    assert monitor.view.counts["completed"] == 3 == sched.stats().completed
    assert "3/3 finished (100%)" in out.getvalue().splitlines()[-1]


async def test_an_error_whose_str_raises_is_listed_not_a_crash(autojump_clock: MockClock) -> None:
    """The scheduler records such a failure like any other; the monitor must too, rather
    than stop the run with the AttributeError from the error's __str__."""

    class Odd(Exception):
        def __str__(self) -> str:
            raise AttributeError("not set")

    async def odd() -> None:
        raise Odd

    out = io.StringIO()
    async with open_monitor(plain=True, stream=out) as monitor, open_scheduler() as sched:
        monitor.attach(sched)
        handle = sched.submit(odd, id="odd")
        sched.submit(sleepy, 1, id="fine")
    assert handle.status is TaskStatus.FAILED
    assert "odd failed: Odd" in out.getvalue()
    assert monitor.view.counts["completed"] == 1


async def test_attach_after_the_block_subscribes_nothing(autojump_clock: MockClock) -> None:
    """It used to subscribe, then fail on the closed nursery: the channel it kept, read by
    nobody, buffered every event of the source for as long as the monitor was referenced."""
    async with open_scheduler() as sched:
        async with open_monitor(plain=True, stream=io.StringIO()) as monitor:
            pass
        subscribed = sched.subscribe
        calls = []
        sched.subscribe = lambda: calls.append(1) or subscribed()  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="this monitor has ended"):
            monitor.attach(sched)
        assert calls == [] and monitor.view.sources == []


async def test_a_failed_first_draw_gives_the_terminal_back() -> None:
    """The live view starts (redirecting sys.stdout into its console, hiding the cursor)
    before its first draw; when that draw raised, nothing stopped it, and every later
    print of the program went into the monitor's console."""
    stdout = sys.stdout

    class Refusing(io.StringIO):
        def write(self, text: str) -> int:
            if "trioflow" in text:  # the view's first draw, not the Live's control codes
                raise OSError("device gone")
            return super().write(text)

    console = Console(file=Refusing(), force_terminal=True, width=80)
    # (raised in the monitor's nursery, where the view is built: in an ExceptionGroup)
    with pytest.raises(ExceptionGroup) as info:
        async with open_monitor(console=console):
            pass  # pragma: no cover
    assert info.group_contains(OSError, match="device gone")
    assert sys.stdout is stdout


async def test_a_source_attached_twice_is_refused_not_counted_twice(
    autojump_clock: MockClock,
) -> None:
    """Attached twice (under the default name, which numbers the second), every task was
    shown twice: '0/2 finished' for one task."""
    async with open_monitor(plain=True, stream=io.StringIO()) as monitor, open_scheduler() as s:
        monitor.attach(s)
        with pytest.raises(ValueError, match=r"^this source is already watched, as 'scheduler'$"):
            monitor.attach(s)
        with pytest.raises(ValueError, match="already watched"):
            monitor.attach(s, name="again")
        s.submit(sleepy, 1, id="x")
    assert (monitor.view.total, monitor.view.finished) == (1, 1)
    assert monitor.view.sources == ["scheduler"]


async def test_control_characters_in_ids_and_errors_are_escaped(autojump_clock: MockClock) -> None:
    """A newline in a task id split its plain line in two, so an id could forge a line of
    its own; an escape sequence in an error reached the terminal, which obeyed it."""

    async def bad() -> None:
        raise ValueError("x\x1b[2Jy")

    out = io.StringIO()
    async with open_monitor(plain=True, stream=out) as monitor, open_scheduler() as sched:
        monitor.attach(sched)
        sched.submit(bad, id="job-1\n[+    0.00s] all good")
    lines = out.getvalue().splitlines()
    assert lines[0] == r"[+    0.00s] job-1\n[+    0.00s] all good failed: ValueError: x\x1b[2Jy"
    assert len(lines) == 2 and "\x1b" not in out.getvalue()
