"""trioflow itself, through its public API only (``open_scheduler``, ``submit``, ``RetryPolicy``).

Each workload is written as the README shows: submit everything inside the block, pass a
handle as an argument for a data dependency, ``timeout=`` and ``retry=RetryPolicy(...)`` for
the failure mix, and leave the block to wait for the lot. ``bulk_map`` uses ``sched.map``
(SPEC section 5) and is measured only once the scheduler has one (``has_map``).
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import trio

from benchmarks.workloads import faulty_task
from trioflow import RetryPolicy, open_scheduler

NAME = "trioflow"


async def _noop(*args: object) -> None:
    return None


def independent(n: int, workers: int) -> float:
    async def main() -> None:
        async with open_scheduler(max_workers=workers) as sched:
            submit = sched.submit
            for _ in range(n):
                submit(_noop)

    start = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - start


def chain(n: int) -> float:
    async def main() -> None:
        async with open_scheduler(max_workers=1) as sched:
            previous = sched.submit(_noop)
            for _ in range(n - 1):
                previous = sched.submit(_noop, previous)

    start = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - start


def dag(layers: list[list[list[int]]], duration: float, workers: int) -> float:
    def sleeper():
        async def run(*args: object) -> None:
            await trio.sleep(duration)

        return run

    async def main() -> None:
        async with open_scheduler(max_workers=workers) as sched:
            previous: list = []
            for layer in layers:
                current = [sched.submit(sleeper(), *(previous[d] for d in deps)) for deps in layer]
                previous = current

    start = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - start


def failure_mix(
    specs: list[tuple[str, int, float]], workers: int, timeout: float, delay: float
) -> float:
    """specs: (behaviour, failures before success, duration) per task."""
    policy = RetryPolicy(max_retries=3, delay=delay, backoff=2.0)

    async def main() -> None:
        async with open_scheduler(max_workers=workers) as sched:
            for spec in specs:
                sched.submit(
                    faulty_task(spec, timeout, trio.sleep),
                    timeout=timeout,
                    retry=policy,
                )

    start = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - start


def has_map() -> bool:
    """Whether this trioflow's scheduler has ``map`` yet (the bulk workload needs it)."""
    found: list[bool] = []

    async def main() -> None:
        async with open_scheduler(max_workers=1) as sched:
            found.append(hasattr(sched, "map"))

    trio.run(main)
    return found[0]


def bulk_map(n: int, workers: int) -> float:
    """``await sched.map(fn, items)`` over ``n`` no-op items: no handle per item."""

    async def main() -> None:
        async with open_scheduler(max_workers=workers) as sched:
            await sched.map(_noop, range(n))  # type: ignore[attr-defined]  # SPEC section 5

    start = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - start


def queued_memory(n: int) -> float:
    result: list[float] = []

    async def main() -> None:
        async with open_scheduler(max_workers=1) as sched:
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            submit = sched.submit
            for _ in range(n):
                submit(_noop)
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            result.append((after - before) / n)

    trio.run(main)
    return result[0]
