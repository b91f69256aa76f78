"""asyncio, written the way an experienced asyncio developer would.

A ``TaskGroup`` holds one task per job; an ``asyncio.Event`` per job signals completion to
dependents; an ``asyncio.Semaphore`` bounds concurrency; a priority heap decides *which*
ready job the task that wins a semaphore slot runs (the semaphore wakes waiters in FIFO
order, so each winner pops the best ready job instead of running its own). Timeouts with
``asyncio.timeout``; retries sleep outside the semaphore. A fair, tuned peer: no polling, no
busy loops, failures propagate to dependents.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import itertools
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.workloads import faulty_task

NAME = "asyncio"


class Job:
    __slots__ = (
        "args",
        "attempts",
        "deps",
        "done",
        "fn",
        "ok",
        "priority",
        "result",
        "retries",
        "timeout",
    )

    def __init__(self, fn, args, priority, deps, timeout, retries) -> None:
        self.fn = fn
        self.args = args
        self.priority = priority
        self.deps = deps
        self.timeout = timeout
        self.retries = retries
        self.attempts = 0
        self.done = asyncio.Event()
        self.ok = False
        self.result: Any = None


class Scheduler:
    def __init__(self, tg: asyncio.TaskGroup, max_workers: int, delay: float = 1.0) -> None:
        self._tg = tg
        self._sem = asyncio.Semaphore(max_workers)
        self._ready: list[tuple[int, int, Job]] = []
        self._seq = itertools.count()
        self._delay = delay

    def submit(
        self,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        priority: int = 1,
        timeout: float | None = None,
        retries: int = 0,
    ) -> Job:
        deps = [a for a in args if isinstance(a, Job)]
        job = Job(fn, args, priority, deps, timeout, retries)
        self._tg.create_task(self._run(job))
        return job

    async def _run(self, job: Job) -> None:
        for dep in job.deps:
            await dep.done.wait()
            if not dep.ok:
                job.done.set()  # a failed dependency: never runs
                return
        await self._dispatch(job)

    async def _dispatch(self, job: Job) -> None:
        # The semaphore wakes waiters first-come first-served, so whoever wins a slot runs
        # the best ready job, not necessarily the one it queued: priority decides.
        heapq.heappush(self._ready, (job.priority, next(self._seq), job))
        async with self._sem:
            best = heapq.heappop(self._ready)[2]
            failed = await self._attempt(best)
        if failed:
            best.attempts += 1
            if best.attempts <= best.retries:
                await asyncio.sleep(self._delay * 2 ** (best.attempts - 1))  # holds no slot
                await self._dispatch(best)
            else:
                best.done.set()

    async def _attempt(self, job: Job) -> bool:
        """Run one attempt of ``job``; return True if it failed."""
        args = [a.result if isinstance(a, Job) else a for a in job.args] if job.deps else job.args
        try:
            if job.timeout is None:
                job.result = await job.fn(*args)
            else:
                async with asyncio.timeout(job.timeout):
                    job.result = await job.fn(*args)
        except Exception:
            return True
        job.ok = True
        job.done.set()
        return False


async def _noop(*args: object) -> None:
    return None


def _timed(main: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - start


def independent(n: int, workers: int) -> float:
    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            submit = Scheduler(tg, workers).submit
            for _ in range(n):
                submit(_noop)

    return _timed(main)


def chain(n: int) -> float:
    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            sched = Scheduler(tg, 1)
            previous = sched.submit(_noop)
            for _ in range(n - 1):
                previous = sched.submit(_noop, previous)

    return _timed(main)


def dag(layers: list[list[list[int]]], duration: float, workers: int) -> float:
    async def sleeper(*args: object) -> None:
        await asyncio.sleep(duration)

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            sched = Scheduler(tg, workers)
            previous: list[Job] = []
            for layer in layers:
                previous = [sched.submit(sleeper, *(previous[d] for d in deps)) for deps in layer]

    return _timed(main)


def failure_mix(
    specs: list[tuple[str, int, float]], workers: int, timeout: float, delay: float
) -> float:

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            sched = Scheduler(tg, workers, delay=delay)
            for spec in specs:
                sched.submit(
                    faulty_task(spec, timeout, asyncio.sleep),
                    timeout=timeout,
                    retries=3,
                )

    return _timed(main)


def queued_memory(n: int) -> float:
    result: list[float] = []

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            sched = Scheduler(tg, 1)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(n):
                sched.submit(_noop)
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            result.append((after - before) / n)

    asyncio.run(main())
    return result[0]
