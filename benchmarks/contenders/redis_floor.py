"""The floor for work over Redis: plain coredis, no trioflow. A producer ``XADD`` s jobs in
pipelines of 100; each consumer process reads ``XREADGROUP COUNT 100`` and answers a batch
with one pipeline (a result ``XADD`` per entry and one ``XACK``); the producer reads the
results back with ``XREAD``. What a hand-written consumer that batches its round trips does,
with no fencing, no records, no retries.

    python -m benchmarks.contenders.redis_floor consumer URL NAME   (one consumer process)
"""

from __future__ import annotations

import sys
import time
from typing import Any

import coredis
import trio
import trio.lowlevel

JOBS, RESULTS, GROUP = "floor:jobs", "floor:results", "floor"


async def consumer(url: str, name: str) -> None:
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        print("ready", flush=True)
        while True:
            reply: Any = await client.xreadgroup(GROUP, name, {JOBS: ">"}, count=100, block=100)
            entries = (reply or {}).get(JOBS, ())
            if not entries:
                continue
            async with client.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pipe.xadd(RESULTS, {"n": entry.field_values["n"]})
                pipe.xack(JOBS, GROUP, [entry.identifier for entry in entries])


async def produce(url: str, jobs: int) -> float:
    """Send ``jobs`` jobs and wait for every result; jobs per second."""
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        start = time.perf_counter()

        async def submit() -> None:
            for base in range(0, jobs, 100):
                async with client.pipeline(transaction=False) as pipe:
                    for n in range(base, min(jobs, base + 100)):
                        pipe.xadd(JOBS, {"n": str(n)})
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit)
            seen, last = 0, "0-0"
            async with coredis.Redis.from_url(url, decode_responses=True) as reader:
                while seen < jobs:
                    reply: Any = await reader.xread({RESULTS: last}, count=1000, block=100)
                    for entry in (reply or {}).get(RESULTS, ()):
                        seen += 1
                        last = entry.identifier
        return jobs / (time.perf_counter() - start)


async def prepare(url: str) -> None:
    async with coredis.Redis.from_url(url, decode_responses=True) as client:
        await client.delete([JOBS, RESULTS])
        await client.xgroup_create(JOBS, GROUP, "$", mkstream=True)


if __name__ == "__main__" and sys.argv[1:2] == ["consumer"]:
    trio.run(consumer, sys.argv[2], sys.argv[3])
