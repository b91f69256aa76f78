"""Plain trio, written the way a trio user would without a scheduling library.

A nursery holds one task per job; a ``trio.CapacityLimiter`` bounds how many run at once; a
``trio.Event`` per job signals completion to its dependents, which wait on it before they
queue for the limiter; each attempt of a job that has a timeout runs inside
``trio.move_on_after``; a failed attempt is retried after an exponential backoff slept
*outside* the limiter, so a waiting retry holds no slot. This is the code in the first pages of
the trio tutorial, applied to a job list: no polling, failures propagate to dependents.

What it cannot do: priorities. The limiter hands its tokens out first come, first served, so
a job runs in the order it reached the limiter; no workload here uses priorities, so nothing
is faked. Every queued job is a parked trio task, which is what its memory figure shows.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from benchmarks.workloads import faulty_task

NAME = "trio (nursery + limiter)"


class Job:
    __slots__ = ("args", "deps", "done", "fn", "ok", "result", "retries", "timeout")

    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        timeout: float | None,
        retries: int,
    ) -> None:
        self.fn = fn
        self.args = args
        self.deps = [a for a in args if isinstance(a, Job)]
        self.timeout = timeout
        self.retries = retries
        self.done = trio.Event()
        self.ok = False
        self.result: Any = None


class Runner:
    """Runs each submitted job in its own task of ``nursery``, at most ``workers`` at once."""

    def __init__(self, nursery: trio.Nursery, workers: int, delay: float = 1.0) -> None:
        self._nursery = nursery
        self._limiter = trio.CapacityLimiter(workers)
        self._delay = delay

    def submit(
        self,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        timeout: float | None = None,
        retries: int = 0,
    ) -> Job:
        job = Job(fn, args, timeout, retries)
        self._nursery.start_soon(self._run, job)
        return job

    async def _run(self, job: Job) -> None:
        for dep in job.deps:
            await dep.done.wait()
            if not dep.ok:
                job.done.set()  # a failed dependency: never runs
                return
        args = [a.result if isinstance(a, Job) else a for a in job.args] if job.deps else job.args
        attempt = 0
        while True:
            async with self._limiter:
                failed = await self._attempt(job, args)
            if not failed:
                job.ok = True
                break
            attempt += 1
            if attempt > job.retries:
                break
            await trio.sleep(self._delay * 2 ** (attempt - 1))  # holds no slot
        job.done.set()

    @staticmethod
    async def _attempt(job: Job, args: Any) -> bool:
        """Run one attempt of ``job``; return True if it failed or timed out."""
        try:
            if job.timeout is None:
                job.result = await job.fn(*args)
                return False
            with trio.move_on_after(job.timeout) as scope:
                job.result = await job.fn(*args)
            return scope.cancelled_caught
        except Exception:
            return True


async def _noop(*args: object) -> None:
    return None


def _timed(main: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - start


def independent(n: int, workers: int) -> float:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            submit = Runner(nursery, workers).submit
            for _ in range(n):
                submit(_noop)

    return _timed(main)


def chain(n: int) -> float:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            runner = Runner(nursery, 1)
            previous = runner.submit(_noop)
            for _ in range(n - 1):
                previous = runner.submit(_noop, previous)

    return _timed(main)


def dag(layers: list[list[list[int]]], duration: float, workers: int) -> float:
    async def sleeper(*args: object) -> None:
        await trio.sleep(duration)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            runner = Runner(nursery, workers)
            previous: list[Job] = []
            for layer in layers:
                previous = [runner.submit(sleeper, *(previous[d] for d in deps)) for deps in layer]

    return _timed(main)


def failure_mix(
    specs: list[tuple[str, int, float]], workers: int, timeout: float, delay: float
) -> float:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            runner = Runner(nursery, workers, delay=delay)
            for spec in specs:
                runner.submit(faulty_task(spec, timeout, trio.sleep), timeout=timeout, retries=3)

    return _timed(main)


def queued_memory(n: int) -> float:
    """Bytes per job submitted and not yet started (a task, its coroutine, a Job, an Event)."""
    result: list[float] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            submit = Runner(nursery, 1).submit
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(n):
                submit(_noop)
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            result.append((after - before) / n)

    trio.run(main)
    return result[0]
