"""The scheduler's decider: every rule of a task's life, with no trio and no clock."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pytest

from trioflow import DependencyFailed, DuplicateTaskError, RetryPolicy, TaskStatus
from trioflow.scheduler._decider import Decider, TaskRecord, TaskSpec

S = TaskStatus


async def _fn() -> None: ...


def make(
    task_id: Hashable,
    priority: int = 1,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
) -> TaskRecord:
    return TaskRecord(task_id, TaskSpec(_fn, True, timeout, retry), (), priority, 0.0)


class Book:
    """A decider with a record of what it said."""

    def __init__(self) -> None:
        self.changes: list[tuple[Hashable, str, float]] = []
        self.settled: list[Hashable] = []
        self.decider: Decider[TaskRecord] = Decider(
            random=lambda: 0.5, on_settle=lambda t: self.settled.append(t.id), on_change=self.saw
        )
        self.decider.report_completions = True

    def saw(self, task: TaskRecord, error: BaseException | None, now: float) -> None:
        self.changes.append((task.id, task.status.value, now))

    def add(self, task_id: Hashable, *deps: TaskRecord, **kwargs: Any) -> TaskRecord:
        task = make(task_id, **kwargs)
        self.decider.add(task, list(deps), (), 0.0)
        return task

    def run(self, now: float = 0.0) -> TaskRecord:
        task = self.decider.pop(now)
        assert task is not None
        self.decider.start(task, now)
        return task


def test_ready_tasks_pop_by_priority_then_arrival() -> None:
    book = Book()
    for task_id, priority in (("c", 3), ("a1", 1), ("b", 2), ("a2", 1)):
        book.add(task_id, priority=priority)
    order = []
    while (task := book.decider.pop(0.0)) is not None:
        order.append(task.id)
    assert order == ["a1", "a2", "b", "c"]


def test_each_status_change_is_seen_once_in_order() -> None:
    book = Book()
    a = book.add("a")
    book.add("b", a)
    book.run(1.0)
    book.decider.complete(a, "A", 2.0)
    assert book.changes == [
        ("a", "pending", 0.0),
        ("b", "waiting", 0.0),
        ("a", "running", 1.0),
        ("a", "completed", 2.0),
        ("b", "pending", 2.0),
    ]
    assert a.result == "A" and a._started == 1.0 and a._completed == 2.0
    assert book.settled == ["a"]


def test_completions_reach_on_settle_only_when_asked_failures_always() -> None:
    book = Book()
    book.decider.report_completions = False
    a, b = book.add("a"), book.add("b")
    book.run()
    book.run()
    book.decider.complete(a, 1, 0.0)
    book.decider.attempt_failed(b, ValueError("x"), 0.0)
    assert book.settled == ["b"]
    assert book.decider.counts.snapshot(1.0).completed == 1


def test_a_duplicate_id_changes_nothing() -> None:
    book = Book()
    book.add("a")
    with pytest.raises(DuplicateTaskError, match="'a' is already in use"):
        book.add("a")
    assert book.decider.counts.total == 1 and len(book.decider.queue) == 1


def test_failure_dooms_dependents_with_the_root_cause() -> None:
    book = Book()
    a = book.add("a")
    b = book.add("b", a)
    c = book.add("c", b)
    book.run()
    assert book.decider.attempt_failed(a, ValueError("x"), 1.0) is None
    assert (a.status, b.status, c.status) == (S.FAILED, S.CANCELLED, S.CANCELLED)
    assert isinstance(c.error, DependencyFailed)
    assert (c.error.dependency, c.error.root) == ("b", "a")
    assert book.settled == ["a", "b", "c"]


def test_depending_on_a_failed_task_is_cancelled_at_once() -> None:
    book = Book()
    a = book.add("a")
    book.run()
    book.decider.attempt_failed(a, ValueError("x"), 0.0)
    b = book.add("b", a)
    assert b.status is S.CANCELLED and isinstance(b.error, DependencyFailed)


def test_a_retry_waits_out_its_delay_then_queues_behind_its_equals() -> None:
    book = Book()
    a = book.add("a", retry=RetryPolicy(max_retries=2, delay=3.0, backoff=2.0))
    book.run()
    book.add("b")
    assert book.decider.attempt_failed(a, ValueError("x"), 1.0) == 3.0
    assert a.status is S.WAITING and a.error is not None
    book.decider.retry_due(a, 4.0)
    assert [book.decider.pop(0.0), book.decider.pop(0.0)] == [book.decider.tasks["b"], a]


def test_retries_back_off_and_the_last_failure_is_final() -> None:
    book = Book()
    a = book.add("a", retry=RetryPolicy(max_retries=2, delay=1.0, backoff=2.0))
    delays = []
    for now in (0.0, 10.0, 20.0):
        book.run(now)
        delays.append(book.decider.attempt_failed(a, ValueError(str(now)), now))
        if a.status is S.WAITING:
            book.decider.retry_due(a, now)
    assert delays == [1.0, 2.0, None]
    assert a.status is S.FAILED and a.attempts == 3 and len(a.failure().errors) == 3
    assert book.decider.counts.retries == 2


def test_a_zero_delay_retry_is_queued_at_once() -> None:
    book = Book()
    a = book.add("a", retry=RetryPolicy(max_retries=1, delay=0))
    book.run()
    assert book.decider.attempt_failed(a, ValueError("x"), 0.0) is None
    assert a.status is S.PENDING and book.decider.pop(0.0) is a


def test_a_timeout_is_a_timeout_error_and_ends_timeout() -> None:
    book = Book()
    a = book.add("a", timeout=2.0)
    book.run()
    cause = RuntimeError("raised while unwinding")
    assert book.decider.cut_short(a, 2.0, cause) is None
    assert a.status is S.TIMEOUT and isinstance(a.error, TimeoutError)
    assert "timed out after 2.0 s (attempt 1)" in str(a.error)
    assert a.error.__context__ is cause


def test_cancel_of_a_queued_or_waiting_task_is_immediate() -> None:
    book = Book()
    a = book.add("a")
    b = book.add("b", a)
    assert book.decider.cancel(b, 1.0) is False
    assert b.status is S.CANCELLED
    assert book.decider.cancel(a, 1.0) is False
    assert a.status is S.CANCELLED and book.decider.pop(0.0) is None


def test_cancel_of_a_running_task_asks_the_runner_to_interrupt_it() -> None:
    book = Book()
    a = book.add("a")
    book.run()
    assert book.decider.cancel(a, 1.0) is True
    assert a.status is S.RUNNING  # until the attempt is cut short
    book.decider.cut_short(a, 2.0)
    assert a.status is S.CANCELLED and a.error is None
    assert book.decider.cancel(a, 3.0) is False  # finished: nothing to do


def test_cancel_during_a_retry_delay_ends_it_and_asks_to_stop_the_sleep() -> None:
    book = Book()
    a = book.add("a", retry=RetryPolicy(max_retries=1, delay=5))
    book.run()
    book.decider.attempt_failed(a, ValueError("x"), 0.0)
    assert book.decider.cancel(a, 1.0) is True
    assert a.status is S.CANCELLED
    book.decider.retry_due(a, 5.0)  # the sleeper's late wake-up changes nothing
    assert a.status is S.CANCELLED and book.decider.pop(0.0) is None


def test_close_cancels_everything_unfinished_and_keeps_the_rest() -> None:
    book = Book()
    a = book.add("a")
    b = book.add("b", a)
    done = book.add("done")
    book.decider.pop(0.0)
    book.run()
    book.decider.complete(done, 1, 0.0)
    book.decider.close(9.0)
    assert (a.status, b.status, done.status) == (S.CANCELLED, S.CANCELLED, S.COMPLETED)
    assert book.decider.closed and book.decider.counts.finished == 3


def test_failures_lists_failed_and_timed_out_tasks_in_submission_order() -> None:
    book = Book()
    a, b, c = book.add("a"), book.add("b"), book.add("c")
    for _ in range(3):
        book.run()
    book.decider.attempt_failed(c, ValueError("c"), 0.0)
    book.decider.complete(b, None, 0.0)
    book.decider.cut_short(a, 0.0)
    assert [t.id for t in book.decider.failures()] == ["a", "c"]
