"""Chaos: random mixes of every fault trioflow promises to contain, and the invariants that
must hold through all of them.

    python -m benchmarks.chaos --minutes 3      # soak: random seeds until time is up
    python -m benchmarks.chaos --seed 1234      # replay one seed

The test suite runs the same scenarios, bounded and seeded, on trio's autojump clock
(tests/test_chaos.py); the soak mode runs them for minutes, with bigger bursts, on a clock
that runs twenty times faster than real time and never jumps, so that real threads,
heartbeats and deadlines race each other. A scenario returns what it saw; :func:`check`
raises ``AssertionError`` naming the seed when an invariant fails.

Faults thrown at the scheduler: tasks whose own nursery raises while being cancelled (a
group mixing ``Cancelled`` with a real error), timeouts, hangs, retries with delays, random
``cancel()``, thread work, failing and settled dependencies, tasks that wait for other
tasks, bursts of submissions, the block's own error and cancellation from outside.

Faults thrown at the coordinator: agents that crash in ``process_task``, whose loop crashes
while the heartbeat monitor is taking them offline, whose heartbeat hangs, whose work
hangs past ``task_timeout``; restarts; random cancels; bursts of ``run_all``; delegation
between agents; the block's own error and cancellation from outside.

Invariants, for both: the block raises nothing but the body's own error (cancellation from
outside stays inside the scope that asked for it); every task ends exactly once (one
terminal event each, the counters add up); no worker slot stays borrowed; nothing hangs
(each run is bounded by a deadline far beyond what it needs).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import trio
import trio.testing

from trioflow import RetryPolicy, open_scheduler, settled
from trioflow.agents import Agent, RestartPolicy, open_coordinator

#: How much faster than real time the soak's clock runs.
SOAK_RATE = 20.0

TERMINAL_TASK = {"completed", "failed", "timeout", "cancelled"}
TERMINAL_KINDS = {"task_completed", "task_failed", "task_timeout", "task_cancelled"}


class BodyError(Exception):
    """Raised by a scenario's block on purpose: the only error the block may raise."""


@attrs.define
class Outcome:
    """What one run saw."""

    engine: str
    seed: int
    submitted: int = 0
    raised: BaseException | None = None
    body_raised: bool = False
    cancelled_outside: bool = False
    terminal_events: Counter[Any] = attrs.field(factory=Counter)
    ids: list[Any] = attrs.field(factory=list)
    finished: int = 0
    total: int = 0
    borrowed: int = 0
    statuses: Counter[str] = attrs.field(factory=Counter)


def check(outcome: Outcome) -> None:
    """Every invariant, or an ``AssertionError`` naming the engine and the seed."""
    where = f"{outcome.engine} chaos, seed {outcome.seed}"
    if outcome.body_raised:
        assert isinstance(outcome.raised, BodyError), f"{where}: raised {outcome.raised!r}"
    else:
        assert outcome.raised is None, f"{where}: raised {outcome.raised!r}"
    assert outcome.total == outcome.submitted, f"{where}: {outcome.total} != {outcome.submitted}"
    assert outcome.finished == outcome.total, f"{where}: unfinished tasks after the block"
    twice = [i for i in outcome.ids if outcome.terminal_events[i] != 1]
    assert not twice, f"{where}: tasks not ending exactly once: {twice[:5]}"
    assert outcome.borrowed == 0, f"{where}: {outcome.borrowed} worker slot(s) still borrowed"


# -- the scheduler -----------------------------------------------------------------------------


def _mixed_group_task(rng: random.Random) -> Callable[[], Any]:
    """A task whose own nursery raises while it is being cancelled."""

    async def run(*_inputs: object) -> None:
        async def cleanup_fails() -> None:
            try:
                await trio.sleep(rng.choice([0.5, 5]))
            finally:
                if trio.current_effective_deadline() <= trio.current_time():
                    raise RuntimeError("cleanup failed")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cleanup_fails)
            nursery.start_soon(trio.sleep, rng.choice([0.2, 2]))

    return run


def _task(rng: random.Random, earlier: list[Any]) -> tuple[Callable[..., Any], str]:
    """A random task, and its kind. A task waits only for one submitted before it, so waits
    never form a cycle (that would be the caller's deadlock, not the scheduler's)."""
    kind = rng.choice(["ok", "ok", "ok", "fail", "hang", "mixed", "thread", "waits", "blocks"])
    return _task_of_kind(rng, kind, rng.choice(earlier) if earlier else None), kind


def _task_of_kind(rng: random.Random, kind: str, other: Any) -> Callable[..., Any]:
    if kind == "mixed":
        return _mixed_group_task(rng)
    if kind == "thread":

        def in_thread(*_inputs: object) -> str:
            time.sleep(rng.choice([0, 0.001]))
            return "thread"

        return in_thread
    if kind == "blocks":

        async def blocks(*_inputs: object) -> str:
            time.sleep(0.001)  # noqa: ASYNC251 - blocking code, on purpose
            return "blocked"

        return blocks
    seconds = rng.choice([0, 0.1, 1, 3])

    async def run(*_inputs: object) -> str:
        if kind == "hang":
            await trio.sleep_forever()
        await trio.sleep(seconds)
        if kind == "fail":
            raise ValueError("task failed")
        if kind == "waits" and other is not None:
            with contextlib.suppress(Exception):  # its failure is its business, not ours
                await other.wait()
        return kind

    return run


async def scheduler_chaos(seed: int, tasks: int, burst: int = 0) -> Outcome:
    """One random scheduler run; call it under ``trio.run`` (any clock)."""
    rng = random.Random(seed)
    outcome = Outcome("scheduler", seed)
    outcome.body_raised = rng.random() < 0.15
    outcome.cancelled_outside = not outcome.body_raised and rng.random() < 0.15
    workers = rng.choice([1, 2, 5, 20])
    terminal: Counter[Any] = Counter()
    sched_ref: list[Any] = []

    async def count_terminal(events: Any) -> None:
        async for event in events:  # ends when the scheduler closes the stream
            if event.status.value in TERMINAL_TASK:
                terminal[event.task_id] += 1

    async def run(watchers: trio.Nursery) -> None:
        with trio.move_on_after(rng.uniform(1, 10) if outcome.cancelled_outside else 10_000):
            async with open_scheduler(max_workers=workers) as sched:
                sched_ref.append(sched)
                watchers.start_soon(count_terminal, sched.subscribe())
                handles: list[Any] = []
                for n in range(tasks):
                    fn, kind = _task(rng, handles)
                    deps: list[Any] = []
                    if handles and rng.random() < 0.3:
                        dep = rng.choice(handles)
                        deps.append(settled(dep) if rng.random() < 0.5 else dep)
                    timeout = rng.choice([None, None, 0.5, 2])
                    if kind == "hang" and timeout is None:
                        timeout = 4  # a hang with nothing to end it is the caller's hang
                    handles.append(
                        sched.submit(
                            fn,
                            *deps,
                            id=n,
                            priority=rng.choice([0, 1, 2]),
                            timeout=timeout,
                            retry=rng.choice(
                                [None, 1, RetryPolicy(max_retries=2, delay=rng.choice([0, 1]))]
                            ),
                        )
                    )
                    outcome.submitted += 1
                    if rng.random() < 0.05:
                        rng.choice(handles).cancel()
                    if rng.random() < 0.05:
                        await trio.sleep(rng.choice([0, 0.5]))

                async def noop() -> None:
                    pass

                for n in range(burst):
                    sched.submit(noop, id=("burst", n))
                    outcome.submitted += 1
                if outcome.body_raised:
                    await trio.sleep(rng.uniform(0, 3))
                    raise BodyError("the block's own error")

    async with trio.open_nursery() as watchers:
        try:
            await run(watchers)
        except BaseException as exc:  # recorded for check(): only BodyError may escape
            outcome.raised = exc
    sched = sched_ref[0]
    stats = sched.stats()
    outcome.total, outcome.finished = stats.total, stats.finished
    outcome.borrowed = sched.limiter.borrowed_tokens
    outcome.ids = [*range(tasks), *(("burst", n) for n in range(burst))]
    outcome.terminal_events = terminal
    for task_id in range(tasks):
        outcome.statuses[sched.tasks[task_id].status.value] += 1
    return outcome


# -- the coordinator ----------------------------------------------------------------------------


class ChaosAgent(Agent):
    """Crashes, hangs, delegates, and sometimes crashes its own loop while being taken
    offline (a group mixing Cancelled with a real error from its work)."""

    def __init__(self, agent_id: str, rng: random.Random, hang_at: float | None) -> None:
        super().__init__(agent_id, {"work", f"only-{agent_id}"}, concurrency=rng.choice([1, 2]))
        self.rng = rng
        self.hang_at = hang_at

    async def heartbeat(self) -> None:
        if self.hang_at is not None and trio.current_time() >= self.hang_at:
            self.hang_at = None
            await trio.sleep_forever()

    async def process_task(self, task: Any) -> Any:
        roll = self.rng.random()
        if roll < 0.1:
            raise RuntimeError(f"{self.id} crashed")
        if roll < 0.2:

            async def cleanup_fails() -> None:
                try:
                    await trio.sleep(self.rng.choice([0.5, 5]))
                finally:
                    if trio.current_effective_deadline() <= trio.current_time():
                        raise RuntimeError("cleanup failed while cancelled")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(cleanup_fails)
                nursery.start_soon(trio.sleep, 0.3)
        if roll < 0.25:
            await trio.sleep_forever()  # hung work: only task_timeout or going offline ends it
        if roll < 0.3:
            await trio.to_thread.run_sync(time.sleep, 0.001)
        await trio.sleep(self.rng.choice([0, 0.1, 0.5]))
        return task["n"]


async def agents_chaos(seed: int, tasks: int, burst: int = 0) -> Outcome:
    """One random coordinator run; call it under ``trio.run`` (any clock)."""
    rng = random.Random(seed)
    outcome = Outcome("agents", seed)
    outcome.body_raised = rng.random() < 0.15
    outcome.cancelled_outside = not outcome.body_raised and rng.random() < 0.15
    terminal: Counter[Any] = Counter()
    coord_ref: list[Any] = []
    handles: list[Any] = []

    async def count_terminal(events: Any) -> None:
        async for event in events:  # ends when the coordinator closes the stream
            if event.kind in TERMINAL_KINDS:
                terminal[event.task_id] += 1

    async def run(watchers: trio.Nursery) -> None:
        with trio.move_on_after(rng.uniform(1, 10) if outcome.cancelled_outside else 10_000):
            async with open_coordinator(
                heartbeat_interval=0.5,
                heartbeat_timeout=1.5,
                task_timeout=rng.choice([1.0, 3.0]),
                retry=RetryPolicy(max_retries=2, delay=rng.choice([0, 0.2])),
                restart=RestartPolicy(max_restarts=2, period=100, delay=0.5)
                if rng.random() < 0.5
                else None,
            ) as coord:
                coord_ref.append(coord)
                watchers.start_soon(count_terminal, coord.subscribe())
                for i in range(rng.randint(2, 5)):
                    hang_at = None if i == 0 or rng.random() < 0.5 else rng.uniform(0, 10)
                    agent = ChaosAgent(f"a{i}", random.Random(rng.random()), hang_at)
                    await agent.connect(coord)
                for n in range(tasks):
                    handles.append(coord.submit({"type": "work", "n": n}))
                    outcome.submitted += 1
                    if rng.random() < 0.05:
                        rng.choice(handles).cancel()
                    if rng.random() < 0.05:
                        await trio.sleep(rng.choice([0, 0.5]))
                if burst:
                    outcome.submitted += burst
                    await coord.run_all([{"type": "work", "n": -1}] * burst, return_exceptions=True)
                if outcome.body_raised:
                    await trio.sleep(rng.uniform(0, 3))
                    raise BodyError("the block's own error")

    async with trio.open_nursery() as watchers:
        try:
            await run(watchers)
        except BaseException as exc:  # recorded for check(): only BodyError may escape
            outcome.raised = exc
    stats = coord_ref[0].stats()
    outcome.total = stats.submitted
    outcome.finished = stats.finished
    outcome.ids = [h.id for h in handles]
    outcome.terminal_events = terminal
    for handle in handles:
        outcome.statuses[handle.status.value] += 1
    return outcome


# -- soak ------------------------------------------------------------------------------------------


def run_one(engine: str, seed: int, tasks: int, burst: int, *, mock_clock: bool) -> Outcome:
    """Run one scenario. ``mock_clock``: trio's autojump clock (virtual time only moves when
    every task waits: fast and deterministic in time). Otherwise a clock that runs at
    twenty times real time and never jumps: the scenarios' seconds pass for real, twenty
    times over, so threads, heartbeats and timeouts race each other as in production."""
    scenario = scheduler_chaos if engine == "scheduler" else agents_chaos
    if mock_clock:
        clock = trio.testing.MockClock(autojump_threshold=0)
    else:
        clock = trio.testing.MockClock(rate=SOAK_RATE)

    async def ticker() -> None:
        # On the mock clock, time jumps to the next deadline whenever every task waits, a
        # task waiting for a worker thread included: without a deadline at least every
        # second, a jump could land on the hang detector's deadline while a thread still
        # runs. (Timeouts may fire early that way; that is chaos too.)
        while True:  # noqa: ASYNC110 - a deadline every second is the point
            await trio.sleep(1)

    async def bounded() -> Outcome:
        async with trio.open_nursery() as nursery:
            if mock_clock:
                nursery.start_soon(ticker)
            # "Nothing hangs": far beyond what any run needs, in the run's own time.
            with trio.fail_after(100_000 if mock_clock else 600 * SOAK_RATE):
                outcome = await scenario(seed, tasks, burst)
            nursery.cancel_scope.cancel()
        return outcome

    outcome = trio.run(bounded, clock=clock)
    check(outcome)
    return outcome


def soak(
    minutes: float,
    *,
    seed: int | None = None,
    tasks: tuple[int, int] = (50, 400),
    bursts: bool = True,
    out: Any = None,
) -> int:
    """Run random scenarios on the real clock until ``minutes`` have passed; return how
    many ran. Raises ``AssertionError`` (naming the seed) on the first broken invariant."""
    out = sys.stdout if out is None else out
    deadline = time.monotonic() + minutes * 60
    rng = random.Random(seed)
    runs = 0
    while time.monotonic() < deadline:
        engine = rng.choice(["scheduler", "agents"])
        run_seed = rng.randrange(2**32)
        burst = rng.choice([0, 0, 10_000]) if bursts else 0
        outcome = run_one(engine, run_seed, rng.randint(*tasks), burst, mock_clock=False)
        runs += 1
        print(
            f"{engine:9} seed {run_seed:>10}  {outcome.submitted:6} tasks  "
            f"{dict(outcome.statuses)}",
            file=out,
            flush=True,
        )
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0, help="soak for this long (3)")
    parser.add_argument("--seed", type=int, help="replay this seed (both engines, once)")
    args = parser.parse_args(argv)
    if args.seed is not None:
        for engine in ("scheduler", "agents"):
            outcome = run_one(engine, args.seed, 300, 0, mock_clock=True)
            print(f"{engine}: ok, {dict(outcome.statuses)}")
        return 0
    runs = soak(args.minutes)
    print(f"soak: {runs} runs, every invariant held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
