"""Tables, goals and plots from a results file. No figure is typed by hand.

python -m benchmarks.report benchmarks/results/<file>.json   # regenerate the docs page and
                                                              # the results file's own .md

Every ratio here is the median of per-repetition ratios: contenders took turns within each
repetition, so run *i* of one and run *i* of another ran side by side.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Contender names, as the contender modules spell them (``NAME`` / ``VARIANTS``).
TRIOFLOW = "trioflow"
ASYNCIO = "asyncio"
UVLOOP = "asyncio + uvloop"
TUNED = "asyncio (tuned pool)"
FLOOR = "trio floor (bare workers)"
TRIO_PEERS = (
    "trio (nursery + limiter)",
    "anyio (task group + limiter)",
    "aiometer run_all",
    "aiometer amap",
)
SUBSCRIBED = "trioflow + 1 subscriber"
MAP = "trioflow sched.map"

_UNITS = {
    "tasks_per_s": "tasks/s",
    "us_per_link": "µs per link",
    "efficiency": "efficiency (lower bound / makespan)",
    "bytes_per_task": "bytes per queued task",
    "us_per_round_trip": "µs per task",
    "seconds": "seconds",
    "us_per_task": "µs per task",
    "us_per_item": "µs per item",
}
_TITLES = {
    "overhead": "(a) Overhead: independent no-op tasks, 50 workers",
    "chain": "(b) Dependency latency: a chain of no-op tasks",
    "dag": "(c) Makespan: a layered DAG of sleeping tasks",
    "failures": "(d) Makespan: a failure-heavy mix with timeouts and retries",
    "failures_ideal": "(d) The same mix against a zero-overhead FIFO scheduler (simulated)",
    "memory": "(e) Memory per queued task",
    "agents": "(f) Agents: `run_all` of no-op tasks over 4 no-op agents",
    "failover": "(f) Agents: failover, hung agent to task completed elsewhere",
    "scaling": "(g) Scaling: per-task cost as the work grows",
    "bulk": "(h) Bulk: `sched.map(fn, items)` against the floor's map",
}
_WORDS = {
    "scaling": "no-op tasks",
    "chain": "chain",
    "dag": "layered DAG",
    "failures": "failure mix",
    "memory": "memory per queued task",
}
# What the "vs" column of each figure table compares with.
_BASELINES = {"bulk": FLOOR}


# -- finding figures ---------------------------------------------------------------------------


def _figures(results: dict[str, Any], workload: str) -> list[dict[str, Any]]:
    return [f for f in results["figures"] if f["workload"] == workload]


def _find(
    results: dict[str, Any], workload: str, contender: str, size: Any = None
) -> dict[str, Any] | None:
    for figure in _figures(results, workload):
        if figure["contender"] == contender and (size is None or figure["size"] == size):
            return figure
    return None


def _gap(results: dict[str, Any], workload: str, contender: str, size: Any = None) -> str | None:
    """Why ``contender`` has no figure here (it cannot express the workload, its library is
    missing, a size beyond its budget), or None."""
    for gap in results.get("gaps", []):
        if (
            gap["workload"] == workload
            and gap["contender"] == contender
            and (size is None or gap["size"] == size)
        ):
            return str(gap["reason"])
    return None


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    """Median of per-run ratios a/b (runs were interleaved, so run i of each is a pair)."""
    if a is None or b is None:
        return None
    pairs = list(zip(a["runs"], b["runs"], strict=False))
    return statistics.median(x / y for x, y in pairs) if pairs else None


def _ratio_to_best(
    a: dict[str, Any] | None, others: Iterable[dict[str, Any] | None]
) -> float | None:
    """Median over runs of a / (the lowest of ``others`` in that same run)."""
    present = [o for o in others if o is not None]
    if a is None or not present:
        return None
    runs = list(zip(a["runs"], *(o["runs"] for o in present), strict=False))
    return statistics.median(run[0] / min(run[1:]) for run in runs) if runs else None


def _sizes(results: dict[str, Any], workload: str) -> list[Any]:
    seen: list[Any] = []
    for entry in _figures(results, workload) + [
        g for g in results.get("gaps", []) if g["workload"] == workload
    ]:
        if entry["size"] not in seen:
            seen.append(entry["size"])
    return seen


# -- goals -------------------------------------------------------------------------------------


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals of the speed issue, each with its value measured in this run and a verdict
    (``met`` None: nothing to judge, either a figure only reported or one not measured)."""
    out: list[dict[str, Any]] = []

    def add(
        goal: str,
        value: float | None,
        most: float | None = None,
        least: float | None = None,
        target: str | None = None,
        note: str | None = None,
    ) -> None:
        """A goal row: met when ``value`` is at least ``least`` / at most ``most``."""
        if value is None or (most is None and least is None):
            met = None
        else:
            met = (least is None or value >= least) and (most is None or value <= most)
        shown = target or (f">= {least}" if least is not None else f"<= {most}")
        out.append({"goal": goal, "value": value, "target": shown, "met": met, "note": note})

    def find(workload: str, contender: str = TRIOFLOW, size: Any = None) -> dict[str, Any] | None:
        return _find(results, workload, contender, size)

    def versus_asyncio(workload: str, size: Any = None) -> tuple[float | None, str]:
        """trioflow / the faster asyncio peer (asyncio or asyncio + uvloop), per run."""
        peers = [find(workload, name, size) for name in (ASYNCIO, UVLOOP)]
        present = [p for p in peers if p is not None]
        faster = min(present, key=lambda p: p["median"])["contender"] if present else ASYNCIO
        return _ratio_to_best(find(workload, TRIOFLOW, size), peers), faster

    overhead_sizes = [s for s in _sizes(results, "overhead") if isinstance(s, int)]
    if overhead_sizes:
        size = max(overhead_sizes)
        value, faster = versus_asyncio("scaling", size)
        add(f"(a) time per task at {size:,}, trioflow / {faster}", value, most=0.4)
    value, faster = versus_asyncio("chain")
    add(f"(b) time per chain link, trioflow / {faster}", value, most=0.3)
    # Where that goal sits: 0.3x the faster asyncio peer, against the bare trio floor's
    # chain (no library can beat the floor; near 1 the goal asks for none of the bookkeeping).
    floor_per_asyncio = _ratio_to_best(
        find("chain", FLOOR), [find("chain", name) for name in (ASYNCIO, UVLOOP)]
    )
    if floor_per_asyncio:
        add(
            "(b) the goal's time per link (0.3x the faster asyncio) / the bare trio floor's",
            0.3 / floor_per_asyncio,
            target="reported",
        )
    for size in _sizes(results, "dag"):
        add(
            f"(c) layered DAG {size}: efficiency, trioflow / tuned asyncio pool",
            _ratio(find("dag", TRIOFLOW, size), find("dag", TUNED, size)),
            least=1.0,
        )
        floor = find("dag", FLOOR, size)
        add(
            f"(c) layered DAG {size}: bare trio pool's efficiency (what trio's timers allow)",
            floor["median"] if floor else None,
            target="reported",
        )
    for size in _sizes(results, "failures"):
        add(
            f"(d) failure mix {size}: efficiency, trioflow / tuned asyncio pool",
            _ratio(find("failures", TRIOFLOW, size), find("failures", TUNED, size)),
            least=1.0,
        )
    memory = find("memory")
    add("(e) bytes per queued task", memory["median"] if memory else None, most=250)
    for size in _sizes(results, "agents"):
        add(
            f"(f) agents, {size:,} tasks: trioflow / asyncio coordinator",
            _ratio(find("agents", TRIOFLOW, size), find("agents", ASYNCIO, size)),
            most=0.5,
        )
        add(
            f"(f) agents, {size:,} tasks: with one subscriber / without",
            _ratio(find("agents", SUBSCRIBED, size), find("agents", TRIOFLOW, size)),
            most=1.3,
        )
    failover = find("failover")
    if failover:
        add(
            "(f) failover seconds (bound: timeout + interval)",
            failover["median"],
            most=failover["bound_s"],
        )
    sizes = [s for s in _sizes(results, "scaling") if find("scaling", TRIOFLOW, s)]
    if sizes:
        base = 10_000 if 10_000 in sizes else sizes[0]
        top = sizes[-1]
        low, high = find("scaling", TRIOFLOW, base), find("scaling", TRIOFLOW, top)
        add(
            f"(g) per-task cost at {top:,} / at {base:,}",
            high["median"] / low["median"] if low and high else None,
            most=1.2,
        )
    for size in _sizes(results, "bulk") or [None]:
        gap = _gap(results, "bulk", MAP, size)
        add(
            "(h) sched.map per item / the bare trio floor's",
            _ratio(find("bulk", MAP, size), find("bulk", FLOOR, size)),
            most=4,
            note=f"not measured: {gap}" if gap else "not measured",
        )
    return out


def redis_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals of the issue on agents over Redis (``benchmarks/over_redis.py``), measured
    in one run: throughput at 4 worker processes against the floor (plain coredis, same run)
    and against streaq, growth with workers, failover within heartbeat timeout + interval.
    """
    out: list[dict[str, Any]] = []
    figures = results.get("figures", [])

    def median(contender: str, workers: int, key: str = "jobs_per_s") -> float | None:
        for figure in figures:
            if figure["contender"] == contender and figure["workers"] == workers:
                values = figure.get(key) or []
                return statistics.median(values) if values else None
        return None

    def add(goal: str, value: float | None, least: float | None = None, most: float | None = None,
            target: str | None = None) -> None:  # fmt: skip
        if value is None or (least is None and most is None):
            met = None
        else:
            met = (least is None or value >= least) and (most is None or value <= most)
        shown = target or (f">= {least}" if least is not None else f"<= {most}")
        out.append({"goal": goal, "value": value, "target": shown, "met": met, "note": None})

    top = max((f["workers"] for f in figures if f["contender"] == "trioflow"), default=None)
    if top is None:
        return out
    ours, floor, peer = median("trioflow", top), median("floor", top), median("streaq", top)
    add(f"jobs/s over Redis at {top} workers, trioflow / the floor", _ratio_values(ours, floor),
        least=0.5)  # fmt: skip
    add(f"jobs/s over Redis at {top} workers, trioflow / streaq", _ratio_values(ours, peer),
        least=10)  # fmt: skip
    one = median("trioflow", 1)
    add(
        f"jobs/s over Redis, {top} workers / 1 worker (grows with workers)",
        _ratio_values(ours, one),
        least=1.0,
        target="> 1 (cores permitting)",
    )
    heartbeat = results.get("heartbeat", {"interval": 0.2, "timeout": 1.0})
    bound = heartbeat["timeout"] + heartbeat["interval"]
    for workers in sorted({f["workers"] for f in figures if f["contender"] == "failover"}):
        add(
            f"failover seconds, {workers} workers (bound: timeout + interval)",
            median("failover", workers, "seconds"),
            most=bound,
        )
    for workers in sorted({f["workers"] for f in figures if f["contender"] == "trioflow"}):
        add(f"jobs/s: trioflow, {workers} worker(s)", median("trioflow", workers),
            target="reported")  # fmt: skip
        add(f"jobs/s: floor, {workers} worker(s)", median("floor", workers), target="reported")
        add(f"jobs/s: streaq, {workers} worker(s)", median("streaq", workers), target="reported")
    return out


def _ratio_values(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:#.3g}"


def goals_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| goal | measured | target | met |", "|---|---|---|---|"]
    for row in rows:
        verdict = {True: "yes", False: "**no**", None: "–"}[row["met"]]
        shown = _fmt(row["value"]) if row["value"] is not None else (row.get("note") or "–")
        lines.append(f"| {row['goal']} | {shown} | {row['target']} | {verdict} |")
    return "\n".join(lines)


# -- the two questions the page leads with ---------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _times(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2g}×" if ratio < 10 else f"{ratio:.0f}×"


def faster_than_trio(results: dict[str, Any]) -> str:
    """How much faster than what I'd write in trio? trioflow beside each trio-side peer."""
    overhead = [s for s in _sizes(results, "overhead") if isinstance(s, int)]
    if not overhead:
        return "_No overhead figures in this run._"
    size = max(overhead)
    dag = (_sizes(results, "dag") or [None])[0]
    failures = (_sizes(results, "failures") or [None])[0]
    # (workload, size, heading, with a "faster by" column), for the workloads this run has
    columns = [
        (w, at, heading, speedup)
        for w, at, heading, speedup in (
            ("scaling", size, f"µs per task, {size:,} no-op tasks", True),
            ("chain", None, "µs per chain link", True),
            ("dag", dag, f"DAG efficiency, {dag}", False),
            ("failures", failures, f"failure-mix efficiency, {failures}", False),
            ("memory", None, "bytes per queued task", False),
        )
        if _figures(results, w)
    ]
    header = ["contender"]
    for _, _, heading, speedup in columns:
        header += [heading, "trioflow faster by"] if speedup else [heading]
    notes: dict[str, int] = {}
    rows = []
    for name in (TRIOFLOW, *TRIO_PEERS):
        if name not in results.get("contenders", [name]):
            continue
        cells = [f"**{name}**" if name == TRIOFLOW else name]
        for workload, at, _, speedup in columns:
            figure = _find(results, workload, name, at)
            if figure is None:
                reason = _gap(results, workload, name, at) or "not run"
                mark = notes.setdefault(f"{_WORDS[workload]}: {reason}", len(notes) + 1)
                cells.append(f"n/a ({mark})")
            else:
                cells.append(_fmt(figure["median"]))
            if speedup:
                ours = _find(results, workload, TRIOFLOW, at)
                mine = name == TRIOFLOW or figure is None
                cells.append("–" if mine else _times(_ratio(figure, ours)))
        rows.append(cells)
    text = _table(header, rows)
    if notes:
        text += "\n\n" + "\n".join(f"* ({n}) {note}" for note, n in notes.items())
    return text


def close_to_floor(results: dict[str, Any]) -> str:
    """How close to the floor? trioflow against bare trio workers on the same work."""
    rows = []

    def row(label: str, workload: str, size: Any, kind: str, ours: str = TRIOFLOW) -> None:
        floor = _find(results, workload, FLOOR, size)
        mine = _find(results, workload, ours, size)
        if floor is None and mine is None:
            reason = _gap(results, workload, ours, size) or _gap(results, workload, FLOOR, size)
            if reason:
                rows.append([label, "–", "–", f"not measured: {reason}"])
            return
        ratio = _ratio(mine, floor)
        shown = "–" if ratio is None else f"{ratio:.2f}× the floor's {kind}"
        rows.append([label, _fmt(floor and floor["median"]), _fmt(mine and mine["median"]), shown])

    for size in _sizes(results, "scaling"):
        if isinstance(size, int) and (size >= 10_000 or results.get("quick")):
            row(f"(a)/(g) µs per no-op task, {size:,} tasks", "scaling", size, "time")
    row("(b) µs per chain link", "chain", None, "time")
    for size in _sizes(results, "dag"):
        row(f"(c) layered DAG {size}: makespan efficiency", "dag", size, "efficiency")
    for size in _sizes(results, "failures"):
        row(f"(d) failure mix {size}: makespan efficiency", "failures", size, "efficiency")
    row("(e) bytes per queued task", "memory", None, "bytes")
    for size in _sizes(results, "bulk"):
        row(f"(h) µs per item, `sched.map` over {size:,} items", "bulk", size, "time", MAP)
    if not rows:
        return "_No floor figures in this run._"
    return _table(["measure", "bare trio floor", "trioflow", "trioflow vs floor"], rows)


# -- figure tables -----------------------------------------------------------------------------


def tables(results: dict[str, Any]) -> str:
    parts = []
    for workload, title in _TITLES.items():
        figures = _figures(results, workload)
        if not figures and not _sizes(results, workload):
            continue
        metric = figures[0]["metric"] if figures else None
        baseline_name = _BASELINES.get(workload, ASYNCIO)
        parts.append(f"### {title}\n")
        parts.append(
            f"| size | contender | {_UNITS.get(metric or '', 'value')} (median) | min – max "
            f"| vs {baseline_name} (in-run) |"
        )
        parts.append("|---|---|---|---|---|")
        for size in _sizes(results, workload):
            baseline = _find(results, workload, baseline_name, size)
            for figure in _figures(results, workload):
                if figure["size"] != size:
                    continue
                ratio = _ratio(figure, baseline) if figure["contender"] != baseline_name else None
                shown_size = size
                if workload == "chain" and figure["contender"].startswith("seed"):
                    shown_size = f"{figure.get('seed_links')} (polls 100 ms per link)"
                parts.append(
                    f"| {shown_size} | {figure['contender']} | {_fmt(figure['median'])} | "
                    f"{_fmt(min(figure['runs']))} – {_fmt(max(figure['runs']))} | "
                    f"{'–' if ratio is None else f'{ratio:.2f}×'} |"
                )
            for gap in results.get("gaps", []):
                if gap["workload"] == workload and gap["size"] == size:
                    parts.append(
                        f"| {size} | {gap['contender']} | not run: {gap['reason']} | – | – |"
                    )
        parts.append("")
    return "\n".join(parts)


def _head(results: dict[str, Any]) -> str:
    m = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    skipped = "".join(
        f"; skipped {s['contender']}: {s['reason']}" for s in results.get("skipped", [])
    )
    return (
        f"Run of {results['date']} on `{m['host']}` ({m['platform']}, {m['cpus']} CPUs; "
        f"{versions}); {results['repeat']} run(s) per figure"
        f"{', quick sizes' if results['quick'] else ''}; took {results['seconds']} s{skipped}."
    )


_Q1 = "How much faster than what I'd write in trio?"
_Q2 = "How close to the floor?"


def markdown(results: dict[str, Any]) -> str:
    """The results file's own page: the two questions, the goals, every figure."""
    return (
        f"{_head(results)}\n\n## {_Q1}\n\n{faster_than_trio(results)}\n\n"
        f"## {_Q2}\n\n{close_to_floor(results)}\n\n"
        f"## Goals\n\n{goals_table(goals(results))}\n\n## Figures\n\n{tables(results)}"
    )


# -- plots -------------------------------------------------------------------------------------


def plots(results: dict[str, Any], directory: Path) -> list[Path]:
    """PNG plots (needs matplotlib, the ``bench`` extra); returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, NullFormatter
    except ImportError:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    written = []

    figures = _figures(results, "scaling")
    if figures:
        fig, ax = plt.subplots(figsize=(8, 5))
        for contender in dict.fromkeys(f["contender"] for f in figures):
            points = [(f["size"], f["median"]) for f in figures if f["contender"] == contender]
            if contender == TRIOFLOW:
                style: dict[str, Any] = {"linewidth": 2.5, "color": "black"}
            elif contender == FLOOR:
                style = {"linewidth": 2, "linestyle": ":", "color": "dimgrey"}
            elif contender.startswith("seed"):
                style = {"linestyle": "-.", "color": "tab:olive"}
            elif contender.startswith("asyncio"):
                style = {"linestyle": "--"}
            else:
                style = {}
            ax.plot(*zip(*points, strict=True), marker="o", label=contender, **style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("tasks (no-op, 50 workers)")
        ax.set_ylabel("µs per task (median)")
        ax.set_title("Per-task cost against task count (lower is better)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
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
        fig, ax = plt.subplots(figsize=(11, 4.8))
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
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        path = directory / "bench-efficiency.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


# -- the docs page -----------------------------------------------------------------------------

_PAGE = """\
<!-- Generated by benchmarks/report.py from {source}: do not edit by hand, rerun the suite. -->
# Benchmarks: trioflow against what you would write instead

_Generated from `{source}`, no figure typed by hand. {head}
To run it yourself, see [how to reproduce](#how-to-reproduce)._

## {q1}

trioflow beside the code a trio user writes without it: a nursery with a `CapacityLimiter`,
the same on anyio, and aiometer. "Faster by" is the peer's time over trioflow's, in the same
run. Every contender gets the same work; "n/a" means the peer cannot express that workload
(the note says why) and nothing was faked in its place.

{faster}

## {q2}

The floor is 50 bare trio workers draining a deque, checkpointing every 32 jobs, with none of
a library's bookkeeping (`benchmarks/contenders/trio_floor.py`): the least any trio library
can cost. On the sleeping-task makespans its efficiency is what trio's own timers allow, so it
is the honest ceiling there.

{floor}

## Per-task cost against task count

{scaling_plot}

## Goals

Each measured in this run, as a ratio within the run where it compares two contenders.

{goals}

Two goals cannot be met as written, and the rows show why. **(b)**: the row "the goal's time
per link / the bare trio floor's" puts the goal close to the floor itself, the least any trio
library can cost, which keeps no id, status, counter, timestamp, cancel scope or event for a
job; trioflow keeps each of them for every task, as the SPEC asks, and the floor table above
shows an independent trioflow task (no dependency work at all) above that multiple of the
floor already. **(f)**: a subscribed run makes three events per task (queued, assigned,
completed); making, publishing and reading them is about as much work in CPython as the
coordinator's whole path for a no-op task, so no design that keeps one event per status
change gets within 1.3×. What each costs, and what was done about it, is in
[the architecture page](architecture.md#what-the-hot-paths-cost).

## Contenders

All run the same workloads (`benchmarks/workloads.py`) in the same process, taking turns:

* **trioflow** (`benchmarks/contenders/trioflow_contender.py`), through its public API only;
* **trio (nursery + limiter)** (`trio_nursery.py`): a task per job in a nursery, a
  `trio.CapacityLimiter`, `trio.move_on_after` per attempt, a retry loop that sleeps outside
  the limiter, a `trio.Event` per job for dependencies. No priorities (the limiter is FIFO);
* **anyio (task group + limiter)** (`anyio_taskgroup.py`): the same in anyio's words, on the
  trio backend;
* **aiometer run_all / amap** (`aiometer_trio.py`) on trio, `max_at_once=50`. It has no
  dependencies (no chain; the DAG runs layer by layer), no retries (a retry loop inside each
  job, whose backoff holds its slot), no priorities and no queue of its own (no memory figure);
* **trio floor (bare workers)** (`trio_floor.py`): the lower bound above, not a library;
* **asyncio** (`asyncio_idiomatic.py`): idiomatic asyncio as an experienced developer writes
  it: a `TaskGroup`, a task and an `Event` per job, a `Semaphore`, a priority heap,
  `asyncio.timeout`. The "vs asyncio" columns compare with it;
* **asyncio + uvloop**: the same on uvloop's event loop, when uvloop is installed;
* **asyncio (tuned pool)** (`asyncio_workers.py`): trioflow's own design written for asyncio:
  a fixed pool of workers popping a heap, no task per job, far less bookkeeping than trioflow
  (no statuses, timestamps, events or stats);
* **seed reference** (`seed_reference.py`): the chapter's reference solution as published,
  with one fix so it does not crash on its own test. It polls every 100 ms, so its chain uses
  a few links and it runs up to 10k tasks only;
* agents: **trioflow**'s coordinator (`agents_trioflow.py`), the same **+ 1 subscriber**
  (`coord.subscribe()` drained by a task; timed until it has received every completion), and
  a plain **asyncio** coordinator (`agents_asyncio.py`: an inbox `Queue` per agent,
  least-in-flight dispatch, a `Future` per task), also on uvloop.

Task-per-job trio peers (trio, anyio, aiometer) run up to 100k no-op tasks: a run of 1M takes
minutes each. A contender whose library is missing is skipped and the run says so.

## Method

Every figure is the median of several runs; contenders take turns within each repetition,
and every ratio is the median of per-repetition ratios. (a) and (g) are the same runs: no-op
tasks at 50 workers, shown as tasks/s and as µs per task. Makespan efficiency is a lower bound
divided by the measured makespan: max(critical path, total work / workers) for the DAG, and
max(the longest task's own timeline, busy time / workers) for the failure mix (a retry delay
holds no worker). That failure-mix bound assumes the scheduler knows in advance which tasks
will time out, which no online scheduler does; so the mix is also measured against a
discrete-event simulation of a zero-overhead first-come-first-served scheduler
(`FailureMix.ideal_makespan`), which isolates the scheduler's own overhead. Memory is
`tracemalloc`'s count of bytes allocated by submitting jobs that have not started.

## How to reproduce

```bash
.venv/bin/pip install -e '.[bench]'      # anyio, aiometer, uvloop, matplotlib
.venv/bin/python -m benchmarks.run       # ~10 minutes; writes benchmarks/results/ and this page
.venv/bin/python -m benchmarks.run --quick --out /tmp/bench   # seconds: every contender, tiny
.venv/bin/python -m benchmarks.report benchmarks/results/FILE.json   # this page from a file
```

Absolute numbers move from run to run and machine to machine; the in-run ratios are what to
compare.

## Figures

{tables}
{efficiency_plot}
"""


def write_docs(results: dict[str, Any], source: Path, page: Path) -> None:
    images = {p.stem: p for p in plots(results, page.parent / "img")}
    try:
        shown = source.resolve().relative_to(page.resolve().parent.parent)
    except ValueError:
        shown = source

    def image(stem: str, alt: str) -> str:
        if stem in images:
            return f"![{alt}](img/{images[stem].name})"
        return "_(plots need matplotlib: `pip install -e '.[bench]'`)_"

    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(
        _PAGE.format(
            source=shown,
            head=_head(results),
            q1=_Q1,
            faster=faster_than_trio(results),
            q2=_Q2,
            floor=close_to_floor(results),
            scaling_plot=image("bench-scaling", "µs per task against task count"),
            goals=goals_table(goals(results)),
            tables=tables(results),
            efficiency_plot="### Makespan efficiency\n\n"
            + image("bench-efficiency", "makespan efficiency"),
        ),
        encoding="utf-8",
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks.report RESULTS.json", file=sys.stderr)
        return 2
    source = Path(args[0])
    results = json.loads(source.read_text(encoding="utf-8"))
    page = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
    write_docs(results, source, page)
    source.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    print(f"wrote {page} and {source.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
