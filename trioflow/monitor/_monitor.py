"""open_monitor: watch schedulers and coordinators live, through their event streams.

The monitor never polls task state: it folds events into a :class:`RunView` as they arrive
and redraws when something changed, at most ``refresh_per_second`` times a second. Its
channels are the sources' unbounded subscriber channels, so a slow terminal never slows the
run. On a terminal it draws a live ``rich`` view; elsewhere (CI logs, pipes), or without
``rich``, it writes plain timestamped lines: each failure as it happens, and a progress line
at most once a second.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TextIO

import trio

from ._render import plain_line, rich_view
from ._view import RunView


class Monitor:
    """Attach sources with :meth:`attach`; get one from :func:`open_monitor`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        console: Any,
        stream: TextIO,
        interval: float,
        title: str,
        plain: bool,
    ) -> None:
        self._nursery = nursery
        self._console = console  # None: plain lines to ``stream``
        self._stream = stream
        self._plain = plain
        self._interval = interval
        self._title = title
        self._now = trio.lowlevel.current_clock().current_time
        self.view = RunView(self._now())
        self._channels: list[trio.MemoryReceiveChannel[Any]] = []
        self._changed = trio.Event()
        self._live: Any = None
        self._reported_failures = 0

    @property
    def plain(self) -> bool:
        """Whether it writes plain lines rather than a live view."""
        return self._plain

    def attach(self, source: Any) -> None:
        """Watch a scheduler or coordinator (anything with ``subscribe()``) from now on."""
        channel = source.subscribe()
        self._channels.append(channel)
        self._nursery.start_soon(self._consume, channel)

    # -- the loops --------------------------------------------------------------------------

    async def _consume(self, channel: trio.MemoryReceiveChannel[Any]) -> None:
        async for event in channel:
            self._apply(event)

    def _apply(self, event: Any) -> None:
        self.view.apply(event)
        if self.plain:
            self._print_new_failures()
        self._changed.set()

    async def _refresh(self) -> None:
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            self._draw()
            await trio.sleep(self._interval)

    # -- drawing ------------------------------------------------------------------------------

    def _print_new_failures(self) -> None:
        new = self.view.failure_count - self._reported_failures
        if not new:
            return
        self._reported_failures = self.view.failure_count
        recent = list(self.view.failures)
        for failure in recent[-min(new, len(recent)) :]:
            detail = f": {failure.error}" if failure.error else ""
            self._write(
                f"[+{failure.at - self.view.started:8.2f}s] {failure.what} {failure.status}{detail}"
            )

    def _write(self, line: str) -> None:
        if self._console is not None:
            self._console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=self._stream, flush=True)

    def _draw(self) -> None:
        now = self._now()
        if self._live is not None:
            self._live.update(rich_view(self.view, now, self._title), refresh=True)
        else:
            self._write(plain_line(self.view, now))

    def _start(self) -> None:
        if not self._plain:
            from rich.live import Live

            self._live = Live(console=self._console, auto_refresh=False, transient=False)
            self._live.start()
            self._draw()

    def _finish(self, interrupted: bool) -> None:
        """Take in what is left in the channels, draw once more, and say how it ended."""
        for channel in self._channels:
            while True:
                try:
                    self._apply(channel.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
            channel.close()
        self._draw()
        if self._live is not None:
            self._live.stop()
            self._live = None
        if interrupted:
            self._write("interrupted: the run was cancelled; unfinished tasks were cancelled")


@asynccontextmanager
async def open_monitor(
    *,
    console: Any = None,
    plain: bool | None = None,
    refresh_per_second: float = 4.0,
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
        stream: where plain lines go when no console is given (default: stdout).
    """
    if isinstance(refresh_per_second, bool) or not isinstance(refresh_per_second, (int, float)):
        raise TypeError(f"refresh_per_second must be a number, got {refresh_per_second!r}")
    if not refresh_per_second > 0:
        raise ValueError(f"refresh_per_second must be > 0, got {refresh_per_second!r}")
    given_console = console is not None
    if plain is not True and console is None:
        try:
            from rich.console import Console
        except ImportError:
            plain = True
        else:
            console = Console()
    if plain is None:
        plain = not console.is_terminal
    if plain:
        # Lines go to a console the caller gave (to record them, say), else to ``stream``:
        # never through a console of our own, which would wrap them.
        interval = max(1.0, 1.0 / refresh_per_second)
        if stream is not None or not given_console:
            console = None
    else:
        interval = 1.0 / refresh_per_second
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        monitor = Monitor(nursery, console, stream or sys.stdout, interval, title, plain)
        monitor._start()
        nursery.start_soon(monitor._refresh)
        try:
            yield monitor
        except BaseException as exc:
            # Kept out of the nursery so that it propagates as itself, not in a group.
            body_error = exc
        nursery.cancel_scope.cancel()
    # Only now that the consumers have stopped can the final view be the last word.
    monitor._finish(interrupted=body_error is not None)
    if body_error is not None:
        try:
            raise body_error
        finally:
            body_error = None
