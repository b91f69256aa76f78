"""The workloads every contender runs, and the lower bounds makespans are measured against.

Pure: shapes are built from a seeded ``random.Random``, so every contender gets the same
work in the same run and across runs.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import attrs


@attrs.frozen
class LayeredDag:
    """``layers`` of ``width`` sleeping tasks; each depends on ``fan_in`` tasks of the layer
    above."""

    layers: int
    width: int
    fan_in: int
    duration: float
    workers: int
    seed: int = 1

    def shape(self) -> list[list[list[int]]]:
        rng = random.Random(self.seed)
        shape: list[list[list[int]]] = [[[] for _ in range(self.width)]]
        for _ in range(self.layers - 1):
            shape.append(
                [sorted(rng.sample(range(self.width), self.fan_in)) for _ in range(self.width)]
            )
        return shape

    def lower_bound(self) -> float:
        """No schedule beats the critical path, nor the total work spread over all workers."""
        critical_path = self.layers * self.duration
        total_work = self.layers * self.width * self.duration
        return max(critical_path, total_work / self.workers)


@attrs.frozen
class FailureMix:
    """Independent tasks: most succeed, some fail once, some time out once; all retried
    with exponential backoff (``delay``, then ``2 * delay`` ...)."""

    tasks: int
    fail_share: float
    timeout_share: float
    duration: float
    timeout: float
    delay: float
    workers: int
    seed: int = 2

    def specs(self) -> list[tuple[str, int, float]]:
        """(behaviour, failures before success, duration) per task."""
        rng = random.Random(self.seed)
        specs = []
        for _ in range(self.tasks):
            roll = rng.random()
            if roll < self.fail_share:
                specs.append(("fail", 1, self.duration))
            elif roll < self.fail_share + self.timeout_share:
                specs.append(("timeout", 1, self.duration))
            else:
                specs.append(("ok", 0, self.duration))
        return specs

    def lower_bound(self, retries_timeouts: bool = True) -> float:
        """max(longest single task's own timeline, busy time / workers). A retry delay holds
        no worker, so it counts toward the task's timeline but not toward busy time. With
        ``retries_timeouts=False`` (the seed's semantics) a timed-out task simply ends."""
        longest = 0.0
        busy = 0.0
        for behaviour, _, duration in self.specs():
            if behaviour == "ok":
                timeline = work = duration
            elif behaviour == "fail":
                timeline, work = 2 * duration + self.delay, 2 * duration
            elif retries_timeouts:
                timeline, work = self.timeout + self.delay + duration, self.timeout + duration
            else:
                timeline = work = self.timeout
            longest = max(longest, timeline)
            busy += work
        return max(longest, busy / self.workers)

    def ideal_makespan(self, retries_timeouts: bool = True) -> float:
        """The makespan of a zero-overhead online scheduler with the same policy: ``workers``
        slots, ready tasks first come first served, a failed attempt re-queued after its
        backoff delay (holding no slot). A discrete-event simulation.

        Unlike :meth:`lower_bound`, it does not know in advance which tasks will time out,
        so it is what any online scheduler could at best achieve on this mix."""
        import heapq
        from collections import deque

        specs = self.specs()
        ready: deque[tuple[int, int]] = deque((i, 1) for i in range(len(specs)))  # task, attempt
        events: list[tuple[float, int, int, int, bool]] = []  # time, seq, task, attempt, done
        seq = 0
        free = self.workers
        now = 0.0
        end = 0.0
        while ready or events:
            while free and ready:
                task, attempt = ready.popleft()
                behaviour, failures, duration = specs[task]
                failing = attempt <= failures
                busy = self.timeout if failing and behaviour == "timeout" else duration
                finishes = not failing or (behaviour == "timeout" and not retries_timeouts)
                heapq.heappush(events, (now + busy, seq, task, attempt, finishes))
                seq += 1
                free -= 1
            now, _, task, attempt, finishes = heapq.heappop(events)
            if task >= 0:
                free += 1
                end = max(end, now)
                if not finishes:
                    retry_at = now + self.delay * 2 ** (attempt - 1)
                    heapq.heappush(events, (retry_at, seq, -task - 1, attempt + 1, False))
                    seq += 1
            else:
                ready.append((-task - 1, attempt))
        return end


def faulty_task(
    spec: tuple[str, int, float], timeout: float, sleep: Callable[[float], Awaitable[None]]
) -> Callable[..., Awaitable[None]]:
    """The async function one :class:`FailureMix` task runs, on any event loop's ``sleep``:
    its first ``failures`` attempts fail (a "timeout" one by sleeping far past ``timeout``),
    then it sleeps ``duration`` and succeeds."""
    behaviour, failures, duration = spec
    calls = 0

    async def run(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls <= failures:
            if behaviour == "timeout":
                await sleep(timeout * 10)
            await sleep(duration)
            raise RuntimeError("planned failure")
        await sleep(duration)

    return run
