"""The ``trioflow`` command.

    trioflow demo                      (both of the chapter's scenarios)
    trioflow demo scheduler [--tasks N] [--workers N] [--fail-rate F]
    trioflow demo agents [--tasks N] [--agents N] [--hang-agent | --no-hang-agent] [--crash-agent]
    trioflow demo machines --redis URL [--tasks N] [--namespace NS]
    trioflow worker --redis URL --agent module:Class [--agent ...] [--id ID] [--concurrency N]
                    [--namespace NS]

``trioflow worker`` (it needs the ``trioflow[redis]`` extra) serves agents to the coordinator
of a namespace until SIGINT or SIGTERM, then hands back its unfinished work and exits 0 (as it
does once every agent it serves has left by itself, with ``agent.disconnect()``).

Every demo also takes ``--plain``, ``--slow-after SECONDS`` and ``--seed N``.

Exit codes: 0 done, 1 an error, 2 bad usage, 130 interrupted (Ctrl-C), 141 the output was
closed before the end (a pipe to ``head``, say).

The benchmark suite is a repository tool, not part of the installed package: run it from a
source checkout with ``python -m benchmarks.run``.

**A closed output ends the run quietly.** When the reader of a pipe goes away, the next
write fails with ``BrokenPipeError`` (Python ignores ``SIGPIPE``, so the error is an
exception rather than a signal). The monitor raises it out of its block, which stops the
run through trio like any other error; here it becomes exit status 141, the 128 + SIGPIPE
a shell reports for a program killed by that signal, as ``yes | head`` gives. Standard
output is then pointed at ``/dev/null``, so that the interpreter's final flush of whatever
is still buffered does not fail again on the way out.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import trio

# The exit statuses, as the --help epilog and the README list them. An error that is not
# one of ours leaves as a traceback and Python's own status, 1.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE


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
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _slow_after(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _redis_url(text: str) -> str:
    """A Redis URL, checked as RedisTransport checks it, as a usage error."""
    from .agents.transport._redis import check_redis_url

    try:
        return check_redis_url(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trioflow",
        description="Structured-concurrency task scheduling and agents, on trio.",
        epilog="Exit codes: 0 done, 1 an error, 2 bad usage, 130 interrupted, "
        "141 output closed early (a pipe to head). "
        "The benchmarks run from a source checkout: python -m benchmarks.run",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the seed chapter's scenarios, watched live",
        description="Without a DEMO, run both scenarios with their defaults.",
    )
    which = demo.add_subparsers(dest="which", required=False, metavar="DEMO")
    view = _Parser(add_help=False)
    view.add_argument(
        "--plain", action="store_true", help="plain timestamped lines instead of the live view"
    )
    view.add_argument(
        "--slow-after",
        type=_slow_after,
        default=30.0,
        metavar="SECONDS",
        help="mark tasks running longer than this (30)",
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

    machines = which.add_parser(
        "machines",
        parents=[view],
        help="agents in two worker processes over Redis; one is killed mid-task",
    )
    machines.add_argument(
        "--redis", required=True, type=_redis_url, metavar="URL", help="redis://host:port"
    )
    machines.add_argument("--tasks", type=_positive_int, default=8, help="search tasks (8)")
    machines.add_argument("--namespace", help="Redis key prefix (default: a fresh one per run)")

    worker = commands.add_parser(
        "worker",
        help="serve agents to a coordinator through Redis (needs trioflow[redis])",
        description="Serve agents to the coordinator of a namespace, through Redis, until "
        "SIGINT or SIGTERM; then hand back the unfinished work and exit 0 (as once every "
        "agent has left by itself). The heartbeat settings come from the coordinator.",
    )
    worker.add_argument(
        "--redis", required=True, type=_redis_url, metavar="URL", help="redis://host:port/db"
    )
    worker.add_argument(
        "--agent",
        action="append",
        required=True,
        metavar="module:Class",
        help="an Agent class, made as Class(ID); repeatable",
    )
    worker.add_argument(
        "--id",
        metavar="ID",
        help="the agent's id (suffixed -1, -2... with several --agent); "
        "default: the host and process id",
    )
    worker.add_argument(
        "--concurrency", type=_positive_int, help="tasks each agent works on at once"
    )
    worker.add_argument(
        "--namespace", default="trioflow", help="the coordinator's namespace (trioflow)"
    )
    return parser


def _only(error: BaseException, kind: type[BaseException]) -> bool:
    """``error`` is a ``kind``, or a group of them beside nothing but ``Cancelled`` (the
    other tasks that the error cancelled on its way out)."""
    if isinstance(error, kind):
        return True
    if isinstance(error, BaseExceptionGroup):
        matched, rest = error.split(kind)
        return matched is not None and (
            rest is None or all(isinstance(e, trio.Cancelled) for e in _leaves(rest))
        )
    return False


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


def _has_redis_extra(command: str) -> bool:
    try:
        import coredis  # noqa: F401
    except ImportError:
        print(f"{command}: needs the redis extra: pip install 'trioflow[redis]'", file=sys.stderr)
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "worker":
        return _worker(args)
    if args.which == "machines" and not _has_redis_extra("trioflow demo machines"):
        return EXIT_USAGE

    from . import _demo

    monitor = _demo.MonitorOptions(
        plain=True if getattr(args, "plain", False) else None,
        slow_after=getattr(args, "slow_after", 30.0),
    )

    async def run() -> None:
        if args.which is None:
            await _demo.scheduler_demo(monitor=monitor)
            print()
            await _demo.agents_demo(monitor=monitor)
        elif args.which == "machines":
            from ._machines import machines_demo

            await machines_demo(
                args.redis,
                namespace=args.namespace,
                tasks=args.tasks,
                plain=monitor.plain,
                slow_after=monitor.slow_after,
            )
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
        # Whatever is still buffered goes now, so that a closed pipe is noticed here
        # rather than by the interpreter on its way out.
        sys.stdout.flush()
    except BaseException as error:
        if args.which == "machines":
            from ._machines import RedisUnreachable

            if isinstance(error, RedisUnreachable):
                print(f"trioflow demo machines: {error}", file=sys.stderr)
                return EXIT_ERROR
        if _only(error, BrokenPipeError):
            _discard_stdout()
            return EXIT_OUTPUT_CLOSED
        if _only(error, KeyboardInterrupt):
            print("trioflow: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        raise
    return EXIT_OK


def _worker(args: argparse.Namespace) -> int:
    """``trioflow worker``: 0 once stopped by SIGINT or SIGTERM (or every agent has left),
    1 on an error, 2 on bad usage (or without the redis extra)."""
    if not _has_redis_extra("trioflow worker"):
        return EXIT_USAGE
    from ._machines import WorkerUsageError, load_agents, run_worker

    try:
        agents = load_agents(args.agent, args.id, args.concurrency)
    except WorkerUsageError as error:
        print(f"trioflow worker: {error}", file=sys.stderr)
        return EXIT_USAGE

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # coredis logs each of its own reconnection attempts at INFO, several a second while Redis
    # is down; the worker's "Redis unreachable ...; retrying" warning says it once per try.
    logging.getLogger("coredis").setLevel(logging.WARNING)
    try:
        trio.run(lambda: run_worker(args.redis, agents, namespace=args.namespace, write=say))
    except Exception as error:  # refused registration, Redis unreachable...
        # The error itself, not the "Exceptions from Trio nursery" group around it.
        leaves = (
            [e for e in _leaves(error) if not isinstance(e, trio.Cancelled)]
            if isinstance(error, BaseExceptionGroup)
            else [error]
        )
        shown = leaves[0] if len(leaves) == 1 else error
        say(f"trioflow worker: {type(shown).__name__}: {shown}")
        return EXIT_ERROR
    return EXIT_OK


def _discard_stdout() -> None:
    """Point standard output at /dev/null: its reader is gone, and the interpreter's last
    flush of the buffer would otherwise fail again and print a warning."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
