"""The channel ``subscribe()`` returns reads like a trio memory channel's receive end.

Both engines hand out an ``EventChannel`` (publishing to a trio memory channel cost more
than the tasks the events are about). These tests hold it to what a reader of a
``trio.MemoryReceiveChannel`` relies on: checkpoints, waking, ``WouldBlock`` and
``EndOfChannel``, clones, closing, and cancellation while waiting.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from trioflow import EventChannel, TaskEvent, TaskStatus, open_scheduler
from trioflow.agents import Agent, open_coordinator


async def noop() -> None:
    return None


async def test_a_waiting_reader_is_woken_by_each_event_in_order(autojump_clock: MockClock) -> None:
    got: list[tuple[Hashable, TaskStatus]] = []
    async with trio.open_nursery() as nursery, open_scheduler(max_workers=1) as sched:
        events = sched.subscribe()
        assert isinstance(events, EventChannel)

        async def read() -> None:
            async for event in events:  # parked in receive() until each event
                got.append((event.task_id, event.status))

        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert events.statistics().tasks_waiting_receive == 1
        await trio.sleep(1)
        sched.submit(noop, id="a")
    # the loop ended: the scheduler's finish ended the stream
    assert got == [
        ("a", TaskStatus.PENDING),
        ("a", TaskStatus.RUNNING),
        ("a", TaskStatus.COMPLETED),
    ]


async def test_receive_nowait_would_block_then_ends_after_the_last_event() -> None:
    async with open_scheduler() as sched:
        events = sched.subscribe()
        with pytest.raises(trio.WouldBlock):
            events.receive_nowait()
        sched.submit(noop, id="a")
    statuses = [events.receive_nowait().status for _ in range(3)]
    assert statuses == [TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.COMPLETED]
    with pytest.raises(trio.EndOfChannel):
        events.receive_nowait()
    with pytest.raises(trio.EndOfChannel):
        await events.receive()
    assert events.statistics().closed
    assert sched.subscribe().statistics().closed  # subscribed too late: at its end at once


async def test_receive_is_a_checkpoint_even_when_an_event_is_there() -> None:
    async with open_scheduler() as sched:
        events = sched.subscribe()
        sched.submit(noop)
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await events.receive()  # cancelled before it takes anything
        with trio.testing.assert_checkpoints():
            event = await events.receive()
        assert event.status is TaskStatus.PENDING  # the first event: nothing was lost


async def test_a_cancelled_wait_leaves_no_reader_behind_and_loses_no_event(
    autojump_clock: MockClock,
) -> None:
    async with open_scheduler() as sched:
        events = sched.subscribe()
        with trio.move_on_after(1):
            await events.receive()
        assert events.statistics().tasks_waiting_receive == 0
        sched.submit(noop, id="after")
        now = trio.current_time()
        assert events.receive_nowait() == TaskEvent("after", TaskStatus.PENDING, 0, now, None)


async def test_clones_share_the_stream_and_each_event_goes_to_one_reader(
    autojump_clock: MockClock,
) -> None:
    seen: dict[str, list[object]] = {"first": [], "second": []}
    async with open_scheduler(max_workers=1) as sched:
        first = sched.subscribe()
        second = first.clone()
        assert first.statistics().open_receive_channels == 2

        async def read(name: str, channel: EventChannel[TaskEvent]) -> None:
            async with channel:
                async for event in channel:
                    seen[name].append(event.task_id)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read, "first", first)
            nursery.start_soon(read, "second", second)
            await trio.testing.wait_all_tasks_blocked()
            for i in range(10):
                sched.submit(noop, id=i)
                await trio.sleep(1)
            sched.submit(noop, id="last")
            await sched.gather()
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
    every = sorted(seen["first"] + seen["second"], key=str)
    assert every == sorted([*range(10), "last"] * 3, key=str)  # three events per task, once each
    assert seen["first"] and seen["second"]  # both readers were fed


async def test_closing_an_end_wakes_its_readers_and_only_theirs(autojump_clock: MockClock) -> None:
    async with open_scheduler() as sched:
        first = sched.subscribe()
        second = first.clone()
        outcomes: dict[str, object] = {}

        async def wait(name: str, channel: EventChannel[TaskEvent]) -> None:
            try:
                outcomes[name] = await channel.receive()
            except trio.ClosedResourceError as exc:
                outcomes[name] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait, "first", first)
            nursery.start_soon(wait, "second", second)
            await trio.testing.wait_all_tasks_blocked()
            first.close()
            first.close()  # idempotent
            await trio.testing.wait_all_tasks_blocked()
            assert isinstance(outcomes["first"], trio.ClosedResourceError)
            assert "second" not in outcomes
            sched.submit(noop, id="x")
        assert outcomes["second"] == TaskEvent("x", TaskStatus.PENDING, 0, trio.current_time())
        with pytest.raises(trio.ClosedResourceError):
            first.receive_nowait()
        with pytest.raises(trio.ClosedResourceError):
            first.clone()
        assert second.statistics().open_receive_channels == 1
        await second.aclose()
        sched.submit(noop)
        assert second.statistics().current_buffer_used == 0  # unsubscribed: nothing kept


async def test_a_coordinator_channel_is_one_too(autojump_clock: MockClock) -> None:
    class Echo(Agent):
        def __init__(self) -> None:
            super().__init__("echo", {"echo"})

        async def process_task(self, task: Mapping[str, Any]) -> object:
            return task["n"]

    kinds: list[str] = []
    async with trio.open_nursery() as nursery, open_coordinator() as coord:
        events = coord.subscribe()
        assert isinstance(events, EventChannel)

        async def read() -> None:
            async with events:
                async for event in events:
                    kinds.append(event.kind)

        nursery.start_soon(read)
        await Echo().connect(coord)
        assert await coord.run_all([{"type": "echo", "n": 1}]) == [1]
    assert kinds.count("task_completed") == 1
    assert kinds.index("task_assigned") < kinds.index("task_completed")


async def test_closing_the_last_end_lets_its_events_go_at_once() -> None:
    async with open_scheduler() as sched:
        events = sched.subscribe()
        await sched.gather(*[sched.submit(noop) for _ in range(100)])
        assert events.statistics().current_buffer_used == 300
        clone = events.clone()
        events.close()
        assert clone.statistics().current_buffer_used == 300  # a clone still reads them
        with clone:  # a plain `with` closes it too, as a trio channel's does
            pass
        # nothing more is published, and still nothing is kept for nobody
        assert clone.statistics().current_buffer_used == 0
        assert clone.statistics().open_receive_channels == 0


async def test_statistics_have_a_memory_channels_fields_and_weakrefs_work() -> None:
    import math
    import weakref

    async with open_scheduler() as sched:
        events = sched.subscribe()
        stats = events.statistics()
        assert (stats.max_buffer_size, stats.open_send_channels, stats.tasks_waiting_send) == (
            math.inf,
            1,
            0,
        )
        assert weakref.ref(events)() is events
    assert events.statistics().open_send_channels == 0  # the scheduler has finished
