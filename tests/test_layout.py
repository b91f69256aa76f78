"""The package's layout: what imports what.

The import graph of ``trioflow`` is read from the source with ``ast`` (imports under
``TYPE_CHECKING`` count too: a cycle there is still a cycle in the design) and must have no
cycle, so that every module can be read, tested and changed from the bottom up.

An import of ``a.b.c`` is an edge to ``a.b.c`` and to each package on the way that is not
one of the importer's own packages (importing ``a.b.c`` runs ``a/b/__init__.py``; the
importer's own packages are already being imported when it runs, so they are no new edge).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "trioflow"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        own_package = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = own_package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                targets = [source]
                # ``from package import submodule`` imports the submodule
                targets += [
                    f"{source}.{alias.name}"
                    for alias in node.names
                    if f"{source}.{alias.name}" in modules
                ]
            for target in targets:
                if not target.startswith("trioflow"):
                    continue
                parts = target.split(".")
                for end in range(1, len(parts) + 1):
                    prefix = ".".join(parts[:end])
                    is_ancestor = name == prefix or name.startswith(prefix + ".")
                    if prefix in modules and prefix != name and not is_ancestor:
                        graph[name].add(prefix)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of modules (first repeated last), or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            found = visit(start)
            if found:
                return found
    return None


def test_the_checker_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_relative_and_type_checking_imports() -> None:
    graph = import_graph()
    assert "trioflow.agents._dispatch" in graph["trioflow.agents._coordinator"]
    assert "trioflow._errors" in graph["trioflow.agents._dispatch"]
    assert "trioflow.agents.transport" in graph["trioflow.agents._agent"]  # its __init__ runs


def test_trioflow_has_no_import_cycle() -> None:
    assert find_cycle(import_graph()) is None


def test_the_agent_does_not_know_the_coordinator() -> None:
    graph = import_graph()
    below_agent = set()
    todo = ["trioflow.agents._agent"]
    while todo:
        module = todo.pop()
        for nxt in graph[module] - below_agent:
            below_agent.add(nxt)
            todo.append(nxt)
    assert "trioflow.agents._coordinator" not in below_agent
    assert "trioflow.agents._supervisor" not in below_agent


def test_the_redis_extra_is_needed_only_for_redis() -> None:
    """Without coredis every in-process name imports; the Redis names say what to install."""
    probe = (
        "import sys; sys.modules['coredis'] = None\n"
        "import trioflow, trioflow.agents, trioflow.monitor\n"
        "from trioflow.agents import RegistrationRefused, RedisTransport\n"
        "assert 'serve_agents' in dir(trioflow.agents)\n"
        "try:\n"
        "    trioflow.agents.serve_agents\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "needs coredis" in done.stdout
