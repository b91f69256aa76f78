"""Every ```python block of README.md and docs/ runs, as shown, as a program of its own.

A block is a complete program (imports, ``trio.run(main)``): it is written to a file and run
in a fresh interpreter (``_run_block.py``), so it cannot lean on anything the suite or an
earlier block set up. By default it runs on a virtual clock (trio's autojumping
``MockClock``, and the same idea for ``asyncio.run``): a block may sleep for seconds, as a
real program would, and the suite still spends no time on it.

Three directives, all visible in the Markdown source, the first also on the page:

* A block whose first line is ``# Not run by the docs tests: <reason>`` is skipped with that
  reason (keep these few: a server the suite does not have, say).
* ``<!-- docs-test: real-clock -->`` among the HTML comments right above a block runs it on
  the real clock (threads, worker processes and sockets make progress that a virtual clock
  does not wait for).
* A ````` ```text title="Output" ````` block right after a block is its output: the block's
  standard output must be exactly that.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("_run_block.py")
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

SKIP = re.compile(r"^# Not run by the docs tests: (?P<reason>\S.*)$")
FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>```+)(?P<info>[^`]*)$")
REAL_CLOCK = "<!-- docs-test: real-clock -->"
OUTPUT_INFO = re.compile(r'^text\s+title="Output"$')


class Block(NamedTuple):
    path: Path
    line: int  # of the opening fence, 1-based
    code: str
    real_clock: bool
    output: str | None  # the expected standard output, when the page shows it

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(text: str) -> list[tuple[int, str, str, str]]:
    """``(line, info, body, comments above)`` for each fenced block, body dedented."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        # The HTML comments right above the fence: where directives go.
        k = i
        while k and lines[k - 1].strip().startswith("<!--"):
            k -= 1
        before = "\n".join(line.strip() for line in lines[k:i])
        blocks.append((i + 1, opening["info"].strip(), "\n".join(body) + "\n", before))
        i = j + 1
    return blocks


def python_blocks(path: Path) -> list[Block]:
    found = fenced_blocks(path.read_text(encoding="utf-8"))
    blocks = []
    for n, (line, info, body, before) in enumerate(found):
        if info != "python":
            continue
        output = None
        if n + 1 < len(found) and OUTPUT_INFO.match(found[n + 1][1]):
            output = found[n + 1][2]
        blocks.append(Block(path, line, body, REAL_CLOCK in before.splitlines(), output))
    return blocks


BLOCKS = [block for source in SOURCES for block in python_blocks(source)]


def test_the_docs_have_code_to_run() -> None:
    """The extraction itself works: README.md and the guide pages all have blocks."""
    pages = {block.path.name for block in BLOCKS}
    assert {"README.md", "getting-started.md", "scheduler.md", "agents.md"} <= pages
    skipped = [block.name for block in BLOCKS if SKIP.match(block.code.splitlines()[0])]
    assert len(skipped) <= 3, f"keep the blocks that do not run few: {skipped}"


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_code_block_runs(block: Block, tmp_path: Path) -> None:
    first = block.code.splitlines()[0]
    skip = SKIP.match(first)
    if skip:
        pytest.skip(skip["reason"])
    program = tmp_path / "block.py"
    program.write_text(block.code, encoding="utf-8")
    env = {
        **os.environ,
        # The crawler examples import their site from docs/examples; trioflow comes from
        # this checkout, as everywhere in the suite.
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "docs" / "examples")]),
        "PYTHONWARNINGS": "error",
        "COLUMNS": "100",
        "TERM": "dumb",
    }
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(program), "real" if block.real_clock else "mock"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert done.returncode == 0, (
        f"{block.name} exited {done.returncode}\n--- stdout\n{done.stdout}"
        f"\n--- stderr\n{done.stderr}"
    )
    if block.output is not None:
        shown = [line.rstrip() for line in block.output.strip("\n").splitlines()]
        printed = [line.rstrip() for line in done.stdout.strip("\n").splitlines()]
        assert printed == shown, f"{block.name}: the page shows another output than it prints"
