"""The peer: streaq (a coredis-based task queue), on the same no-op jobs, measured as the
issue quotes it: a caller that enqueues a task and awaits its result (``enqueue`` then
``result()``), 32 such calls in flight, against N worker processes
(``Worker(concurrency=16, anyio_backend="trio")``).

    python -m benchmarks.contenders.streaq_peer worker      (one worker process)
    python -m benchmarks.contenders.streaq_peer roundtrip N (prints jobs per second)

The Redis URL comes from ``STREAQ_URL``. (With 100 calls in flight the spike's run timed
out: each ``result()`` holds a pub/sub connection of coredis's 64-connection pool.)
"""

from __future__ import annotations

import os
import sys
import time

import anyio
from streaq import Worker

URL = os.environ.get("STREAQ_URL", "redis://127.0.0.1:6379")
worker = Worker(redis_url=URL, queue_name="bench", concurrency=16, anyio_backend="trio")


@worker.task(max_tries=1)
async def noop(i: int) -> int:
    return i


async def roundtrip(jobs: int) -> float:
    async with worker:
        limit = anyio.Semaphore(32)
        start = time.perf_counter()

        async def one(i: int) -> None:
            async with limit:
                task = await noop.enqueue(i)
                result = await task.result(timeout=60)
                assert result.result == i

        async with anyio.create_task_group() as group:
            for i in range(jobs):
                group.start_soon(one, i)
        return jobs / (time.perf_counter() - start)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker.run_sync()
    elif sys.argv[1:2] == ["roundtrip"]:
        print(anyio.run(roundtrip, int(sys.argv[2]), backend="trio"))
