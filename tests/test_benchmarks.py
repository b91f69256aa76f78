"""The benchmark suite's own code: bounds, goals, and a --quick run end to end."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from benchmarks import report, run
from benchmarks.workloads import FailureMix, LayeredDag

ROOT = Path(__file__).resolve().parents[1]


def test_dag_bound_is_the_larger_of_critical_path_and_spread_work() -> None:
    assert LayeredDag(10, 100, 2, 0.01, workers=50).lower_bound() == pytest.approx(0.2)
    assert LayeredDag(10, 4, 2, 0.01, workers=50).lower_bound() == pytest.approx(0.1)


def test_dag_shape_is_seeded_and_points_at_the_layer_above() -> None:
    dag = LayeredDag(5, 8, 3, 0.01, workers=4)
    shape = dag.shape()
    assert shape == dag.shape()
    assert [len(layer) for layer in shape] == [8] * 5
    assert all(deps == [] for deps in shape[0])
    assert all(len(deps) == 3 and max(deps) < 8 for layer in shape[1:] for deps in layer)


def test_failure_mix_bound_counts_retry_delays_as_time_not_work() -> None:
    mix = FailureMix(1, fail_share=0, timeout_share=1.0, duration=1, timeout=5, delay=2, workers=1)
    assert mix.specs() == [("timeout", 1, 1)]
    assert mix.lower_bound() == 5 + 2 + 1
    assert mix.lower_bound(retries_timeouts=False) == 5


def test_the_ideal_schedule_sits_between_the_bound_and_a_serial_run() -> None:
    mix = FailureMix(200, 0.2, 0.1, duration=0.01, timeout=0.05, delay=0.02, workers=10)
    assert mix.lower_bound() <= mix.ideal_makespan()
    serial = FailureMix(200, 0.2, 0.1, duration=0.01, timeout=0.05, delay=0.02, workers=1)
    busy = sum({"ok": d, "fail": 2 * d, "timeout": mix.timeout + d}[b] for b, _, d in mix.specs())
    assert serial.ideal_makespan() == pytest.approx(busy)


def test_an_ideal_schedule_of_one_timeout_is_its_timeline() -> None:
    mix = FailureMix(1, 0, 1.0, duration=1, timeout=5, delay=2, workers=3)
    assert mix.ideal_makespan() == 5 + 2 + 1
    assert mix.ideal_makespan(retries_timeouts=False) == 5


def _figure(workload: str, contender: str, runs: list[float], size: object = 10) -> dict:
    return {
        "workload": workload,
        "size": size,
        "contender": contender,
        "metric": "us_per_link",
        "runs": runs,
        "median": statistics.median(runs),
    }


def test_goals_compare_with_the_faster_asyncio_peer_run_by_run() -> None:
    results = {
        "figures": [
            _figure("chain", "trioflow", [0.4, 0.2]),
            _figure("chain", "asyncio", [2.0, 2.0]),
            _figure("chain", "asyncio + uvloop", [4.0, 1.0]),
        ]
    }
    (chain,) = [g for g in report.goals(results) if g["goal"].startswith("(b)")]
    assert chain["value"] == pytest.approx(0.2)  # 0.4 / 2 and 0.2 / 1: each run's faster peer
    assert chain["goal"].endswith("trioflow / asyncio")  # the faster by median
    assert chain["met"] is True


def test_goals_use_in_run_ratios() -> None:
    results = {
        "figures": [
            _figure("agents", "trioflow", [1.0, 3.0], 20_000),
            _figure("agents", "asyncio", [2.0, 2.0], 20_000),
            _figure("agents", "trioflow + 1 subscriber", [1.2, 3.3], 20_000),
        ]
    }
    rows = {g["goal"]: g for g in report.goals(results)}
    versus = rows["(f) agents, 20,000 tasks: trioflow / asyncio coordinator"]
    assert versus["value"] == pytest.approx(1.0)  # median of 0.5 and 1.5
    assert versus["met"] is False
    subscribed = rows["(f) agents, 20,000 tasks: with one subscriber / without"]
    assert subscribed["value"] == pytest.approx(1.15)
    assert subscribed["met"] is True


def test_bulk_goal_is_not_measured_without_map_and_judged_with_it() -> None:
    without = {
        "figures": [],
        "gaps": [
            {
                "workload": "bulk",
                "size": 100,
                "contender": "trioflow sched.map",
                "reason": "the scheduler has no map() yet",
            }
        ],
    }
    (row,) = [g for g in report.goals(without) if g["goal"].startswith("(h)")]
    assert row["value"] is None and row["met"] is None
    assert "not measured: the scheduler has no map() yet" in report.goals_table([row])
    measured = {
        "figures": [
            _figure("bulk", "trioflow sched.map", [3.0, 5.0], 100),
            _figure("bulk", "trio floor (bare workers)", [1.0, 1.0], 100),
        ]
    }
    (row,) = [g for g in report.goals(measured) if g["goal"].startswith("(h)")]
    assert row["value"] == pytest.approx(4.0)
    assert row["met"] is True


def test_a_workload_a_peer_cannot_express_is_shown_with_its_reason() -> None:
    results = {
        "contenders": ["trioflow", "aiometer run_all"],
        "figures": [
            _figure("overhead", "trioflow", [1.0], 100),
            _figure("scaling", "trioflow", [2.0], 100),
            _figure("scaling", "aiometer run_all", [8.0], 100),
            _figure("chain", "trioflow", [3.0]),
        ],
        "gaps": [
            {
                "workload": "chain",
                "size": 10,
                "contender": "aiometer run_all",
                "reason": "no dependencies between jobs",
            }
        ],
    }
    table = report.faster_than_trio(results)
    assert "| aiometer run_all | 8.00 | 4× | n/a (1) |" in table
    assert "(1) chain: no dependencies between jobs" in table
    assert "| 10 | aiometer run_all | not run: no dependencies between jobs |" in report.tables(
        results
    )


def test_a_quick_run_writes_to_a_temporary_directory_unless_told() -> None:
    assert run.output_directory(quick=False, out=None) == run.RESULTS
    quick = run.output_directory(quick=True, out=None)
    assert not quick.resolve().is_relative_to(ROOT)
    assert run.output_directory(quick=True, out=Path("x")) == Path("x")


def test_a_contender_whose_optional_library_is_missing_is_skipped_with_a_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = run._load

    def load(name: str) -> ModuleType:
        if name == "aiometer_trio":
            raise ModuleNotFoundError("No module named 'aiometer'", name="aiometer")
        return real(name)

    monkeypatch.setattr(run, "_load", load)
    lines: list[str] = []
    found, skipped = run.contenders(lines.append)
    assert skipped[0] == {"contender": "aiometer_trio", "reason": "aiometer is not installed"}
    assert "skipped aiometer_trio: aiometer is not installed" in lines
    assert not any(c.key == "aiometer_trio" for c in found)
    assert any(c.name == "trioflow" for c in found)


def test_a_broken_trioflow_fails_the_run_instead_of_being_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def load(name: str) -> ModuleType:
        raise ModuleNotFoundError("No module named 'trioflow._x'", name="trioflow._x")

    monkeypatch.setattr(run, "_load", load)
    with pytest.raises(ModuleNotFoundError):
        run.contenders(lambda line: None)


def _tracked_outputs() -> dict[Path, bytes]:
    paths = [*(ROOT / "benchmarks" / "results").glob("*"), *(ROOT / "docs").rglob("*")]
    return {p: p.read_bytes() for p in paths if p.is_file()}


def test_the_quick_suite_runs_every_contender_and_touches_no_tracked_file(
    tmp_path: Path,
) -> None:
    before = _tracked_outputs()
    page = tmp_path / "docs" / "benchmarks.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--out",
            str(tmp_path),
            "--docs",
            str(page),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _tracked_outputs() == before
    (path,) = tmp_path.glob("*-quick.json")
    results = json.loads(path.read_text())
    workloads = {f["workload"] for f in results["figures"] + results["gaps"]}
    assert workloads == {
        "overhead",
        "chain",
        "dag",
        "failures",
        "failures_ideal",
        "memory",
        "agents",
        "failover",
        "scaling",
        "bulk",
    }
    ran = {f["contender"] for f in results["figures"] if f["workload"] == "scaling"}
    assert set(results["contenders"]) == ran  # every loaded contender ran
    assert {
        "trioflow",
        "trio (nursery + limiter)",
        "trio floor (bare workers)",
        "asyncio",
        "asyncio (tuned pool)",
        "seed reference",
    } <= ran
    for skipped in results["skipped"]:  # an optional library missing: said so, not hidden
        assert f"skipped {skipped['contender']}: " in done.stdout
    for contender in ran:  # each on every workload it can express, or a reason why not
        for workload in ("chain", "dag", "failures", "memory"):
            entries = results["figures"] + results["gaps"]
            assert any(e["contender"] == contender and e["workload"] == workload for e in entries)
    goals = [g["goal"] for g in results["goals"]]
    for prefix in ("(a)", "(b)", "(c)", "(d)", "(e)", "(f)", "(g)", "(h)"):
        assert any(goal.startswith(prefix) for goal in goals), prefix
    assert "## Goals" in path.with_suffix(".md").read_text()
    headings = [line for line in page.read_text().splitlines() if line.startswith("## ")]
    assert headings[:2] == [
        "## How much faster than what I'd write in trio?",
        "## How close to the floor?",
    ]
    assert "## How to reproduce" in headings
