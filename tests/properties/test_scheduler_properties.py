"""Invariants of the scheduler over random DAGs with random failures, timeouts and cancels."""

from __future__ import annotations

from typing import Any

import attrs
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings, strategies as st

from trioflow import DependencyFailed, RetryPolicy, TaskStatus, open_scheduler


@attrs.frozen
class Spec:
    """One random task: what it does on each attempt, and how it is scheduled."""

    priority: int
    data_deps: tuple[int, ...]
    order_deps: tuple[int, ...]
    behaviours: tuple[str, ...]  # per attempt: "ok", "fail", "hang"; the last one repeats
    duration: float
    retries: int
    cancel_at: float | None


@st.composite
def dags(draw: st.DrawFn) -> tuple[int, list[Spec]]:
    n = draw(st.integers(1, 25))
    specs = []
    for i in range(n):
        earlier = st.sampled_from(range(i)) if i else st.nothing()
        specs.append(
            Spec(
                priority=draw(st.integers(0, 3)),
                data_deps=tuple(draw(st.lists(earlier, max_size=2))) if i else (),
                order_deps=tuple(draw(st.lists(earlier, max_size=2))) if i else (),
                behaviours=tuple(
                    draw(
                        st.lists(
                            st.sampled_from(["ok", "ok", "ok", "fail", "hang"]),
                            min_size=1,
                            max_size=3,
                        )
                    )
                ),
                duration=draw(st.sampled_from([0, 0.5, 1, 2])),
                retries=draw(st.integers(0, 2)),
                cancel_at=draw(st.none() | st.sampled_from([0, 0.5, 1.5, 4])),
            )
        )
    return draw(st.integers(1, 4)), specs


def run_scenario(workers: int, specs: list[Spec]) -> dict[str, Any]:
    log: list[tuple[str, int, float]] = []  # ("start" | "end", task index, time)

    def make(index: int, spec: Spec):
        calls = 0

        async def work(*_: object) -> int:
            nonlocal calls
            behaviour = spec.behaviours[min(calls, len(spec.behaviours) - 1)]
            calls += 1
            log.append(("start", index, trio.current_time()))
            await trio.sleep(spec.duration)
            if behaviour == "hang":
                await trio.sleep(1000)
            log.append(("end", index, trio.current_time()))
            if behaviour == "fail":
                raise ValueError(f"task {index} failed")
            return index

        return work

    async def main() -> dict[str, Any]:
        async with trio.open_nursery() as cancellers, open_scheduler(max_workers=workers) as sched:
            events = sched.subscribe()
            handles = []
            for index, spec in enumerate(specs):
                handles.append(
                    sched.submit(
                        make(index, spec),
                        *(handles[d] for d in spec.data_deps),
                        id=index,
                        priority=spec.priority,
                        depends_on=[handles[d] for d in spec.order_deps],
                        timeout=10,
                        retry=RetryPolicy(max_retries=spec.retries, delay=1, backoff=2),
                    )
                )
            for handle, spec in zip(handles, specs, strict=True):
                if spec.cancel_at is not None:

                    async def cancel_later(h=handle, at=spec.cancel_at) -> None:
                        await trio.sleep(at)
                        h.cancel()

                    cancellers.start_soon(cancel_later)
        return {"handles": handles, "events": [e async for e in events], "stats": sched.stats()}

    outcome = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    outcome["log"] = log
    return outcome


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_scheduler_invariants(scenario: tuple[int, list[Spec]]) -> None:
    workers, specs = scenario
    outcome = run_scenario(workers, specs)
    handles, events, stats = outcome["handles"], outcome["events"], outcome["stats"]

    # Every task ends in exactly one terminal state, announced once, as its last event.
    for handle in handles:
        assert handle.status.is_terminal
        own = [e.status for e in events if e.task_id == handle.id]
        assert [s for s in own if s.is_terminal] == [handle.status]
        assert own[-1] is handle.status
    assert stats.finished == stats.total == len(specs)

    # Dependencies finish (completed) before dependents start; dependents of a failure never run.
    first_start = {}
    for kind, index, at in outcome["log"]:
        if kind == "start":
            first_start.setdefault(index, at)
    for index, (spec, handle) in enumerate(zip(specs, handles, strict=True)):
        deps = set(spec.data_deps) | set(spec.order_deps)
        if index in first_start:
            for dep in deps:
                assert handles[dep].status is TaskStatus.COMPLETED
                assert handles[dep]._completed <= first_start[index]
        if any(handles[d].status is not TaskStatus.COMPLETED for d in deps):
            assert handle.attempts == 0
            assert handle.status is TaskStatus.CANCELLED
            assert isinstance(handle.error, DependencyFailed) or spec.cancel_at is not None
        if handle.status is TaskStatus.COMPLETED:
            assert handle.result == index

    # At most `workers` attempts run at once.
    state: dict[int, TaskStatus] = {}
    live = 0
    for event in events:
        before = state.get(event.task_id)
        live += (event.status is TaskStatus.RUNNING) - (before is TaskStatus.RUNNING)
        assert live <= workers
        state[event.task_id] = event.status

    # Priority: each attempt that starts is the best (priority, arrival) task ready right then.
    pending: dict[int, tuple[int, int]] = {}
    for seq, event in enumerate(events):
        if event.status is TaskStatus.PENDING:
            pending[event.task_id] = (specs[event.task_id].priority, seq)
        elif event.status is TaskStatus.RUNNING:
            assert pending[event.task_id] == min(pending.values())
            del pending[event.task_id]
        else:
            pending.pop(event.task_id, None)
