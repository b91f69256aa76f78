"""The dependency graph: who waits on whom, and whom a finished node releases or dooms.

Pure and synchronous. The graph knows only the edges of *unfinished* work: which nodes are
still waiting (and for how many dependencies), and which nodes wait on each unfinished node.
Which nodes exist and how they ended is the decider's business (it keeps every task's
status anyway), so a task that nobody depends on costs the graph nothing at all.

Two kinds of edge:

* a plain edge (a data or ordering dependency): the dependent runs only if the dependency
  *completed*; if it fails, the dependent is doomed, and so on transitively;
* a *settled* edge (``trioflow.settled(handle)``): the dependent runs once the dependency
  has ended in any way; its failure does not travel along this edge.

Finishing a node costs O(its dependents), so a chain of N tasks costs O(N), with no task,
event or object per edge beyond one list entry.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from .._errors import CycleError, UnknownDependencyError

__all__ = ["DependencyGraph", "dependency_order", "find_cycle"]

N = TypeVar("N", bound=Hashable)


class DependencyGraph(Generic[N]):
    """The waiting nodes of a run and the edges into them.

    Kept as plain dicts rather than an object per node: a run of a million tasks then adds
    no garbage-collected object per task here, which keeps the cyclic GC's scans (and so
    the per-task cost) from growing with the size of the run.
    """

    __slots__ = ("_dependents", "_remaining", "_settled")

    def __init__(self) -> None:
        self._remaining: dict[N, int] = {}  # waiting node -> unfinished dependencies
        self._dependents: dict[N, list[N]] = {}  # unfinished node -> nodes waiting on it
        self._settled: dict[N, set[N]] = {}  # waiting node -> its settled dependencies

    def __len__(self) -> int:
        """How many nodes are waiting."""
        return len(self._remaining)

    def is_waiting(self, node: N) -> bool:
        return node in self._remaining

    def downstream(self, node: N) -> set[N]:
        """Every node that waits for ``node``, directly or through others: none of them
        can start before ``node`` ends. O(their number); usually ``node`` has none."""
        found: set[N] = set()
        todo = list(self._dependents.get(node, ()))
        while todo:
            waiting = todo.pop()
            if waiting not in found:
                found.add(waiting)
                todo.extend(self._dependents.get(waiting, ()))
        return found

    def add(self, node: N, unfinished: Sequence[N], settled: Collection[N] = ()) -> bool:
        """Make ``node`` wait for ``unfinished`` (distinct nodes that have not finished).

        Those in ``settled`` release ``node`` however they end; the others only by
        completing. Returns whether ``node`` waits (False: it is ready now).
        """
        if not unfinished:
            return False
        self._remaining[node] = len(unfinished)
        if settled:
            self._settled[node] = set(settled)
        dependents = self._dependents
        for dependency in unfinished:
            waiting = dependents.get(dependency)
            if waiting is None:
                dependents[dependency] = [node]
            else:
                waiting.append(node)
        return True

    def completed(self, node: N) -> list[N]:
        """``node`` completed: the nodes that are now ready, in the order they were added."""
        dependents = self._dependents.pop(node, None)
        if dependents is None:
            return []
        ready: list[N] = []
        remaining = self._remaining
        for dependent in dependents:
            # _release(dependent), inlined: this runs once per edge.
            left = remaining.get(dependent)
            if left is None:
                continue  # doomed or cancelled while it waited
            if left > 1:
                remaining[dependent] = left - 1
            else:
                del remaining[dependent]
                if self._settled:
                    self._settled.pop(dependent, None)
                ready.append(dependent)
        return ready

    def failed(self, node: N) -> tuple[list[N], list[tuple[N, N]]]:
        """``node`` failed, timed out or was cancelled without completing.

        Returns ``(ready, doomed)``: the nodes released along settled edges, and every node
        doomed by the failure, transitively, as ``(node, failed_dependency)`` pairs in
        breadth-first order (``node`` itself is not listed). A doomed node counts as failed
        in its turn, so its settled dependents are released as well.
        """
        self._forget(node)
        ready: list[N] = []
        doomed: list[tuple[N, N]] = []
        frontier = deque([node])
        while frontier:
            upstream = frontier.popleft()
            for dependent in self._dependents.pop(upstream, ()):
                if dependent not in self._remaining:
                    continue  # doomed or cancelled already
                settled = self._settled.get(dependent)
                if settled is not None and upstream in settled:
                    self._release(dependent, upstream, ready)
                else:
                    self._forget(dependent)
                    doomed.append((dependent, upstream))
                    frontier.append(dependent)
        return ready, doomed

    def _release(self, dependent: N, dependency: N, ready: list[N]) -> None:
        left = self._remaining.get(dependent)
        if left is None:
            return  # doomed or cancelled while it waited
        if left > 1:
            self._remaining[dependent] = left - 1
        else:
            del self._remaining[dependent]
            self._settled.pop(dependent, None)
            ready.append(dependent)

    def _forget(self, node: N) -> None:
        self._remaining.pop(node, None)
        self._settled.pop(node, None)


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
