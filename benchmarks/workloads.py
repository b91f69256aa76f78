"""The workloads every contender runs, and the lower bounds makespans are measured against.

Pure: shapes are built from a seeded ``random.Random``, so every contender gets the same
work in the same run and across runs.
"""

from __future__ import annotations

import random

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
