"""Run the benchmark suite: trioflow against its trio and asyncio peers, same machine, same run.

    python -m benchmarks.run                    # the full suite (~10 minutes); updates the docs
    python -m benchmarks.run --quick            # tiny sizes, one run each: seconds
    python -m benchmarks.run --quick --out DIR  # ... and keep its results in DIR

Every figure is the median of several runs; contenders take turns within each repetition,
and every ratio is taken within the run (the median of per-repetition ratios). Results go to
``benchmarks/results/<date>-<host>.json`` (+ ``.md``); the full suite also regenerates
``docs/benchmarks.md`` and its plots from that file (``benchmarks/report.py``). A contender
whose optional library (anyio, aiometer, uvloop) is missing is skipped with a printed reason;
``--quick`` runs every other contender on every workload it can express, so that no
benchmark code rots unseen, and writes to a temporary directory unless given ``--out``.
The full suite ends with the benchmarks of agents over Redis (``benchmarks/over_redis.py``),
on a private ``redis-server`` of its own, skipped with the reason when there is none.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from . import report
from .workloads import FailureMix, LayeredDag

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# The scheduler contenders, in the order the tables show them: trioflow, what a trio user
# would write instead, the floor, the asyncio peers, the seed chapter's reference.
SCHEDULERS = [
    "trioflow_contender",
    "trio_nursery",
    "anyio_taskgroup",
    "aiometer_trio",
    "trio_floor",
    "asyncio_idiomatic",
    "asyncio_workers",
    "seed_reference",
]
WORKERS = 50

# Some contenders run up to a number of no-op jobs only, for the suite's time budget: those
# that start a task per job take minutes for 1M (and a parked trio task holds ~2 KB); the seed
# polls every 100 ms and rescans its whole queue per poll, quadratic past 10k.
LARGEST = {
    "seed_reference": (10_000, "polls and rescans its queue: quadratic"),
    "trio_nursery": (100_000, "a task per job: minutes per run beyond"),
    "anyio_taskgroup": (100_000, "a task per job: minutes per run beyond"),
    "aiometer_trio": (100_000, "a task per job: minutes per run beyond"),
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.contenders.{name}")


@contextlib.contextmanager
def _uvloop() -> Iterator[None]:
    import uvloop

    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(old)


class _Contender:
    """A contender module under one name: a variant's keyword arguments, optionally uvloop."""

    def __init__(
        self,
        module: ModuleType,
        name: str | None = None,
        kwargs: dict[str, Any] | None = None,
        uvloop: bool = False,
    ) -> None:
        self.module = module
        self.key = module.__name__.rsplit(".", 1)[-1]
        self.uvloop = uvloop
        self.kwargs = kwargs or {}
        self.name = name or module.NAME + (" + uvloop" if uvloop else "")

    def cannot(self, fn: str) -> str | None:
        """Why this contender does not run ``fn``, or None if it does."""
        reasons: dict[str, str] = getattr(self.module, "CANNOT", {})
        if fn in reasons:
            return reasons[fn]
        if not hasattr(self.module, fn):
            return "not written for this contender"
        return None

    def largest(self) -> int | None:
        return LARGEST[self.key][0] if self.key in LARGEST else None

    def call(self, fn: str, *args: Any) -> Any:
        gc.collect()
        if self.uvloop:
            with _uvloop():
                return getattr(self.module, fn)(*args, **self.kwargs)
        return getattr(self.module, fn)(*args, **self.kwargs)


# Libraries only some contenders need (the ``bench`` extra; the ``test`` extra has the first
# two): a contender whose library is missing is skipped, and the run says so. Any other import
# error (trioflow itself, say) fails the run.
OPTIONAL = ("anyio", "aiometer", "uvloop")


def contenders(log: Callable[[str], None]) -> tuple[list[_Contender], list[dict[str, str]]]:
    """Every scheduler contender whose library is installed, and why the others are not."""
    found: list[_Contender] = []
    skipped: list[dict[str, str]] = []
    for name in SCHEDULERS:
        try:
            module = _load(name)
        except ImportError as error:
            if error.name not in OPTIONAL:
                raise
            reason = f"{error.name} is not installed"
            log(f"skipped {name}: {reason}")
            skipped.append({"contender": name, "reason": reason})
            continue
        variants: dict[str, dict[str, Any]] = getattr(module, "VARIANTS", {})
        if variants:
            found += [_Contender(module, label, kwargs) for label, kwargs in variants.items()]
        else:
            found.append(_Contender(module))
        if name == "asyncio_idiomatic":
            if importlib.util.find_spec("uvloop") is None:
                log("skipped asyncio + uvloop: uvloop is not installed")
                skipped.append({"contender": "asyncio + uvloop", "reason": "uvloop not installed"})
            else:
                found.append(_Contender(module, uvloop=True))
    return found, skipped


class Suite:
    def __init__(self, quick: bool, repeat: int, log: Callable[[str], None]) -> None:
        self.quick = quick
        self.repeat = repeat
        self.log = log
        self.figures: list[dict[str, Any]] = []
        self.gaps: list[dict[str, Any]] = []
        self.contenders, self.skipped = contenders(log)

    def measure(
        self,
        workload: str,
        size: int | str,
        metric: str,
        runs: dict[str, list[float]],
        better: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        for contender, values in runs.items():
            figure = {
                "workload": workload,
                "size": size,
                "contender": contender,
                "metric": metric,
                "better": better,
                "runs": values,
                "median": statistics.median(values),
                **(extra or {}),
            }
            self.figures.append(figure)
            self.log(
                f"  {workload:<10} {size!s:>8} {contender:<30} {metric} {figure['median']:.4g}"
            )

    def gap(self, workload: str, size: int | str, contender: str, reason: str) -> None:
        """A figure a contender does not have, and why (shown in the tables, never faked)."""
        self.gaps.append(
            {"workload": workload, "size": size, "contender": contender, "reason": reason}
        )
        self.log(f"  {workload:<10} {size!s:>8} {contender:<30} not run: {reason}")

    def rounds(
        self,
        fn: str,
        args_for: Callable[[_Contender], tuple[Any, ...] | None],
        repeat: int,
        workload: str,
        size: int | str,
        among: list[_Contender] | None = None,
    ) -> dict[str, list[float]]:
        """``repeat`` rounds; in each, every contender that can run this workload at this size
        runs once (``args_for`` returns None for a size a contender skips)."""
        taking: list[tuple[_Contender, tuple[Any, ...]]] = []
        for contender in self.contenders if among is None else among:
            reason = contender.cannot(fn)
            args = None if reason else args_for(contender)
            if reason:
                self.gap(workload, size, contender.name, reason)
            elif args is None:
                largest, why = LARGEST.get(contender.key, (0, "not run at this size"))
                self.gap(workload, size, contender.name, f"run up to {largest:,} only ({why})")
            else:
                taking.append((contender, args))
        runs: dict[str, list[float]] = {}
        for _ in range(repeat):
            for contender, args in taking:
                runs.setdefault(contender.name, []).append(contender.call(fn, *args))
        return runs

    # -- workloads -----------------------------------------------------------------------------

    def scaling(self) -> None:
        """(a) and (g): ``n`` independent no-op tasks at 50 workers, from 1k tasks up. The
        runs at the (a) sizes give the tasks/s table too: one measurement, two views."""
        sizes = (500, 2_000) if self.quick else (1_000, 10_000, 100_000, 1_000_000)
        overhead = {sizes[-1]} if self.quick else {10_000, 100_000}
        self.log(f"(a)+(g) independent no-op tasks, {WORKERS} workers, per-task cost by size")
        for n in sizes:
            repeat = self.repeat if n < 1_000_000 else max(1, min(self.repeat, 3))

            def args(c: _Contender, n: int = n) -> tuple[int, int] | None:
                largest = c.largest()
                return None if largest is not None and n > largest else (n, WORKERS)

            runs = self.rounds("independent", args, repeat, "scaling", n)
            self.measure(
                "scaling",
                n,
                "us_per_task",
                {name: [t / n * 1e6 for t in values] for name, values in runs.items()},
                "lower",
            )
            if n in overhead:
                self.measure(
                    "overhead",
                    n,
                    "tasks_per_s",
                    {name: [n / t for t in values] for name, values in runs.items()},
                    "higher",
                )

    def chain(self) -> None:
        self.log("(b) dependency latency: a chain of no-op tasks")
        n = 500 if self.quick else 10_000
        seed_n = 3 if self.quick else 30  # the seed polls every 100 ms per link
        runs = self.rounds(
            "chain",
            lambda c: (seed_n if c.key == "seed_reference" else n,),
            self.repeat,
            "chain",
            n,
        )
        self.measure(
            "chain",
            n,
            "us_per_link",
            {
                name: [t / (seed_n if name.startswith("seed") else n) * 1e6 for t in values]
                for name, values in runs.items()
            },
            "lower",
            {"seed_links": seed_n},
        )

    # Makespans run at two task lengths. Timers have millisecond resolution (epoll) and a
    # round of wake-ups costs time, so with 10 ms tasks every contender, bare trio workers
    # included, loses several percent per round; 50 ms tasks show the scheduler's own share.

    def makespan_dag(self) -> None:
        dags = (
            [LayeredDag(layers=4, width=20, fan_in=2, duration=0.005, workers=10)]
            if self.quick
            else [
                LayeredDag(layers=10, width=100, fan_in=2, duration=duration, workers=WORKERS)
                for duration in (0.01, 0.05)
            ]
        )
        for dag in dags:
            self.log(f"(c) makespan: layered DAG {dag.layers}x{dag.width}, {dag.duration}s tasks")
            shape = dag.shape()
            size = f"{dag.layers}x{dag.width}, {dag.duration * 1000:g} ms"
            runs = self.rounds(
                "dag",
                lambda c, d=dag, s=shape: (s, d.duration, d.workers),
                self.repeat,
                "dag",
                size,
            )
            bound = dag.lower_bound()
            self.measure(
                "dag",
                size,
                "efficiency",
                {name: [bound / t for t in values] for name, values in runs.items()},
                "higher",
                {"lower_bound_s": bound},
            )

    def makespan_failures(self) -> None:
        mixes = (
            [FailureMix(60, 0.2, 0.1, duration=0.005, timeout=0.025, delay=0.01, workers=10)]
            if self.quick
            else [
                FailureMix(500, 0.2, 0.1, duration=d, timeout=5 * d, delay=2 * d, workers=WORKERS)
                for d in (0.01, 0.05)
            ]
        )
        for mix in mixes:
            self.log(f"(d) failure-heavy mix: {mix.tasks} tasks of {mix.duration}s")
            specs = mix.specs()
            size = f"{mix.tasks}, {mix.duration * 1000:g} ms"
            runs = self.rounds(
                "failure_mix",
                lambda c, m=mix, s=specs: (s, m.workers, m.timeout, m.delay),
                self.repeat,
                "failures",
                size,
            )
            efficiency = {}
            against_ideal = {}
            for name, values in runs.items():
                # The seed never retries a timeout, so it does less work: measure it against
                # the bound for the work it actually does.
                retries_timeouts = not name.startswith("seed")
                bound = mix.lower_bound(retries_timeouts)
                ideal = mix.ideal_makespan(retries_timeouts)
                efficiency[name] = [bound / t for t in values]
                against_ideal[name] = [ideal / t for t in values]
            self.measure(
                "failures",
                size,
                "efficiency",
                efficiency,
                "higher",
                {"lower_bound_s": mix.lower_bound()},
            )
            self.measure(
                "failures_ideal",
                size,
                "efficiency",
                against_ideal,
                "higher",
                {"ideal_s": mix.ideal_makespan()},
            )

    def memory(self) -> None:
        n = 2_000 if self.quick else 100_000
        self.log(f"(e) memory per queued task ({n} queued)")
        runs = self.rounds("queued_memory", lambda c: (n,), 1, "memory", n)
        self.measure("memory", n, "bytes_per_task", runs, "lower")

    def agents(self) -> None:
        trio_agents, asyncio_agents = _load("agents_trioflow"), _load("agents_asyncio")
        coordinators = [
            _Contender(trio_agents),
            _Contender(trio_agents, f"{trio_agents.NAME} + 1 subscriber", {"subscriber": True}),
            _Contender(asyncio_agents),
        ]
        if importlib.util.find_spec("uvloop") is not None:
            coordinators.append(_Contender(asyncio_agents, uvloop=True))
        for n in (2_000,) if self.quick else (20_000, 200_000):
            self.log(f"(f) agents: {n} no-op round trips over 4 agents")
            runs = self.rounds(
                "round_trips", lambda c, n=n: (n, 4), self.repeat, "agents", n, coordinators
            )
            self.measure(
                "agents",
                n,
                "us_per_round_trip",
                {name: [t / n * 1e6 for t in values] for name, values in runs.items()},
                "lower",
            )
        self.log("(f) agents: failover, an agent hangs mid-task")
        failovers = [trio_agents.failover(0.05, 0.15) for _ in range(self.repeat)]
        bound = failovers[0][1]
        self.measure(
            "failover",
            "0.05/0.15",
            "seconds",
            {trio_agents.NAME: [f for f, _ in failovers]},
            "lower",
            {"bound_s": bound},
        )

    def bulk(self) -> None:
        """(h) ``sched.map(fn, items)`` per item against the bare trio floor, measured only
        once the scheduler has a ``map`` (SPEC section 5); "not measured" until then."""
        n = 2_000 if self.quick else 100_000
        self.log(f"(h) bulk: sched.map over {n} no-op items, {WORKERS} workers")
        trioflow = next((c for c in self.contenders if c.key == "trioflow_contender"), None)
        if trioflow is None or not trioflow.call("has_map"):
            self.gap("bulk", n, "trioflow sched.map", "the scheduler has no map() yet")
            return
        among = [_Contender(trioflow.module, "trioflow sched.map")]
        among += [c for c in self.contenders if c.key == "trio_floor"]
        runs = self.rounds("bulk_map", lambda c: (n, WORKERS), self.repeat, "bulk", n, among)
        self.measure(
            "bulk",
            n,
            "us_per_item",
            {name: [t / n * 1e6 for t in values] for name, values in runs.items()},
            "lower",
        )

    def run(self) -> None:
        for step in (
            self.scaling,
            self.chain,
            self.makespan_dag,
            self.makespan_failures,
            self.memory,
            self.agents,
            self.bulk,
        ):
            step()


def machine() -> dict[str, Any]:
    import trio

    versions = {"python": platform.python_version(), "trio": trio.__version__}
    for name in ("anyio", "aiometer", "uvloop"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def output_directory(quick: bool, out: Path | None) -> Path:
    """Where results go: ``out`` if given; else benchmarks/results/ for the full suite, and a
    fresh temporary directory for ``--quick`` (CI runs it: it must not touch tracked files)."""
    if out is not None:
        return out
    return Path(tempfile.mkdtemp(prefix="trioflow-bench-")) if quick else RESULTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each")
    parser.add_argument("--repeat", type=int, help="runs per figure (default 5; quick: 1)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory the results go to (default: benchmarks/results/; with --quick, a "
        "temporary directory, so a quick run never touches tracked files)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="regenerate this docs page and its plots (default: the full "
        "suite updates docs/benchmarks.md; --quick updates nothing)",
    )
    parser.add_argument(
        "--soak",
        type=float,
        metavar="MINUTES",
        help="instead of timing anything, run the chaos scenarios for MINUTES "
        "(benchmarks/chaos.py) and fail on the first broken invariant",
    )
    args = parser.parse_args(argv)
    if args.soak is not None:
        from . import chaos

        runs = chaos.soak(args.soak)
        print(f"soak: {runs} runs, every invariant held")
        return 0
    repeat = args.repeat or (1 if args.quick else 5)
    if repeat < 1:
        parser.error("--repeat must be >= 1")
    out = output_directory(args.quick, args.out)

    started = time.perf_counter()
    suite = Suite(args.quick, repeat, lambda line: print(line, flush=True))
    suite.run()
    today = datetime.date.today().isoformat()
    results = {
        "date": today,
        "quick": args.quick,
        "repeat": repeat,
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
        "contenders": [c.name for c in suite.contenders],
        "skipped": suite.skipped,
        "figures": suite.figures,
        "gaps": suite.gaps,
    }
    results["goals"] = report.goals(results)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{today}-{results['machine']['host']}" + ("-quick" if args.quick else "")
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    (out / f"{stem}.md").write_text(report.markdown(results), encoding="utf-8")
    print(f"\nwrote {json_path} and {json_path.with_suffix('.md')}")
    docs = (
        args.docs
        if args.docs is not None
        else (None if args.quick else ROOT / "docs" / "benchmarks.md")
    )
    if docs is not None:
        report.write_docs(results, json_path, docs)
        print(f"wrote {docs}")
    print()
    print(report.goals_table(results["goals"]))
    if not args.quick:
        # Agents over Redis (a private redis-server when one is installed; skipped, saying
        # why, when there is none). Its quick form runs in the test suite, against a server.
        from . import over_redis

        print("\n== agents over Redis ==")
        over_redis.main(["--out", str(out)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
