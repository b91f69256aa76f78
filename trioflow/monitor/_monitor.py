"""open_monitor: watch schedulers and coordinators live, through their event streams.

The monitor never polls task state: it folds events into a :class:`RunView` as they arrive
and redraws when something changed, at most ``refresh_per_second`` times a second. Its
channels are the sources' unbounded subscriber channels, so the sources never wait for the
monitor to read. Its output, though, is written synchronously, in the event loop (a write
in a thread would let a mock clock jump past it): an output that blocks (a full pipe whose
reader has stopped reading, a paused terminal) holds up the whole run until it takes the
line, heartbeats included. On a terminal it draws a live ``rich`` view; elsewhere (CI logs,
pipes), or without ``rich``, it writes plain timestamped lines: each failure as it happens,
and a progress line at most once a second.

**Time passes without events.** A task that hangs sends nothing, so a monitor that drew
only on events would freeze its running times exactly when they matter. While tasks run,
the live view is redrawn every second anyway; the plain lines, which must stay few, get one
line for each task the moment it has run longer than ``slow_after``. Both are timers on the
monitor's own clock, not polls of the sources.

**Plain timestamps never go backwards.** Events from several sources sit in separate
channels and are read in whatever order the consumer tasks run, and the last ones are read
only when the monitor closes; an event can so arrive after a line with a later time was
written. Each line is stamped with the later of its own time and the last stamp written:
never earlier than what it reports, never later than when it was written.

**Ending.** Leaving the block takes in what is left in the channels and draws once more. If
the block raised (Ctrl-C, an error, a cancelled scope), the last word is one summary line
of how the run stood, not a line per cancelled task. If the output goes away (a pipe to
``head`` that has read enough), the first failed write raises ``BrokenPipeError``, which
stops the run: nobody is watching it any more, and nothing more is written. Raised by a
redraw, which runs in the monitor's nursery, it leaves the block inside an
``ExceptionGroup`` as any error of a nursery's task does (``except* BrokenPipeError``);
raised by the final draw, as itself.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol, TextIO, final

import trio

from .._owner import open_owner
from .._validate import check_number
from ._render import counts_text, duration, plain_line, rich_view, running_label, stamp
from ._view import Key, RunView

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from ._view import Event

_TICK = 1.0  # how often the live view redraws while tasks run, event or not


class Subscription(Protocol):
    """What a monitor reads from a source: the :class:`~trioflow.EventChannel` that
    ``subscribe()`` returns, or any receive channel that can also be read without waiting
    and closed (a trio memory channel's receive end, say)."""

    def __aiter__(self) -> AsyncIterator[Event]: ...

    def receive_nowait(self) -> Event: ...

    def close(self) -> None: ...


class Source(Protocol):
    """What a monitor can watch: a scheduler, a coordinator, anything with their
    ``subscribe()``."""

    def subscribe(self) -> Subscription: ...


@final
class Monitor:
    """Attach sources with :meth:`attach`; get one from :func:`open_monitor`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        console: Console | None,
        stream: TextIO,
        interval: float,
        title: str,
        plain: bool,
        slow_after: float,
    ) -> None:
        self._nursery = nursery
        self._console = console  # None: plain lines to ``stream``
        self._stream = stream
        self._plain = plain
        self._interval = interval
        self._title = title
        self._now = trio.lowlevel.current_clock().current_time
        self.view = RunView(self._now(), slow_after=slow_after)
        self._channels: list[tuple[str, Subscription]] = []
        self._sources: list[tuple[str, Source]] = []
        self._changed = trio.Event()
        self._live: Live | None = None
        self._reported_failures = 0
        self._reported_slow: set[tuple[Key, float]] = set()
        self._last_stamp = self.view.started
        self._broken = False  # the output went away: write nothing more
        self._changes = 0  # events applied so far
        self._drawn: tuple[int, float] | None = None  # (changes, clock) at the last draw
        self._closed = False  # its block has ended: attach nothing more

    @property
    def plain(self) -> bool:
        """Whether it writes plain lines rather than a live view."""
        return self._plain

    def attach(self, source: Source, *, name: str | None = None) -> None:
        """Watch a scheduler or coordinator from now on.

        Its tasks and agents are shown under ``name`` when more than one source is
        watched, so that sources whose ids coincide are kept apart. The default name is
        the source's kind (``scheduler``, ``coordinator``), numbered from the second on.

        Raises:
            TypeError: ``source`` has no ``subscribe()``, or ``name`` is not a string.
            ValueError: ``name`` is already taken, or ``source`` is already watched (its
                every event would be counted twice).
            RuntimeError: the monitor's block has ended (nothing is subscribed: a channel
                nobody reads would hold every event of the source from then on).
        """
        if self._closed:
            raise RuntimeError("this monitor has ended; attach sources inside its block")
        if not callable(getattr(source, "subscribe", None)):
            raise TypeError(
                f"source must be a scheduler or a coordinator (with subscribe()), got {source!r}"
            )
        if name is None:
            kind = type(source).__name__.lower()
            name, n = kind, 1
            while name in self.view.sources:
                n += 1
                name = f"{kind}-{n}"
        elif not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        if name not in self.view.sources:  # (a name taken is add_source's error)
            for watched_as, watched in self._sources:
                if watched is source:
                    raise ValueError(f"this source is already watched, as {watched_as!r}")
        self.view.add_source(name)
        channel = source.subscribe()
        self._sources.append((name, source))
        self._channels.append((name, channel))
        self._nursery.start_soon(self._consume, channel, name)

    # -- the loops --------------------------------------------------------------------------

    async def _consume(self, channel: Subscription, name: str) -> None:
        # Wait for one event, then take every event already there without waiting: a busy
        # run fills the channel far faster than a checkpoint per event would drain it.
        async for event in channel:
            self._apply(event, name)
            while True:
                try:
                    self._apply(channel.receive_nowait(), name)
                except (trio.WouldBlock, trio.EndOfChannel):
                    break

    def _apply(self, event: Event, name: str) -> None:
        self.view.apply(event, name)
        self._changes += 1
        if self._plain:
            self._print_new_failures()
        self._changed.set()

    async def _refresh(self) -> None:
        while True:
            with trio.move_on_at(self._next_tick()):
                await self._changed.wait()
            self._changed = trio.Event()
            self._draw()
            await trio.sleep(self._interval)

    def _next_tick(self) -> float:
        """When to redraw even if no event comes: see the module docstring."""
        view = self.view
        if not view.running:
            return math.inf
        if not self._plain:
            return self._now() + _TICK
        due = [
            running.since + view.slow_after
            for key, running in view.running.items()
            if (key, running.since) not in self._reported_slow
        ]
        # Just past the threshold, so that the task is over it when the line is written.
        return min(due, default=math.inf) + 1e-6

    # -- drawing ------------------------------------------------------------------------------

    def _print_new_failures(self) -> None:
        view = self.view
        new = view.failure_count - self._reported_failures
        if not new:
            return
        self._reported_failures = view.failure_count
        recent = list(view.failures)
        for failure in recent[-min(new, len(recent)) :]:
            detail = f": {failure.error}" if failure.error else ""
            what = view.label(failure.source, failure.what)
            self._write_at(failure.at, f"{what} {failure.status}{detail}")

    def _print_new_slow(self, now: float) -> None:
        view = self.view
        still = set()
        for running in view.slow(now):
            mark = ((running.source, running.task_id), running.since)
            still.add(mark)
            if mark not in self._reported_slow:
                # Stamped when it crossed the threshold, which may be up to a redraw
                # interval before now.
                self._write_at(
                    running.since + view.slow_after,
                    f"{running_label(view, running)} still running after "
                    f"{duration(view.slow_after)} (attempt {running.attempt})",
                )
        self._reported_slow = still

    def _write_at(self, at: float, text: str) -> None:
        """A plain line stamped ``at``, or later if a later stamp was already written."""
        self._last_stamp = max(self._last_stamp, at)
        self._write(f"{stamp(self.view, self._last_stamp)} {text}")

    def _write(self, line: str) -> None:
        if self._broken:
            return
        try:
            if self._console is not None:
                self._console.print(line, markup=False, highlight=False, soft_wrap=True)
            else:
                print(line, file=self._stream, flush=True)
        except BrokenPipeError:
            self._broken = True
            raise

    def _draw(self) -> None:
        now = self._now()
        self._drawn = (self._changes, now)
        if self._live is not None:
            self._live.update(rich_view(self.view, now, self._title), refresh=True)
        else:
            self._print_new_slow(now)
            self._write_at(now, plain_line(self.view, now))

    def _start(self) -> None:
        if not self._plain:
            from rich.live import Live

            self._live = Live(console=self._console, auto_refresh=False, transient=False)
            self._live.start()
            try:
                self._draw()
            except BaseException:
                # The block never starts, so _close never runs: stop the Live here, or
                # sys.stdout stays redirected into its console, the cursor hidden. (Its
                # last refresh may fail the same way: the first error is the one to see.)
                with contextlib.suppress(Exception):
                    self._stop_live()
                raise

    # -- lifetime (the three hooks of open_owner) -----------------------------------------------

    def _abort(self, error: BaseException) -> None:
        self._nursery.cancel_scope.cancel()

    async def _drain(self) -> None:
        # The sources may outlive the block (watched from outside it): do not wait for
        # their streams to end. What is already in the channels is taken in by _close.
        self._nursery.cancel_scope.cancel()

    def _close(self, error: BaseException | None) -> None:
        """Take in what is left in the channels, draw once more, and say how it ended.

        A ``BrokenPipeError`` while doing so is raised only if nothing else is: an error
        from the block is the louder fact (and, from a ``print`` to the same pipe, the same
        one)."""
        self._closed = True
        try:
            for name, channel in self._channels:
                while True:
                    try:
                        event = channel.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                        break
                    self._apply(event, name)
                channel.close()
            if self._live is not None or self._drawn != (self._changes, self._now()):
                self._draw()  # (a plain line is not repeated if nothing changed)
            self._stop_live()  # the summary goes below the final view
            if error is not None:
                self._write_at(self._now(), self._summary())
        except BrokenPipeError:
            if error is None:
                raise
        finally:
            self._stop_live()

    def _stop_live(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def _summary(self) -> str:
        # Not which error: the block's own may be only the Cancelled that reached it
        # from a Ctrl-C in another task, and the error itself propagates anyway.
        view = self.view
        tasks = f"{view.total} task" + ("" if view.total == 1 else "s")
        return f"interrupted: the run was cancelled; {tasks}: {counts_text(view) or 'none'}"


@asynccontextmanager
async def open_monitor(
    *,
    console: Console | None = None,
    plain: bool | None = None,
    refresh_per_second: float = 4.0,
    slow_after: float = 60.0,
    title: str = "trioflow",
    stream: TextIO | None = None,
) -> AsyncIterator[Monitor]:
    """Watch sources live; attach them with ``monitor.attach(scheduler_or_coordinator)``.

    Open it *outside* the blocks it watches, so that their last events are in when it
    draws its final view::

        async with open_monitor() as monitor:
            async with open_scheduler() as sched:
                monitor.attach(sched)
                ...

    Args:
        console: a ``rich.console.Console`` (a recording one in tests); default: stdout.
        plain: force plain lines (True) or the live view (False); default: the live view
            when the console is a terminal and ``rich`` is installed.
        refresh_per_second: the most redraws per second (plain lines: at most one a second).
        slow_after: seconds after which a running task (a scheduler task's attempt, an
            agent's assignment) is marked slow: in red in the live view, with one
            ``still running`` line in plain mode.
        title: the live view's heading.
        stream: where plain lines go when no console is given (default: stdout).

    Raises:
        TypeError: ``refresh_per_second`` or ``slow_after`` is not a number, ``title`` is
            not a string, ``plain`` is not a bool or None, or ``stream`` has no ``write``.
        ValueError: either is not > 0, or is infinite.
        BrokenPipeError: the output was closed by its reader; the run is stopped. (In an
            ``ExceptionGroup`` when a redraw during the run found it.)
    """
    rate = check_number("refresh_per_second", refresh_per_second, positive=True)
    slow = check_number("slow_after", slow_after, positive=True)
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {title!r}")
    if plain is not None and not isinstance(plain, bool):
        raise TypeError(f"plain must be a bool or None, got {plain!r}")
    if stream is not None and not callable(getattr(stream, "write", None)):
        raise TypeError(f"stream must be a text stream (with write()), got {stream!r}")
    given_console = console is not None
    if plain is not True and console is None:
        try:
            from rich.console import Console
        except ImportError:
            plain = True
        else:
            console = Console()
    is_plain = plain if plain is not None else console is None or not console.is_terminal
    if is_plain:
        # Lines go to a console the caller gave (to record them, say), else to ``stream``:
        # never through a console of our own, which would wrap them.
        interval = max(1.0, 1.0 / rate)
        if stream is not None or not given_console:
            console = None
    else:
        interval = 1.0 / rate
    out = stream or sys.stdout

    def make(nursery: trio.Nursery) -> Monitor:
        monitor = Monitor(nursery, console, out, interval, title, is_plain, slow)
        monitor._start()
        nursery.start_soon(monitor._refresh)
        return monitor

    async with open_owner(make) as monitor:
        yield monitor
