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

from .._errors import CycleError, DuplicateTaskError, UnknownDependencyError


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


class DependencyGraph:
    """Nodes added one at a time, each after all of its dependencies (so no cycles).

    Kept as three dicts rather than an object per node: a run of a million independent
    tasks then adds no garbage-collected object per task here, which kept the cyclic GC's
    scans (and so the per-task cost) from growing with the size of the run.
    """

    __slots__ = ("_dependents", "_remaining", "_state")

    def __init__(self) -> None:
        self._state: dict[Hashable, NodeState] = {}
        self._remaining: dict[Hashable, int] = {}  # waiting nodes only
        self._dependents: dict[Hashable, list[Hashable]] = {}  # unfinished nodes only

    def __contains__(self, key: object) -> bool:
        return key in self._state

    def __len__(self) -> int:
        return len(self._state)

    def state(self, key: Hashable) -> NodeState:
        return self._state[key]

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
        state = self._state
        if key in state:
            raise DuplicateTaskError(key)
        if not dependencies:
            state[key] = _READY
            return _READY, None
        deps = list(dict.fromkeys(dependencies))
        for dep in deps:
            if dep not in state:
                raise UnknownDependencyError(key, dep)
        unfinished = []
        for dep in deps:
            dep_state = state[dep]
            if dep_state is _FAILED:
                state[key] = _FAILED
                return _FAILED, dep
            if dep_state is not _COMPLETED:
                unfinished.append(dep)
        if not unfinished:
            state[key] = _READY
            return _READY, None
        state[key] = _WAITING
        self._remaining[key] = len(unfinished)
        dependents = self._dependents
        for dep in unfinished:
            waiting = dependents.get(dep)
            if waiting is None:
                dependents[dep] = [key]
            else:
                waiting.append(key)
        return _WAITING, None

    def mark_completed(self, key: Hashable) -> Sequence[Hashable]:
        """Record that ``key`` completed; return the dependents that are now ready, in the
        order they were added."""
        state = self._state
        if state[key] is not _READY:
            raise ValueError(f"cannot complete {key!r}: it is {state[key].value}")
        state[key] = _COMPLETED
        dependents = self._dependents.pop(key, None)
        if dependents is None:
            return ()
        ready = []
        remaining = self._remaining
        for dependent in dependents:
            if state[dependent] is _WAITING:
                left = remaining[dependent] - 1
                if left:
                    remaining[dependent] = left
                else:
                    del remaining[dependent]
                    state[dependent] = _READY
                    ready.append(dependent)
        return ready

    def mark_failed(self, key: Hashable) -> list[tuple[Hashable, Hashable]]:
        """Record that ``key`` failed (or was cancelled) before completing.

        Returns every node doomed by it, transitively, as ``(node, failed_dependency)``
        pairs in breadth-first order; ``key`` itself is not listed. Failing a node that has
        already finished is a no-op.
        """
        state = self._state
        if state[key] is _COMPLETED or state[key] is _FAILED:
            return []
        state[key] = _FAILED
        self._remaining.pop(key, None)
        doomed: list[tuple[Hashable, Hashable]] = []
        frontier = deque([key])
        while frontier:
            upstream = frontier.popleft()
            for dependent in self._dependents.pop(upstream, ()):
                if state[dependent] is _WAITING:
                    state[dependent] = _FAILED
                    del self._remaining[dependent]
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
