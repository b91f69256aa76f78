"""Run the benchmark suite: trioflow against asyncio, same machine, same run.

    python -m benchmarks.run            # the full suite (a few minutes); updates the docs
    python -m benchmarks.run --quick    # small sizes, one run each: seconds

Every figure is the median of several runs; contenders take turns within each repetition,
and each trioflow/asyncio ratio is taken within the run. Results go to
``benchmarks/results/<date>-<host>.json`` (+ ``.md``); the full suite also regenerates
``docs/benchmarks.md`` and its plots from that file (``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import importlib
import json
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from . import report
from .workloads import FailureMix, LayeredDag

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

SCHEDULERS = ["trioflow_contender", "asyncio_idiomatic", "asyncio_workers", "seed_reference"]


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
    """A contender module, optionally run under uvloop."""

    def __init__(self, module: ModuleType, uvloop: bool = False) -> None:
        self.module = module
        self.uvloop = uvloop
        self.name = module.NAME + (" + uvloop" if uvloop else "")

    def call(self, fn: str, *args: Any) -> Any:
        gc.collect()
        if self.uvloop:
            with _uvloop():
                return getattr(self.module, fn)(*args)
        return getattr(self.module, fn)(*args)


def _contenders() -> list[_Contender]:
    found = [_Contender(_load(name)) for name in SCHEDULERS]
    try:
        import uvloop  # noqa: F401
    except ImportError:
        pass
    else:
        found.append(_Contender(_load("asyncio_idiomatic"), uvloop=True))
    return found


class Suite:
    def __init__(self, quick: bool, repeat: int, log: Callable[[str], None]) -> None:
        self.quick = quick
        self.repeat = repeat
        self.log = log
        self.figures: list[dict[str, Any]] = []
        self.contenders = _contenders()

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
                f"  {workload:<10} {size!s:>8} {contender:<26} {metric} {figure['median']:.4g}"
            )

    def rounds(
        self, fn: str, args_for: Callable[[_Contender], tuple | None], repeat: int
    ) -> dict[str, list[float]]:
        """``repeat`` rounds; in each, every contender (that takes this size) runs once."""
        runs: dict[str, list[float]] = {}
        for _ in range(repeat):
            for contender in self.contenders:
                args = args_for(contender)
                if args is not None:
                    runs.setdefault(contender.name, []).append(contender.call(fn, *args))
        return runs

    # -- workloads -----------------------------------------------------------------------------

    def overhead(self) -> None:
        self.log("(a) overhead: independent no-op tasks, 50 workers")
        for n in (2_000,) if self.quick else (10_000, 100_000):
            runs = self.rounds(
                "independent",
                lambda c, n=n: None if _is_seed(c) and n > 10_000 else (n, 50),
                self.repeat,
            )
            self.measure(
                "overhead",
                n,
                "tasks_per_s",
                {name: [n / t for t in values] for name, values in runs.items()},
                "higher",
            )

    def chain(self) -> None:
        self.log("(b) dependency latency: a chain of no-op tasks")
        n = 1_000 if self.quick else 10_000
        seed_n = 5 if self.quick else 30  # the seed polls every 100 ms per link
        runs = self.rounds("chain", lambda c: (seed_n if _is_seed(c) else n,), self.repeat)
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
    # round of wake-ups costs time, so with 10 ms tasks every contender, bare trio nurseries
    # included, loses several percent per round; 50 ms tasks show the scheduler's own share.

    def makespan_dag(self) -> None:
        dags = (
            [LayeredDag(layers=4, width=20, fan_in=2, duration=0.005, workers=10)]
            if self.quick
            else [
                LayeredDag(layers=10, width=100, fan_in=2, duration=duration, workers=50)
                for duration in (0.01, 0.05)
            ]
        )
        for dag in dags:
            self.log(f"(c) makespan: layered DAG {dag.layers}x{dag.width}, {dag.duration}s tasks")
            shape = dag.shape()
            runs = self.rounds(
                "dag", lambda c, d=dag, s=shape: (s, d.duration, d.workers), self.repeat
            )
            bound = dag.lower_bound()
            self.measure(
                "dag",
                f"{dag.layers}x{dag.width}, {dag.duration * 1000:g} ms",
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
                FailureMix(500, 0.2, 0.1, duration=d, timeout=5 * d, delay=2 * d, workers=50)
                for d in (0.01, 0.05)
            ]
        )
        for mix in mixes:
            self.log(f"(d) failure-heavy mix: {mix.tasks} tasks of {mix.duration}s")
            specs = mix.specs()
            runs = self.rounds(
                "failure_mix",
                lambda c, m=mix, s=specs: (s, m.workers, m.timeout, m.delay),
                self.repeat,
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
            size = f"{mix.tasks}, {mix.duration * 1000:g} ms"
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
        n = 5_000 if self.quick else 100_000
        self.log(f"(e) memory per queued task ({n} queued)")
        runs = self.rounds("queued_memory", lambda c: (n,), 1)
        self.measure("memory", n, "bytes_per_task", runs, "lower")

    def agents(self) -> None:
        trio_agents, asyncio_agents = _load("agents_trioflow"), _load("agents_asyncio")
        n = 5_000 if self.quick else 100_000
        self.log(f"(f) agents: {n} no-op round trips over 4 agents; failover time")
        runs: dict[str, list[float]] = {}
        for _ in range(self.repeat):
            for module in (trio_agents, asyncio_agents):
                gc.collect()
                runs.setdefault(module.NAME, []).append(module.round_trips(n, 4) / n * 1e6)
        self.measure("agents", n, "us_per_round_trip", runs, "lower")
        failovers = [trio_agents.failover(0.05, 0.15) for _ in range(self.repeat)]
        bound = failovers[0][1]
        self.measure(
            "failover",
            "0.05/0.15",
            "seconds",
            {"trioflow": [f for f, _ in failovers]},
            "lower",
            {"bound_s": bound},
        )

    def scaling(self) -> None:
        sizes = (1_000, 5_000) if self.quick else (1_000, 10_000, 100_000, 1_000_000)
        self.log("(g) scaling: per-task cost from 1k tasks up")
        for n in sizes:
            repeat = self.repeat if n < 1_000_000 else max(1, min(self.repeat, 3))
            runs = self.rounds(
                "independent",
                lambda c, n=n: None if _is_seed(c) and n > 10_000 else (n, 50),
                repeat,
            )
            self.measure(
                "scaling",
                n,
                "us_per_task",
                {name: [t / n * 1e6 for t in values] for name, values in runs.items()},
                "lower",
            )

    def run(self) -> None:
        for step in (
            self.overhead,
            self.chain,
            self.makespan_dag,
            self.makespan_failures,
            self.memory,
            self.agents,
            self.scaling,
        ):
            step()


def _is_seed(contender: _Contender) -> bool:
    return contender.module.__name__.endswith("seed_reference")


def machine() -> dict[str, Any]:
    import trio

    versions = {"python": platform.python_version(), "trio": trio.__version__}
    with contextlib.suppress(ImportError):
        import uvloop

        versions["uvloop"] = uvloop.__version__
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each")
    parser.add_argument("--repeat", type=int, help="runs per figure (default 5; quick: 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="regenerate this docs page and its plots (default: the full "
        "suite updates docs/benchmarks.md; --quick updates nothing)",
    )
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 5)
    if repeat < 1:
        parser.error("--repeat must be >= 1")

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
        "figures": suite.figures,
    }
    results["goals"] = report.goals(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{today}-{results['machine']['host']}" + ("-quick" if args.quick else "")
    json_path = args.out / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    (args.out / f"{stem}.md").write_text(report.markdown(results), encoding="utf-8")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
