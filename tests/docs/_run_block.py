"""Run one extracted code block as a program, on a virtual clock unless told otherwise.

Usage: ``python _run_block.py FILE {mock,real}``. With ``mock``, every ``trio.run`` in the
block runs on ``trio.testing.MockClock(autojump_threshold=0)`` and every ``asyncio.run`` on
an event loop whose clock jumps ahead in the same way (:class:`AutojumpLoop`): a block may
sleep for seconds, as a real program would, and the test suite still takes no time for it.
With ``real``, both run as they are (for blocks that use threads, processes or sockets,
whose progress a virtual clock cannot see).
"""

from __future__ import annotations

import asyncio
import functools
import runpy
import selectors
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import trio
import trio.testing


class _AutojumpSelector(selectors.DefaultSelector):
    """A selector that, instead of sleeping until asyncio's next timer, moves the loop's
    virtual clock there: the asyncio twin of trio's autojump ``MockClock``."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            return super().select(None)  # no timer at all: wait for I/O for real
        ready = super().select(0)
        if ready or timeout <= 0:
            return ready
        self.now += timeout  # nothing to do before the next timer: jump to it
        return []


class AutojumpLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on a virtual clock that jumps to the next timer whenever
    nothing is ready to run."""

    def __init__(self) -> None:
        self._autojump = _AutojumpSelector()
        super().__init__(self._autojump)

    def time(self) -> float:
        return self._autojump.now


def _asyncio_run(main: Coroutine[Any, Any, Any], *, debug: bool | None = None) -> Any:
    with asyncio.Runner(debug=debug, loop_factory=AutojumpLoop) as runner:
        return runner.run(main)


def _trio_run(real: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("clock", trio.testing.MockClock(autojump_threshold=0))
    return real(*args, **kwargs)


def main() -> None:
    path, clock = sys.argv[1], sys.argv[2]
    if clock == "mock":
        trio.run = functools.partial(_trio_run, trio.run)  # type: ignore[assignment]
        asyncio.run = _asyncio_run  # type: ignore[assignment]
    elif clock != "real":
        raise SystemExit(f"unknown clock {clock!r}")
    sys.argv = [path]
    sys.path.insert(0, str(Path(path).parent))
    runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    main()
