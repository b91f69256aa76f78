"""DependencyGraph, find_cycle and dependency_order: the pure dependency logic."""

import pytest

from trioflow import CycleError, UnknownDependencyError
from trioflow.scheduler._graph import DependencyGraph, dependency_order, find_cycle


def test_a_node_with_nothing_unfinished_to_wait_for_is_ready() -> None:
    graph: DependencyGraph[str] = DependencyGraph()
    assert graph.add("a", []) is False
    assert not graph.is_waiting("a") and len(graph) == 0


def test_completion_releases_dependents_once_all_their_dependencies_completed() -> None:
    graph: DependencyGraph[str] = DependencyGraph()
    assert graph.add("c", ["a", "b"]) is True
    assert graph.completed("a") == []
    assert graph.is_waiting("c")
    assert graph.completed("b") == ["c"]
    assert not graph.is_waiting("c")


def test_dependents_are_released_in_the_order_they_were_added() -> None:
    graph: DependencyGraph[str] = DependencyGraph()
    for name in "xyz":
        graph.add(name, ["a"])
    assert graph.completed("a") == ["x", "y", "z"]


def test_failure_dooms_dependents_transitively_and_says_through_whom() -> None:
    graph: DependencyGraph[str] = DependencyGraph()
    graph.add("b", ["a"])
    graph.add("c", ["b"])
    graph.add("d", ["a", "c"])
    graph.add("f", ["e"])
    ready, doomed = graph.failed("a")
    assert ready == []
    assert doomed == [("b", "a"), ("d", "a"), ("c", "b")]
    assert graph.is_waiting("f") and len(graph) == 1


def test_a_doomed_node_is_not_released_when_its_other_dependency_completes() -> None:
    graph: DependencyGraph[str] = DependencyGraph()
    graph.add("c", ["a", "b"])
    graph.failed("a")
    assert graph.completed("b") == []
    assert not graph.is_waiting("c")


def test_a_settled_edge_releases_on_failure_and_stops_the_doom() -> None:
    graph: DependencyGraph[str] = DependencyGraph()
    graph.add("b", ["a"])
    graph.add("agg", ["a", "b"], settled=["a", "b"])
    graph.add("after", ["agg"])
    ready, doomed = graph.failed("a")
    # b is doomed by a; agg settles on both a (failed) and b (doomed), so it is ready.
    assert doomed == [("b", "a")]
    assert ready == ["agg"]
    assert graph.is_waiting("after")


def test_a_settled_edge_releases_on_completion_too() -> None:
    graph: DependencyGraph[str] = DependencyGraph()
    graph.add("agg", ["a"], settled=["a"])
    assert graph.completed("a") == ["agg"]


def test_a_mixed_node_waits_for_both_kinds_and_is_doomed_by_a_plain_one() -> None:
    graph: DependencyGraph[str] = DependencyGraph()
    graph.add("n", ["plain", "soft"], settled=["soft"])
    assert graph.failed("soft") == ([], [])
    assert graph.is_waiting("n")
    assert graph.failed("plain") == ([], [("n", "plain")])


def test_a_cancelled_waiting_node_is_forgotten_and_never_released() -> None:
    graph: DependencyGraph[str] = DependencyGraph()
    graph.add("b", ["a"])
    graph.add("c", ["b"])
    assert graph.failed("b") == ([], [("c", "b")])
    assert graph.completed("a") == []
    assert len(graph) == 0


def test_finishing_a_node_nobody_waits_for_is_free() -> None:
    graph: DependencyGraph[str] = DependencyGraph()
    assert graph.completed("a") == []
    assert graph.failed("b") == ([], [])


def test_find_cycle_returns_the_cycle_path() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None


def test_find_cycle_handles_deep_chains_without_recursion() -> None:
    edges = {i: [i - 1] if i else [] for i in range(50_000)}
    assert find_cycle(edges) is None
    edges[0] = [49_999]
    cycle = find_cycle(edges)
    assert cycle is not None and len(cycle) == 50_001


def test_dependency_order_puts_dependencies_first_and_keeps_order_otherwise() -> None:
    edges = {"b": ["a"], "x": [], "a": [], "c": ["b", "x"]}
    assert dependency_order(edges) == ["a", "b", "x", "c"]


def test_dependency_order_reports_unknown_ids_and_cycles() -> None:
    with pytest.raises(UnknownDependencyError, match="'a' depends on unknown task 'q'"):
        dependency_order({"a": ["q"]})
    with pytest.raises(CycleError, match="'a' -> 'b' -> 'a'") as info:
        dependency_order({"a": ["b"], "b": ["a"]})
    assert info.value.cycle == ["a", "b", "a"]
