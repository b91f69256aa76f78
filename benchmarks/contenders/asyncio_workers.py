"""asyncio, tuned: the design trioflow uses, written for asyncio.

A fixed pool of worker tasks pops a priority heap; dependents are released into the heap by
the finishing task (no task or Event parked per job); an ``asyncio.Event`` only wakes idle
workers. Timeouts with ``asyncio.timeout``; retry delays on ``loop.call_later``, holding no
worker. This is the strongest asyncio peer we know how to write; it shows how much of
trioflow's lead is design (records in a heap) rather than the event loop.
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

NAME = "asyncio (tuned pool)"


class Job:
    __slots__ = (
        "args",
        "attempts",
        "dependents",
        "done",
        "fn",
        "ok",
        "priority",
        "remaining",
        "result",
        "retries",
        "timeout",
    )

    def __init__(self, fn, args, priority, timeout, retries) -> None:
        self.fn = fn
        self.args = args
        self.priority = priority
        self.timeout = timeout
        self.retries = retries
        self.attempts = 0
        self.remaining = 0
        self.dependents: list[Job] = []
        self.ok = False
        self.done = False
        self.result: Any = None


class Pool:
    def __init__(self, workers: int, delay: float = 1.0) -> None:
        self._heap: list[tuple[int, int, Job]] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._workers = workers
        self._delay = delay
        self._unfinished = 0
        self._all_done = asyncio.Event()

    def submit(
        self,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        priority: int = 1,
        timeout: float | None = None,
        retries: int = 0,
    ) -> Job:
        job = Job(fn, args, priority, timeout, retries)
        self._unfinished += 1
        for dep in args:
            if isinstance(dep, Job) and not dep.done:
                dep.dependents.append(job)
                job.remaining += 1
        if not job.remaining:
            self._push(job)
        return job

    def _push(self, job: Job) -> None:
        heapq.heappush(self._heap, (job.priority, next(self._seq), job))
        self._wakeup.set()

    def _finish(self, job: Job, ok: bool) -> None:
        job.ok = ok
        job.done = True
        self._unfinished -= 1
        for dependent in job.dependents:
            if ok:
                dependent.remaining -= 1
                if not dependent.remaining:
                    self._push(dependent)
            else:
                self._finish(dependent, False)
        if not self._unfinished:
            self._all_done.set()
            self._wakeup.set()

    async def run(self) -> None:
        if self._unfinished:
            async with asyncio.TaskGroup() as tg:
                for _ in range(self._workers):
                    tg.create_task(self._worker())

    async def _worker(self) -> None:
        heap = self._heap
        while not self._all_done.is_set():
            if not heap:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            job = heapq.heappop(heap)[2]
            args = [a.result if isinstance(a, Job) else a for a in job.args]
            try:
                if job.timeout is None:
                    job.result = await job.fn(*args)
                else:
                    async with asyncio.timeout(job.timeout):
                        job.result = await job.fn(*args)
            except Exception:
                job.attempts += 1
                if job.attempts <= job.retries:
                    delay = self._delay * 2 ** (job.attempts - 1)
                    asyncio.get_running_loop().call_later(delay, self._push, job)
                else:
                    self._finish(job, False)
            else:
                self._finish(job, True)


async def _noop(*args: object) -> None:
    return None


def _timed(main: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - start


def independent(n: int, workers: int) -> float:
    async def main() -> None:
        pool = Pool(workers)
        for _ in range(n):
            pool.submit(_noop)
        await pool.run()

    return _timed(main)


def chain(n: int) -> float:
    async def main() -> None:
        pool = Pool(1)
        previous = pool.submit(_noop)
        for _ in range(n - 1):
            previous = pool.submit(_noop, previous)
        await pool.run()

    return _timed(main)


def dag(layers: list[list[list[int]]], duration: float, workers: int) -> float:
    async def sleeper(*args: object) -> None:
        await asyncio.sleep(duration)

    async def main() -> None:
        pool = Pool(workers)
        previous: list[Job] = []
        for layer in layers:
            previous = [pool.submit(sleeper, *(previous[d] for d in deps)) for deps in layer]
        await pool.run()

    return _timed(main)


def failure_mix(
    specs: list[tuple[str, int, float]], workers: int, timeout: float, delay: float
) -> float:

    async def main() -> None:
        pool = Pool(workers, delay=delay)
        for spec in specs:
            pool.submit(faulty_task(spec, timeout, asyncio.sleep), timeout=timeout, retries=3)
        await pool.run()

    return _timed(main)


def queued_memory(n: int) -> float:
    pool = Pool(1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        pool.submit(_noop)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n
