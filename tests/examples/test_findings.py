"""Bugs in trioflow found while writing the crawler examples, each kept as a test once
fixed (while open, each was marked ``xfail``, strict)."""

from __future__ import annotations

import io
import re

from trio.testing import MockClock

from trioflow import open_scheduler
from trioflow.monitor import open_monitor

STAMP = re.compile(r"^\[\+ *[0-9.]+s\] ")


async def raises_a_two_line_error() -> None:
    # As every httpx.HTTPStatusError does: "Client error '404 Not Found' for url '...'\n
    # For more information check: https://developer.mozilla.org/..."
    raise ValueError("first line\nsecond line")


async def test_every_plain_line_is_stamped_even_for_a_multi_line_error(
    autojump_clock: MockClock,
) -> None:
    out = io.StringIO()
    async with open_monitor(plain=True, stream=out) as monitor, open_scheduler() as sched:
        monitor.attach(sched)
        sched.submit(raises_a_two_line_error, id="bad")
    lines = out.getvalue().splitlines()
    assert any("bad failed: ValueError: first line" in line for line in lines)
    assert all(STAMP.match(line) for line in lines), lines
