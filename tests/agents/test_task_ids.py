"""Task ids: ``coord.submit(task, id=...)``, ``AssignmentHandle.id`` and ``coord.result``."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

from trioflow import DuplicateTaskError, TaskFailed, UnknownTaskError
from trioflow.agents import Agent, AssignmentStatus, EventKind, open_coordinator


class Echo(Agent):
    async def process_task(self, task: Any) -> Any:
        await trio.sleep(1)
        if task.get("fail"):
            raise ValueError("asked to fail")
        return task["n"]


async def test_a_task_keeps_the_id_it_was_given(autojump_clock: MockClock) -> None:
    """The id names the handle, the task's events and its failure."""
    async with open_coordinator(retry=None) as coord:
        await Echo("e", {"echo"}).connect(coord)
        events = coord.subscribe()
        named = coord.submit({"type": "echo", "n": 1}, id="job-1")
        made = coord.submit({"type": "echo", "n": 2})
        failing = coord.submit({"type": "echo", "n": 3, "fail": True}, id="job-3")
    assert named.id == "job-1" and made.id == 2  # one is made when none is given
    with pytest.raises(TaskFailed) as caught:
        await failing.wait()
    assert caught.value.task_id == "job-3"
    ids = {event.task_id async for event in events if event.kind is EventKind.TASK_COMPLETED}
    assert ids == {"job-1", 2}


async def test_an_id_in_use_is_refused_at_submit(autojump_clock: MockClock) -> None:
    async with open_coordinator() as coord:
        await Echo("e", {"echo"}).connect(coord)
        first = coord.submit({"type": "echo", "n": 1}, id="same")
        with pytest.raises(DuplicateTaskError, match="'same' is already in use"):
            coord.submit({"type": "echo", "n": 2}, id="same")
        assert coord.stats().submitted == 1
        await first.wait()
        again = coord.submit({"type": "echo", "n": 3}, id="same")  # finished: free again
    assert again.result == 3


async def test_result_waits_for_a_task_by_id(autojump_clock: MockClock) -> None:
    async with open_coordinator(retry=None) as coord:
        await Echo("e", {"echo"}).connect(coord)
        handle = coord.submit({"type": "echo", "n": 7}, id="seven")
        coord.submit({"type": "echo", "n": 0, "fail": True}, id="bad")
        assert await coord.result("seven") == 7
        assert handle.status is AssignmentStatus.COMPLETED
        assert await coord.result("seven") == 7  # finished, while its handle lives
        with pytest.raises(TaskFailed):
            await coord.result("bad")
        with pytest.raises(UnknownTaskError, match="'nope'"):
            await coord.result("nope")


async def test_result_finds_a_finished_task_whatever_its_name(autojump_clock: MockClock) -> None:
    """A task named 1 is the first one submitted, so its name is also the number an unnamed
    task would have got: it is still a name, and coord.result(1) finds it once it has
    finished (it used to be taken for an unnamed task and be unknown)."""
    async with open_coordinator() as coord:
        await Echo("e", {"echo"}).connect(coord)
        handle = coord.submit({"type": "echo", "n": 1}, id=1)
        await handle.wait()
        assert await coord.result(1) == 1
