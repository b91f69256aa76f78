"""DependencyGraph, find_cycle and dependency_order: the pure dependency logic."""

import pytest

from trioflow import CycleError, DuplicateTaskError, UnknownDependencyError
from trioflow.scheduler._graph import DependencyGraph, NodeState, dependency_order, find_cycle


def test_a_node_without_dependencies_is_ready() -> None:
    graph = DependencyGraph()
    assert graph.add("a") == (NodeState.READY, None)


def test_completion_releases_dependents_once_all_their_dependencies_completed() -> None:
    graph = DependencyGraph()
    graph.add("a")
    graph.add("b")
    assert graph.add("c", ["a", "b"]) == (NodeState.WAITING, None)
    assert list(graph.mark_completed("a")) == []
    assert list(graph.mark_completed("b")) == ["c"]
    assert graph.state("c") is NodeState.READY


def test_depending_on_a_completed_node_is_ready_at_once() -> None:
    graph = DependencyGraph()
    graph.add("a")
    graph.mark_completed("a")
    assert graph.add("b", ["a"]) == (NodeState.READY, None)


def test_failure_dooms_dependents_transitively_and_says_through_whom() -> None:
    graph = DependencyGraph()
    graph.add("a")
    graph.add("b", ["a"])
    graph.add("c", ["b"])
    graph.add("d", ["a", "c"])
    graph.add("e")
    assert graph.mark_failed("a") == [("b", "a"), ("d", "a"), ("c", "b")]
    assert graph.state("e") is NodeState.READY
    assert all(graph.state(key) is NodeState.FAILED for key in "abcd")


def test_a_doomed_node_is_not_released_when_its_other_dependency_completes() -> None:
    graph = DependencyGraph()
    graph.add("a")
    graph.add("b")
    graph.add("c", ["a", "b"])
    graph.mark_failed("a")
    assert list(graph.mark_completed("b")) == []
    assert graph.state("c") is NodeState.FAILED


def test_depending_on_a_failed_node_fails_at_once_naming_it() -> None:
    graph = DependencyGraph()
    graph.add("a")
    graph.add("ok")
    graph.mark_failed("a")
    assert graph.add("b", ["ok", "a"]) == (NodeState.FAILED, "a")


def test_failing_a_finished_node_is_a_no_op() -> None:
    graph = DependencyGraph()
    graph.add("a")
    graph.add("b", ["a"])
    graph.mark_completed("a")
    assert graph.mark_failed("a") == []
    assert graph.state("b") is NodeState.READY


def test_completing_a_node_that_is_not_ready_is_a_bug() -> None:
    graph = DependencyGraph()
    graph.add("a")
    graph.add("b", ["a"])
    with pytest.raises(ValueError, match="cannot complete 'b': it is waiting"):
        graph.mark_completed("b")


def test_bad_additions_change_nothing() -> None:
    graph = DependencyGraph()
    graph.add("a")
    with pytest.raises(DuplicateTaskError):
        graph.add("a")
    with pytest.raises(UnknownDependencyError, match="'b' depends on unknown task 'zzz'"):
        graph.add("b", ["a", "zzz"])
    assert "b" not in graph
    assert list(graph.mark_completed("a")) == []


def test_duplicate_dependencies_count_once() -> None:
    graph = DependencyGraph()
    graph.add("a")
    graph.add("b", ["a", "a"])
    assert list(graph.mark_completed("a")) == ["b"]


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
