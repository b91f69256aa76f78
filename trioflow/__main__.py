"""The ``trioflow`` command.

    trioflow demo                      (both of the chapter's scenarios)
    trioflow demo scheduler [--tasks N] [--workers N] [--fail-rate F]
    trioflow demo agents [--tasks N] [--agents N] [--hang-agent | --no-hang-agent] [--crash-agent]
    trioflow bench [--quick] [--repeat N]

Exit codes: 0 done, 1 an error, 2 bad usage, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import trio


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, with where to look next."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trioflow",
        description="Structured-concurrency task scheduling and agents, on trio.",
        epilog="Exit codes: 0 done, 1 an error, 2 bad usage, 130 interrupted.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the seed chapter's scenarios, watched live",
        description="Without a DEMO, run both scenarios with their defaults.",
    )
    which = demo.add_subparsers(dest="which", required=False, metavar="DEMO")
    view = argparse.ArgumentParser(add_help=False)
    view.add_argument(
        "--plain", action="store_true", help="plain timestamped lines instead of the live view"
    )
    view.add_argument("--seed", type=int, default=0, help="random seed for --tasks runs")

    sched = which.add_parser("scheduler", parents=[view], help="challenge 1: the scheduler")
    sched.add_argument(
        "--tasks", type=_positive_int, help="run N synthetic tasks instead of the chapter's five"
    )
    sched.add_argument("--workers", type=_positive_int, default=3, help="max_workers (3)")
    sched.add_argument(
        "--fail-rate",
        type=_rate,
        default=0.0,
        help="share of tasks that fail their first attempt (0-1); half as "
        "many again time out on it",
    )

    agents = which.add_parser("agents", parents=[view], help="challenge 2: the agents")
    agents.add_argument(
        "--tasks",
        type=_positive_int,
        help="run N random search/calculate tasks instead of the chapter's",
    )
    agents.add_argument(
        "--agents",
        type=_positive_int,
        default=4,
        help="agents for --tasks runs, half search, half calculate (4)",
    )
    agents.add_argument(
        "--hang-agent",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="make one search agent's heartbeat hang (default: on)",
    )
    agents.add_argument(
        "--crash-agent", action="store_true", help="make one calculator agent's own loop crash"
    )

    bench = commands.add_parser("bench", help="run the benchmark suite (a source checkout)")
    bench.add_argument("--quick", action="store_true", help="small sizes, one run each")
    bench.add_argument("--repeat", type=_positive_int, help="runs per figure")
    return parser


def _interrupted(error: BaseException) -> bool:
    if isinstance(error, KeyboardInterrupt):
        return True
    if isinstance(error, BaseExceptionGroup):
        rest = error.split(KeyboardInterrupt)[1]
        return rest is None or all(isinstance(e, trio.Cancelled) for e in _leaves(rest))
    return False


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "bench":
        return _bench(args)

    from . import _demo

    monitor: dict[str, Any] = {"plain": True} if getattr(args, "plain", False) else {}

    async def run() -> None:
        if args.which is None:
            await _demo.scheduler_demo(monitor=monitor)
            print()
            await _demo.agents_demo(monitor=monitor)
        elif args.which == "scheduler":
            await _demo.scheduler_demo(
                tasks=args.tasks,
                workers=args.workers,
                fail_rate=args.fail_rate,
                seed=args.seed,
                monitor=monitor,
            )
        else:
            await _demo.agents_demo(
                tasks=args.tasks,
                agents=args.agents,
                hang_agent=args.hang_agent,
                crash_agent=args.crash_agent,
                seed=args.seed,
                monitor=monitor,
            )

    try:
        trio.run(run)
    except BaseException as error:
        if _interrupted(error):
            print("trioflow: interrupted", file=sys.stderr)
            return 130
        raise
    return 0


def _bench(args: argparse.Namespace) -> int:
    try:
        from benchmarks import run as bench_run
    except ImportError:
        print(
            "trioflow: bench needs a source checkout (benchmarks/ is not installed): "
            "run it from the repository root",
            file=sys.stderr,
        )
        return 1
    argv = ["--quick"] if args.quick else []
    if args.repeat:
        argv += ["--repeat", str(args.repeat)]
    try:
        return bench_run.main(argv)
    except KeyboardInterrupt:
        print("trioflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
