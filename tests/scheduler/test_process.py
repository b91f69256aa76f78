"""submit(..., process=True): plain functions in worker processes, with the same timeout,
retry and cancellation semantics as any attempt. These run on the real clock: a worker
process answers in real time, so virtual time must not jump while it works."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from trioflow import RetryPolicy, TaskStatus, open_scheduler

from . import _cpu

pytest.importorskip("trio_parallel")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child not yet reaped is a zombie: dead for our purposes.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


async def test_a_process_task_runs_in_another_process_and_returns_its_result() -> None:
    async with open_scheduler() as sched:
        h = sched.submit(_cpu.pid_and_square, 12, process=True)
        results = await sched.map(_cpu.pid_and_square, [1, 2, 3], process=True)
    pid, square = h.result
    assert square == 144 and pid != os.getpid()
    assert [r[1] for r in results] == [1, 4, 9]


async def test_a_timeout_kills_the_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    async with open_scheduler() as sched:
        h = sched.submit(_cpu.write_pid_then_spin, str(pid_file), process=True, timeout=3)
    assert h.status is TaskStatus.TIMEOUT and isinstance(h.error, TimeoutError)
    pid = int(pid_file.read_text())
    with trio.fail_after(10):
        while _alive(pid):  # noqa: ASYNC110 - the OS reaps it; there is no event to wait on
            await trio.sleep(0.05)


async def test_cancel_kills_the_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    async with open_scheduler() as sched:
        h = sched.submit(_cpu.write_pid_then_spin, str(pid_file), process=True)
        with trio.fail_after(10):
            while not pid_file.exists():  # noqa: ASYNC110 - the process writes the file
                await trio.sleep(0.05)
        h.cancel()
    assert h.status is TaskStatus.CANCELLED
    pid = int(pid_file.read_text())
    with trio.fail_after(10):
        while _alive(pid):  # noqa: ASYNC110
            await trio.sleep(0.05)


async def test_a_failed_attempt_is_retried_in_a_process(tmp_path: Path) -> None:
    async with open_scheduler() as sched:
        h = sched.submit(
            _cpu.fail_first_time,
            str(tmp_path / "marker"),
            process=True,
            retry=RetryPolicy(max_retries=1, delay=0),
        )
    assert h.result == "second attempt" and h.attempts == 2


async def test_an_unpicklable_result_fails_the_attempt_clearly() -> None:
    async with open_scheduler() as sched:
        h = sched.submit(_cpu.unpicklable_result, process=True)
    assert h.status is TaskStatus.FAILED
    assert "pickle" in repr(h.error).lower()


async def test_what_cannot_run_in_a_process_is_refused_at_submit() -> None:
    async def coroutine_fn() -> None:
        pass

    def local_fn() -> None:
        pass

    async with open_scheduler() as sched:
        with pytest.raises(TypeError, match="is async"):
            sched.submit(coroutine_fn, process=True)
        with pytest.raises(TypeError, match="cannot be pickled"):
            sched.submit(local_fn, process=True)
        with pytest.raises(TypeError, match="process must be a bool"):
            sched.submit(_cpu.pid_and_square, 1, process=1)  # type: ignore[arg-type]
    assert sched.stats().total == 0
