"""The bare trio floor: the least any trio scheduling library can cost per job.

Fifty (``workers``) long-lived trio tasks drain a ``collections.deque`` of small job records;
a worker checkpoints once every 32 jobs (and whenever it waits for work), not after every job;
a finished job releases its dependents straight into the deque (a counter per dependent, no
task or ``Event`` parked per job); a job with a timeout runs in ``trio.move_on_after``; a
failed attempt is put back after its backoff by a timer task, holding no worker meanwhile.
Idle workers park in a ``trio.lowlevel.ParkingLot``.

It keeps no status, no timestamps, no ids, no events, no statistics and no handles anyone can
wait on or cancel, and it never yields to the rest of the program between 32 no-op jobs. So it
is not a library; it is the lower bound a trio library is measured against ("how close to
the floor?"). On the DAG of sleeping tasks its efficiency is what trio's own timers allow
(each round of wake-ups costs the same for everyone on trio), which is the honest ceiling for
trioflow's makespan efficiency.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from benchmarks.workloads import faulty_task

NAME = "trio floor (bare workers)"

CHECKPOINT_EVERY = 32


class Job:
    __slots__ = ("args", "attempts", "dependents", "fn", "ok", "remaining", "result", "timeout")

    def __init__(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], timeout: float | None
    ) -> None:
        self.fn = fn
        self.args = args
        self.timeout = timeout
        self.attempts = 0
        self.remaining = 0
        self.dependents: list[Job] | None = None  # made when the first dependent arrives
        self.ok: bool | None = None  # None: not finished
        self.result: Any = None


class Pool:
    def __init__(self, workers: int, retries: int = 0, delay: float = 1.0) -> None:
        self._ready: deque[Job] = deque()
        self._idle = trio.lowlevel.ParkingLot()
        self._workers = workers
        self._retries = retries
        self._delay = delay
        self._unfinished = 0
        self._nursery: trio.Nursery | None = None

    def submit(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, timeout: float | None = None
    ) -> Job:
        job = Job(fn, args, timeout)
        self._unfinished += 1
        for dep in args:
            if type(dep) is Job and dep.ok is None:
                if dep.dependents is None:
                    dep.dependents = []
                dep.dependents.append(job)
                job.remaining += 1
        if not job.remaining:
            self._ready.append(job)
        return job

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for _ in range(self._workers):
                nursery.start_soon(self._worker)

    def _push(self, job: Job) -> None:
        self._ready.append(job)
        if self._idle:
            self._idle.unpark()

    def _finish(self, job: Job, ok: bool) -> None:
        job.ok = ok
        self._unfinished -= 1
        for dependent in job.dependents or ():
            if not ok:
                self._finish(dependent, False)
            else:
                dependent.remaining -= 1
                if not dependent.remaining:
                    self._push(dependent)
        if not self._unfinished:
            self._idle.unpark_all()

    async def _retry_later(self, job: Job, delay: float) -> None:
        await trio.sleep(delay)
        self._push(job)

    async def _worker(self) -> None:
        ready = self._ready
        since_checkpoint = 0
        while self._unfinished:
            if not ready:
                await self._idle.park()
                continue
            job = ready.popleft()
            args = job.args
            if args:  # a dependency's place in the arguments receives its result
                args = tuple(a.result if type(a) is Job else a for a in args)
            failed = False
            try:
                if job.timeout is None:
                    job.result = await job.fn(*args)
                else:
                    with trio.move_on_after(job.timeout) as scope:
                        job.result = await job.fn(*args)
                    failed = scope.cancelled_caught
            except Exception:
                failed = True
            if not failed:
                self._finish(job, True)
            else:
                job.attempts += 1
                if job.attempts <= self._retries:
                    delay = self._delay * 2 ** (job.attempts - 1)
                    assert self._nursery is not None
                    self._nursery.start_soon(self._retry_later, job, delay)
                else:
                    self._finish(job, False)
            since_checkpoint += 1
            if since_checkpoint == CHECKPOINT_EVERY:
                since_checkpoint = 0
                await trio.lowlevel.checkpoint()


async def _noop(*args: object) -> None:
    return None


def _timed(main: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - start


def independent(n: int, workers: int) -> float:
    async def main() -> None:
        pool = Pool(workers)
        submit = pool.submit
        for _ in range(n):
            submit(_noop)
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
        await trio.sleep(duration)

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
        pool = Pool(workers, retries=3, delay=delay)
        for spec in specs:
            pool.submit(faulty_task(spec, timeout, trio.sleep), timeout=timeout)
        await pool.run()

    return _timed(main)


def bulk_map(n: int, workers: int) -> float:
    """The floor for ``sched.map(fn, items)``: no record per item at all. The workers share
    one iterator over the items (read lazily, only as a worker is free) and write each result
    into its place in a list, so the results come back in input order."""

    async def main() -> None:
        results: list[Any] = [None] * n
        items = enumerate(range(n))

        async def worker() -> None:
            since_checkpoint = 0
            for index, item in items:
                results[index] = await _noop(item)
                since_checkpoint += 1
                if since_checkpoint == CHECKPOINT_EVERY:
                    since_checkpoint = 0
                    await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(worker)

    return _timed(main)


def queued_memory(n: int) -> float:
    """Bytes per job submitted and not yet started: one slotted record and its deque slot."""
    pool = Pool(1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        pool.submit(_noop)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n
