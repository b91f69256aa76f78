"""Count the lines of the crawler examples, for docs/examples.md (a test checks the page).

Two counts per file: the lines that are neither blank nor comments (what ``wc -l`` would
say of the file with those removed), and of those, the lines of code: docstrings left out
as well; then the lines of code of each part (class, function) of both files side by side.

``python docs/examples/_count.py`` prints the tables; with ``--write`` it also refreshes the
generated parts of docs/examples.md (the tables, and the two files' code), which lie
between ``<!-- begin NAME -->`` and ``<!-- end NAME -->`` lines.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "examples.md"
EXAMPLES = ("crawler_trioflow.py", "crawler_trio.py")

_NOT_CODE = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


@dataclass(frozen=True)
class Counts:
    lines: int  # non-blank, non-comment
    code: int  # and not a docstring


def docstring_lines(source: str) -> set[int]:
    """The line numbers taken by the docstrings of the module, its classes and functions."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def code_lines(source: str) -> tuple[set[int], set[int]]:
    """(the non-blank, non-comment line numbers, those of them that are code)."""
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _NOT_CODE:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines, lines - docstring_lines(source)


def count(path: Path) -> Counts:
    lines, code = code_lines(path.read_text(encoding="utf-8"))
    return Counts(len(lines), len(code))


def parts(path: Path) -> dict[str, int]:
    """Lines of code per top-level part of a file: each class and function by its name,
    ``imports``, and ``other`` (constants, the main guard)."""
    source = path.read_text(encoding="utf-8")
    _, code = code_lines(source)
    found: dict[str, int] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"`{node.name}`"
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        else:
            name = "imports" if isinstance(node, ast.Import | ast.ImportFrom) else "other"
            first = node.lineno
        span = set(range(first, (node.end_lineno or node.lineno) + 1))
        found[name] = found.get(name, 0) + len(span & code)
    return {name: n for name, n in found.items() if n}


def table() -> str:
    """The Markdown tables of both examples' counts, as docs/examples.md shows them."""
    rows = ["| file | lines (non-blank, non-comment) | of which code (no docstrings) |"]
    rows.append("| --- | ---: | ---: |")
    for name in EXAMPLES:
        counts = count(HERE / name)
        rows.append(f"| `{name}` | {counts.lines} | {counts.code} |")
    rows += ["", "| part (lines of code) | trioflow | trio |", "| --- | ---: | ---: |"]
    ours, theirs = (parts(HERE / name) for name in EXAMPLES)
    for name in dict.fromkeys([*ours, *theirs]):
        rows.append(f"| {name} | {ours.get(name, '')} | {theirs.get(name, '')} |")
    return "\n".join(rows)


def generated() -> dict[str, str]:
    """The page's generated parts by name: the counts, and each example's code."""
    parts = {"counts": table()}
    for name in EXAMPLES:
        parts[name] = f"```python\n{(HERE / name).read_text(encoding='utf-8')}```"
    return parts


def refresh(page: str) -> str:
    """``page`` with each generated part replaced by its current text."""
    for name, text in generated().items():
        begin, end = f"<!-- begin {name} -->\n", f"<!-- end {name} -->"
        head, found, rest = page.partition(begin)
        _, found_end, tail = rest.partition(end)
        if not (found and found_end):
            raise ValueError(f"docs/examples.md has no part {name!r}")
        page = f"{head}{begin}{text}\n{end}{tail}"
    return page


if __name__ == "__main__":
    print(table())
    if sys.argv[1:] == ["--write"]:
        PAGE.write_text(refresh(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
