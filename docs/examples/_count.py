"""Count the lines of the crawler examples, for docs/examples.md (a test checks the page).

Two counts per file: the lines that are neither blank nor comments (what ``wc -l`` would
say of the file with those removed), and of those, the lines of code: docstrings left out
as well. Run ``python docs/examples/_count.py`` to print the table the page shows.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
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


def count(path: Path) -> Counts:
    source = path.read_text(encoding="utf-8")
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _NOT_CODE:
            lines.update(range(token.start[0], token.end[0] + 1))
    return Counts(len(lines), len(lines - docstring_lines(source)))


def table() -> str:
    """The Markdown table of both examples' counts, as docs/examples.md shows it."""
    rows = ["| file | lines (non-blank, non-comment) | of which code (no docstrings) |"]
    rows.append("| --- | ---: | ---: |")
    for name in EXAMPLES:
        counts = count(HERE / name)
        rows.append(f"| `{name}` | {counts.lines} | {counts.code} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
