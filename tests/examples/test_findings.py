"""Bugs in trioflow found while writing the crawler examples, each as a minimal failing test
(``xfail``, strict: when it is fixed the test passes, and the marker must go)."""

from __future__ import annotations

import io
import re

import pytest
from trio.testing import MockClock

from trioflow import open_scheduler
from trioflow.monitor import open_monitor

STAMP = re.compile(r"^\[\+ *[0-9.]+s\] ")


async def raises_a_two_line_error() -> None:
    # As every httpx.HTTPStatusError does: "Client error '404 Not Found' for url '...'\n
    # For more information check: https://developer.mozilla.org/..."
    raise ValueError("first line\nsecond line")


@pytest.mark.xfail(
    strict=True,
    reason="the plain monitor writes an error's message as it is: a message with a newline "
    "breaks the failure's line in two, and the second has no timestamp",
)
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
