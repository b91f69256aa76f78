"""ReadyQueue: (priority, arrival) order."""

import pytest
from hypothesis import given, strategies as st

from trioflow.scheduler._ready_queue import ReadyQueue


def test_lower_priority_number_first_then_arrival_order() -> None:
    queue: ReadyQueue[str] = ReadyQueue()
    for item, priority in [("c3", 3), ("a1", 1), ("b2", 2), ("a1-second", 1)]:
        queue.push(item, priority)
    assert [queue.pop() for _ in range(len(queue))] == ["a1", "a1-second", "b2", "c3"]
    assert not queue


def test_a_returning_item_goes_behind_its_equals() -> None:
    queue: ReadyQueue[str] = ReadyQueue()
    queue.push("retry", 1)
    queue.push("other", 1)
    assert queue.pop() == "retry"
    queue.push("retry", 1)
    assert queue.peek() == "other"


def test_items_are_never_compared() -> None:
    """Unorderable items (dicts) are fine: ties are broken by arrival."""
    queue: ReadyQueue[dict] = ReadyQueue()
    queue.push({"n": 1}, 0)
    queue.push({"n": 2}, 0)
    assert queue.pop() == {"n": 1}


def test_popping_an_empty_queue_raises_index_error() -> None:
    queue: ReadyQueue[str] = ReadyQueue()
    queue.push("x", 5)
    queue.pop()
    try:
        queue.pop()
    except IndexError:
        pass
    else:
        raise AssertionError("expected IndexError")


def test_order_matches_a_sort_by_priority_then_arrival() -> None:
    import random

    rng = random.Random(3)
    queue: ReadyQueue[int] = ReadyQueue()
    pushed: list[tuple[int, int]] = []
    popped: list[int] = []
    for step in range(2000):
        if rng.random() < 0.6 or not queue:
            priority = rng.randint(-3, 3)
            queue.push(step, priority)
            pushed.append((priority, step))
        else:
            best = min(pushed)
            pushed.remove(best)
            popped.append(queue.pop())
            assert popped[-1] == best[1]
    assert len(queue) == len(pushed)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from(["push", "push_front"]), st.integers(-2, 2)),
            st.just(("pop", 0)),
        ),
        max_size=60,
    )
)
def test_every_operation_matches_a_model_also_across_emptying(
    operations: list[tuple[str, int]],
) -> None:
    """A queue that empties keeps its last bucket (a chain readies one task at a time at
    one priority); pushing at another priority, peeking and popping must not notice."""
    queue: ReadyQueue[int] = ReadyQueue()
    model: list[tuple[int, float, int]] = []  # (priority, place, item)
    front = back = 0.0
    for item, (operation, priority) in enumerate(operations):
        if operation == "push":
            back += 1
            model.append((priority, back, item))
            queue.push(item, priority)
        elif operation == "push_front":
            front -= 1
            model.append((priority, front, item))
            queue.push_front(item, priority)
        elif model:
            best = min(model)
            model.remove(best)
            assert queue.peek_priority() == best[0]
            assert queue.peek() == best[2]
            assert queue.pop() == best[2]
        else:
            for look in (queue.pop, queue.peek, queue.peek_priority):
                with pytest.raises(IndexError):
                    look()
        assert len(queue) == len(model)
        assert bool(queue) == bool(model)
