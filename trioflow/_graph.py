"""The dependency graph: which tasks wait, which are ready, and whose failure dooms whom.

Pure and synchronous. The scheduler tells the graph when a task completes or fails; the
graph answers with the tasks that just became ready, or that can now never run. Finishing a
task costs O(its dependents), so a chain of N tasks costs O(N) with no task or event parked
per link.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Mapping, Sequence
from enum import Enum

from ._errors import CycleError, DuplicateTaskError, UnknownDependencyError


class NodeState(Enum):
    """Where a node stands in the graph (not the task's full status)."""

    WAITING = "waiting"  # some dependency has not finished
    READY = "ready"  # every dependency completed; not finished itself
    COMPLETED = "completed"
    FAILED = "failed"  # failed, timed out or cancelled: dependents never run


_WAITING = NodeState.WAITING
_READY = NodeState.READY
_COMPLETED = NodeState.COMPLETED
_FAILED = NodeState.FAILED


class _Node:
    __slots__ = ("dependents", "remaining", "state")

    def __init__(self, state: NodeState, remaining: int) -> None:
        self.state = state
        self.remaining = remaining
        self.dependents: list[Hashable] | None = None


class DependencyGraph:
    """Nodes added one at a time, each after all of its dependencies (so no cycles)."""

    __slots__ = ("_nodes",)

    def __init__(self) -> None:
        self._nodes: dict[Hashable, _Node] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def state(self, key: Hashable) -> NodeState:
        return self._nodes[key].state

    def add(
        self, key: Hashable, dependencies: Iterable[Hashable] = ()
    ) -> tuple[NodeState, Hashable]:
        """Add ``key`` depending on ``dependencies`` (all already added).

        Returns ``(state, culprit)``: ``READY``, ``WAITING``, or ``FAILED`` when a dependency
        has already failed, in which case ``culprit`` is that dependency (else ``None``).

        Raises:
            DuplicateTaskError: ``key`` is already in the graph.
            UnknownDependencyError: a dependency is not; nothing is added.
        """
        nodes = self._nodes
        if key in nodes:
            raise DuplicateTaskError(key)
        deps = list(dict.fromkeys(dependencies)) if dependencies else ()
        for dep in deps:
            if dep not in nodes:
                raise UnknownDependencyError(key, dep)
        remaining = 0
        for dep in deps:
            dep_state = nodes[dep].state
            if dep_state is _FAILED:
                nodes[key] = _Node(_FAILED, 0)
                return _FAILED, dep
            if dep_state is not _COMPLETED:
                remaining += 1
        node = _Node(_WAITING if remaining else _READY, remaining)
        nodes[key] = node
        if remaining:
            for dep in deps:
                dep_node = nodes[dep]
                if dep_node.state is not _COMPLETED:
                    if dep_node.dependents is None:
                        dep_node.dependents = [key]
                    else:
                        dep_node.dependents.append(key)
        return node.state, None

    def mark_completed(self, key: Hashable) -> list[Hashable]:
        """Record that ``key`` completed; return the dependents that are now ready, in the
        order they were added."""
        node = self._nodes[key]
        if node.state is not _READY:
            raise ValueError(f"cannot complete {key!r}: it is {node.state.value}")
        node.state = _COMPLETED
        dependents = node.dependents
        if dependents is None:
            return []
        node.dependents = None
        ready = []
        nodes = self._nodes
        for dependent in dependents:
            child = nodes[dependent]
            if child.state is _WAITING:
                child.remaining -= 1
                if not child.remaining:
                    child.state = _READY
                    ready.append(dependent)
        return ready

    def mark_failed(self, key: Hashable) -> list[tuple[Hashable, Hashable]]:
        """Record that ``key`` failed (or was cancelled) before completing.

        Returns every node doomed by it, transitively, as ``(node, failed_dependency)``
        pairs in breadth-first order; ``key`` itself is not listed. Failing a node that has
        already finished is a no-op.
        """
        nodes = self._nodes
        node = nodes[key]
        if node.state is _COMPLETED or node.state is _FAILED:
            return []
        node.state = _FAILED
        doomed: list[tuple[Hashable, Hashable]] = []
        frontier = deque([key])
        while frontier:
            upstream = frontier.popleft()
            up_node = nodes[upstream]
            dependents = up_node.dependents
            if dependents is None:
                continue
            up_node.dependents = None
            for dependent in dependents:
                child = nodes[dependent]
                if child.state is _WAITING:
                    child.state = _FAILED
                    doomed.append((dependent, upstream))
                    frontier.append(dependent)
        return doomed


def find_cycle(edges: Mapping[Hashable, Iterable[Hashable]]) -> list[Hashable] | None:
    """A cycle in ``node -> dependencies`` edges as ``[a, b, ..., a]``, or ``None``.

    Dependencies that are not themselves keys of ``edges`` are ignored. Iterative, so deep
    graphs do not hit the recursion limit.
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(edges, white)
    for start in edges:
        if colour[start] != white:
            continue
        path: list[Hashable] = [start]
        stack = [iter(edges[start])]
        colour[start] = grey
        while stack:
            for dep in stack[-1]:
                dep_colour = colour.get(dep)
                if dep_colour == white:
                    colour[dep] = grey
                    path.append(dep)
                    stack.append(iter(edges[dep]))
                    break
                if dep_colour == grey:
                    return [*path[path.index(dep) :], dep]
            else:
                colour[path.pop()] = black
                stack.pop()
    return None


def dependency_order(edges: Mapping[Hashable, Sequence[Hashable]]) -> list[Hashable]:
    """Every key of ``edges`` with each node after its dependencies, otherwise keeping the
    mapping's own order.

    Raises:
        UnknownDependencyError: an edge points at a key that is not in ``edges``.
        CycleError: the edges have a cycle.
    """
    for node, deps in edges.items():
        for dep in deps:
            if dep not in edges:
                raise UnknownDependencyError(node, dep)
    cycle = find_cycle(edges)
    if cycle is not None:
        raise CycleError(cycle)
    order: list[Hashable] = []
    placed: set[Hashable] = set()
    for root in edges:
        if root in placed:
            continue
        stack: list[tuple[Hashable, int]] = [(root, 0)]
        while stack:
            node, index = stack.pop()
            deps = edges[node]
            while index < len(deps) and deps[index] in placed:
                index += 1
            if index < len(deps):
                stack.append((node, index + 1))
                stack.append((deps[index], 0))
            elif node not in placed:
                placed.add(node)
                order.append(node)
    return order
