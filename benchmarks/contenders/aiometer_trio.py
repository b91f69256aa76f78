"""aiometer on trio: ``run_all`` / ``amap`` with ``max_at_once``, as its README shows them.

aiometer is the library a trio user picks to "run these N calls, at most K at once": it takes
a sequence of jobs, starts a task per job as the limit allows (lazily: a job not yet started is
only an entry of the caller's own sequence), and returns the results in order (``run_all``) or
streams them as they finish (``amap``). This module runs each workload both ways; ``API``
picks which (the runner makes one contender per entry of ``VARIANTS``).

What aiometer cannot express, and how each workload is written here:

* dependencies: none between jobs. The chain (b) is therefore not run (awaiting each call in
  turn is a loop, not aiometer); the layered DAG (c) runs layer by layer, one ``run_all`` per
  layer, which is how an aiometer user writes a layered pipeline (each layer waits for the
  whole layer above, a barrier the other contenders do not have);
* retries: none built in. The failure mix (d) wraps each job in the usual retry loop
  (``trio.move_on_after`` per attempt, exponential backoff); the backoff sleep runs inside the
  job, so it holds one of the ``max_at_once`` slots while it waits;
* priorities: none (jobs start in sequence order);
* a queue: none of its own (jobs start lazily from the caller's sequence), so there is no
  memory per queued task (e) to measure.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiometer
import trio

from benchmarks.workloads import faulty_task

NAME = "aiometer"
VARIANTS: dict[str, dict[str, Any]] = {
    "aiometer run_all": {"api": "run_all"},
    "aiometer amap": {"api": "amap"},
}
CANNOT = {
    "chain": "no dependencies between jobs",
    "queued_memory": "keeps no queue: jobs start lazily from the caller's own sequence",
}


async def _run(
    fn: Callable[[Any], Awaitable[Any]], items: Sequence[Any], workers: int, api: str
) -> list[Any]:
    """``fn(item)`` for every item, at most ``workers`` at once, the results in input order."""
    if api == "run_all":
        return await aiometer.run_all(
            [functools.partial(fn, item) for item in items], max_at_once=workers
        )
    results: list[Any] = [None] * len(items)
    async with aiometer.amap(fn, items, max_at_once=workers, _include_index=True) as done:
        async for index, result in done:
            results[index] = result
    return results


async def _noop(*args: object) -> None:
    return None


def _timed(main: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - start


def independent(n: int, workers: int, api: str = "run_all") -> float:
    async def main() -> None:
        if api == "run_all":
            await aiometer.run_all([_noop] * n, max_at_once=workers)
        else:
            async with aiometer.amap(_noop, range(n), max_at_once=workers) as results:
                async for _ in results:
                    pass

    return _timed(main)


def dag(
    layers: list[list[list[int]]], duration: float, workers: int, api: str = "run_all"
) -> float:
    async def sleeper(inputs: list[Any]) -> None:
        await trio.sleep(duration)

    async def main() -> None:
        previous: list[Any] = []
        for layer in layers:
            inputs = [[previous[d] for d in deps] for deps in layer]
            previous = await _run(sleeper, inputs, workers, api)

    return _timed(main)


def failure_mix(
    specs: list[tuple[str, int, float]],
    workers: int,
    timeout: float,
    delay: float,
    api: str = "run_all",
    retries: int = 3,
) -> float:
    async def with_retries(job: Callable[[], Awaitable[Any]]) -> Any:
        for attempt in range(retries + 1):
            with trio.move_on_after(timeout):
                try:
                    return await job()
                except Exception:
                    pass
            if attempt < retries:
                await trio.sleep(delay * 2**attempt)  # inside the job: holds its slot
        return None

    async def main() -> None:
        jobs = [faulty_task(spec, timeout, trio.sleep) for spec in specs]
        await _run(with_retries, jobs, workers, api)

    return _timed(main)
