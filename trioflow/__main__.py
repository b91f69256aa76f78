"""The ``trioflow`` command: ``trioflow demo [scheduler|agents|all]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="trioflow", description="Structured-concurrency task scheduling and agents."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the seed chapter's scenarios on trioflow")
    demo.add_argument("which", nargs="?", default="all", choices=["scheduler", "agents", "all"])
    args = parser.parse_args(argv)

    from . import _demo

    async def run() -> None:
        if args.which in ("scheduler", "all"):
            await _demo.scheduler_demo()
        if args.which in ("agents", "all"):
            print()
            await _demo.agents_demo()

    try:
        trio.run(run)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
