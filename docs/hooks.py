"""MkDocs hook: Sphinx-style roles in docstrings become code, linked where they can be.

trioflow's docstrings cross-reference the way Sphinx does (``:class:`TaskFailed```,
``:meth:`~trioflow.TaskHandle.wait```), as trio's do. mkdocstrings renders them as text, so
this hook turns each into inline code and, when the role names something the API reference
documents, into a link to it (through mkdocs-autorefs, ``optional`` so that a name with no
entry, such as a private helper, stays plain code instead of failing the strict build).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

#: Where a bare name is looked up, in this order (the namespaces of the API reference).
NAMESPACES = [
    "trioflow",
    "trioflow.agents",
    "trioflow.agents.transport",
    "trioflow.monitor",
    "trioflow.compat",
]
ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj):<code>(~?)([\w.]+)</code>")
DIRECTIVE = re.compile(r"^::: ([\w.]+)\s*$", re.MULTILINE)

_documented: dict[int, str] = {}


def _resolve(path: str) -> Any:
    """The object at a dotted path of public names, or ``None``."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name, None)
            if obj is None:
                return None
        return obj
    return None


def on_config(config: Any) -> Any:
    """Read which objects the API reference documents, and under which path."""
    _documented.clear()
    for page in sorted((Path(config["docs_dir"]) / "reference").glob("*.md")):
        for path in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            obj = _resolve(path)
            if obj is not None:
                _documented.setdefault(id(obj), path)
    return config


def _identifier(path: str) -> str | None:
    """The reference's path for ``path`` (``Name``, ``Name.member`` or a dotted path from
    ``trioflow``), or ``None`` when the reference has no entry for it."""
    head = path.split(".")[0]
    candidates = [path] if head == "trioflow" else [f"{ns}.{path}" for ns in NAMESPACES]
    for candidate in candidates:
        parts = candidate.split(".")
        # The longest prefix that is a documented object, then the rest as its members.
        for cut in range(len(parts), 0, -1):
            obj = _resolve(".".join(parts[:cut]))
            documented = None if obj is None else _documented.get(id(obj))
            if documented is not None:
                return ".".join([documented, *parts[cut:]])
    return None


def on_page_content(html: str, **kwargs: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        tilde, path = match.groups()
        code = f"<code>{path.rsplit('.', 1)[-1] if tilde else path}</code>"
        identifier = _identifier(path)
        if identifier is None:
            return code
        return f'<autoref identifier="{identifier}" optional>{code}</autoref>'

    return ROLE.sub(replace, html)
