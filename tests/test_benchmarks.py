"""The benchmark suite's own code: bounds, goals, and a --quick run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
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


def test_goals_use_in_run_ratios() -> None:
    results = {
        "figures": [
            {
                "workload": "chain",
                "size": 10,
                "contender": "trioflow",
                "runs": [1.0, 3.0],
                "median": 2.0,
            },
            {
                "workload": "chain",
                "size": 10,
                "contender": "asyncio",
                "runs": [2.0, 2.0],
                "median": 2.0,
            },
        ]
    }
    (chain,) = [g for g in report.goals(results) if g["goal"].startswith("(b)")]
    assert chain["value"] == pytest.approx(1.0)  # median of 0.5 and 1.5
    assert chain["met"] is True


def test_the_quick_suite_runs_and_writes_its_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (path,) = tmp_path.glob("*-quick.json")
    results = json.loads(path.read_text())
    workloads = {f["workload"] for f in results["figures"]}
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
    }
    contenders = {f["contender"] for f in results["figures"] if f["workload"] == "overhead"}
    assert {"trioflow", "asyncio", "asyncio (tuned pool)", "seed reference"} <= contenders
    assert len(results["goals"]) == 9  # one DAG and one failure-mix size in --quick
    assert "## Goals" in path.with_suffix(".md").read_text()
