"""Tables, goals and plots from a results file. No figure is typed by hand.

python -m benchmarks.report benchmarks/results/<file>.json   # regenerate the docs page
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

TRIOFLOW = "trioflow"
ASYNCIO = "asyncio"

_UNITS = {
    "tasks_per_s": "tasks/s",
    "us_per_link": "µs per link",
    "efficiency": "efficiency (lower bound / makespan)",
    "bytes_per_task": "bytes per queued task",
    "us_per_round_trip": "µs per round trip",
    "seconds": "seconds",
    "us_per_task": "µs per task",
}
_TITLES = {
    "overhead": "(a) Overhead: independent no-op tasks, 50 workers",
    "chain": "(b) Dependency latency: a chain of no-op tasks",
    "dag": "(c) Makespan: a layered DAG of sleeping tasks",
    "failures": "(d) Makespan: a failure-heavy mix with timeouts and retries",
    "failures_ideal": "(d) The same mix against a zero-overhead FIFO scheduler (simulated)",
    "memory": "(e) Memory per queued task",
    "agents": "(f) Agents: dispatch + result round trip, 4 no-op agents",
    "failover": "(f) Agents: failover, hung agent to task completed elsewhere",
    "scaling": "(g) Scaling: per-task cost as the work grows",
}


def _figures(results: dict[str, Any], workload: str) -> list[dict[str, Any]]:
    return [f for f in results["figures"] if f["workload"] == workload]


def _find(
    results: dict[str, Any], workload: str, contender: str, size: Any = None
) -> dict[str, Any] | None:
    for figure in _figures(results, workload):
        if figure["contender"] == contender and (size is None or figure["size"] == size):
            return figure
    return None


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    """Median of per-run ratios a/b (runs were interleaved, so run i of each is a pair)."""
    if a is None or b is None:
        return None
    pairs = list(zip(a["runs"], b["runs"], strict=False))
    return statistics.median(x / y for x, y in pairs) if pairs else None


def _sizes(results: dict[str, Any], workload: str) -> list[Any]:
    seen: list[Any] = []
    for figure in _figures(results, workload):
        if figure["size"] not in seen:
            seen.append(figure["size"])
    return seen


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals of the benchmark issue, each with its measured value and verdict."""
    out: list[dict[str, Any]] = []

    def add(
        goal: str,
        value: float | None,
        most: float | None = None,
        least: float | None = None,
        target: str | None = None,
    ) -> None:
        """A goal row: met when ``value`` is at least ``least`` / at most ``most``."""
        if value is None:
            met = None
        else:
            met = (least is None or value >= least) and (most is None or value <= most)
        shown = target or (f">= {least}" if least is not None else f"<= {most}")
        out.append({"goal": goal, "value": value, "target": shown, "met": met})

    def median(workload: str, size: Any = None) -> float | None:
        figure = _find(results, workload, TRIOFLOW, size)
        return figure["median"] if figure else None

    def ratio(workload: str, size: Any = None) -> float | None:
        return _ratio(
            _find(results, workload, TRIOFLOW, size), _find(results, workload, ASYNCIO, size)
        )

    overhead_size = max(_sizes(results, "overhead"), default=None)
    add(
        f"(a) tasks/s at {overhead_size}, trioflow / asyncio",
        ratio("overhead", overhead_size),
        least=1.0,
        target=">= 1.0 (aim 1.5)",
    )
    add("(b) time per chain link, trioflow / asyncio", ratio("chain"), most=1.0)
    for workload, label in (
        ("dag", "(c) layered DAG"),
        ("failures", "(d) failure mix"),
        ("failures_ideal", "(d) failure mix vs a zero-overhead FIFO scheduler,"),
    ):
        for size in _sizes(results, workload):
            add(f"{label} {size}: makespan efficiency", median(workload, size), least=0.95)
    add("(e) bytes per queued task", median("memory"), most=1024)
    add("(f) agent round trip, trioflow / asyncio", ratio("agents"), most=1.0)
    failover = _find(results, "failover", TRIOFLOW)
    if failover:
        add(
            "(f) failover seconds (bound: timeout + interval)",
            failover["median"],
            most=failover["bound_s"],
        )
    sizes = _sizes(results, "scaling")
    if sizes:
        base = 10_000 if 10_000 in sizes else sizes[0]
        top = sizes[-1]
        low, high = median("scaling", base), median("scaling", top)
        add(
            f"(g) per-task cost at {top} / at {base}",
            high / low if low and high else None,
            most=1.5,
        )
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def goals_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| goal | measured | target | met |", "|---|---|---|---|"]
    for row in rows:
        verdict = {True: "yes", False: "**no**", None: "–"}[row["met"]]
        lines.append(f"| {row['goal']} | {_fmt(row['value'])} | {row['target']} | {verdict} |")
    return "\n".join(lines)


def tables(results: dict[str, Any]) -> str:
    parts = []
    for workload, title in _TITLES.items():
        figures = _figures(results, workload)
        if not figures:
            continue
        metric = figures[0]["metric"]
        parts.append(f"### {title}\n")
        parts.append(
            f"| size | contender | {_UNITS[metric]} (median) | min – max | vs asyncio (in-run) |"
        )
        parts.append("|---|---|---|---|---|")
        for size in _sizes(results, workload):
            baseline = _find(results, workload, ASYNCIO, size)
            for figure in _figures(results, workload):
                if figure["size"] != size:
                    continue
                ratio = _ratio(figure, baseline) if figure["contender"] != ASYNCIO else None
                shown_size = size
                if workload == "chain" and figure["contender"].startswith("seed"):
                    shown_size = f"{figure.get('seed_links')} (polls 100 ms per link)"
                parts.append(
                    f"| {shown_size} | {figure['contender']} | {_fmt(figure['median'])} | "
                    f"{_fmt(min(figure['runs']))} – {_fmt(max(figure['runs']))} | "
                    f"{'–' if ratio is None else f'{ratio:.2f}×'} |"
                )
        parts.append("")
    return "\n".join(parts)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    head = (
        f"Run of {results['date']} on `{m['host']}` ({m['platform']}, {m['cpus']} CPUs; "
        f"{versions}); {results['repeat']} run(s) per figure"
        f"{', quick sizes' if results['quick'] else ''}; took {results['seconds']} s."
    )
    return (
        f"{head}\n\n## Goals\n\n{goals_table(results['goals'])}\n\n## Figures\n\n{tables(results)}"
    )


def plots(results: dict[str, Any], directory: Path) -> list[Path]:
    """PNG plots (needs matplotlib, the ``bench`` extra); returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    written = []

    figures = _figures(results, "scaling")
    if figures:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for contender in dict.fromkeys(f["contender"] for f in figures):
            points = [(f["size"], f["median"]) for f in figures if f["contender"] == contender]
            ax.plot(*zip(*points, strict=True), marker="o", label=contender)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tasks")
        ax.set_ylabel("µs per task (median)")
        ax.set_title("Per-task cost as the work grows (lower is better)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        path = directory / "bench-scaling.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    groups = [
        (w, size) for w in ("dag", "failures", "failures_ideal") for size in _sizes(results, w)
    ]
    if groups:
        contenders = list(
            dict.fromkeys(f["contender"] for w, _ in groups for f in _figures(results, w))
        )
        fig, ax = plt.subplots(figsize=(8, 4.5))
        width = 0.8 / len(contenders)
        for i, contender in enumerate(contenders):
            values = [
                (_find(results, w, contender, size) or {"median": 0})["median"]
                for w, size in groups
            ]
            positions = [j + i * width for j in range(len(groups))]
            ax.bar(positions, values, width, label=contender)
        ax.set_xticks([j + width * (len(contenders) - 1) / 2 for j in range(len(groups))])
        ax.set_xticklabels([f"{w}\n{size}" for w, size in groups], fontsize=8)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("lower bound / makespan")
        ax.set_title("Makespan efficiency (higher is better; 1.0 is perfect)")
        ax.legend(fontsize=8, loc="lower right")
        path = directory / "bench-efficiency.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


_INTRO = """\
# Benchmarks: trioflow against asyncio

This page is generated by `python -m benchmarks.run` (or `python -m benchmarks.report FILE`)
from `{source}`; no figure on it is typed by hand. Run the suite on your own machine:

```bash
.venv/bin/pip install -e '.[bench]' && .venv/bin/python -m benchmarks.run
```

Contenders, all given the same workload in the same run:

* **trioflow**;
* **asyncio**: idiomatic asyncio, as an experienced developer writes it: a `TaskGroup`, a task
  and an `Event` per job, a `Semaphore`, a priority heap, `asyncio.timeout`
  (`benchmarks/contenders/asyncio_idiomatic.py`). Ratios are against this peer;
* **asyncio (tuned pool)**: trioflow's own design written for asyncio: a fixed pool of workers
  popping a heap, no task per job (`asyncio_workers.py`). It does far less bookkeeping than
  trioflow (no statuses, timestamps, events or stats), and shows what the design is worth on
  asyncio;
* **seed reference**: the chapter's reference solution as published, with one fix so it does
  not crash on its own test (`seed_reference.py` says which). It polls every 100 ms, so its
  chain figure uses a few links only;
* **asyncio + uvloop**, when uvloop is installed.

Method: every figure is the median of several runs; contenders take turns within each
repetition, and each "vs asyncio" ratio is the median of per-repetition ratios. Makespan
efficiency is a lower bound divided by the measured makespan: the bound is
max(critical path, total work / workers) for the DAG, and max(the longest task's own timeline,
busy time / workers) for the failure mix (a retry delay holds no worker). That failure-mix
bound assumes the scheduler knows in advance which tasks will time out, which no online
scheduler does; so the mix is also measured against a discrete-event simulation of a
zero-overhead scheduler with the same first-come-first-served policy
(`FailureMix.ideal_makespan` in `benchmarks/workloads.py`), which isolates the scheduler's
own overhead.

{body}
"""


def write_docs(results: dict[str, Any], source: Path, page: Path) -> None:
    images = plots(results, page.parent / "img")
    try:
        shown = source.resolve().relative_to(page.resolve().parent.parent)
    except ValueError:
        shown = source
    body = markdown(results)
    if images:
        body += "\n## Plots\n\n" + "\n\n".join(f"![{p.stem}](img/{p.name})" for p in images) + "\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(_INTRO.format(source=shown, body=body), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks.report RESULTS.json", file=sys.stderr)
        return 2
    source = Path(args[0])
    results = json.loads(source.read_text(encoding="utf-8"))
    page = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
    write_docs(results, source, page)
    print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
