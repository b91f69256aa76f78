"""The trioflow command, run as a user runs it: in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trioflow", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    "args", [(), ("demo",), ("demo", "scheduler"), ("demo", "agents"), ("bench",)]
)
def test_help_on_every_command(args: tuple[str, ...]) -> None:
    done = run(*args, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: trioflow")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("frobnicate",), "invalid choice"),
        (("demo", "scheduler", "--tasks", "0"), "must be at least 1"),
        (("demo", "scheduler", "--fail-rate", "2"), "must be between 0 and 1"),
        (("demo", "agents", "--agents", "many"), "not a whole number"),
    ],
)
def test_bad_usage_is_one_clear_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("trioflow") and message in line and "--help" in line


def test_demo_without_a_name_runs_both_scenarios() -> None:
    done = run("demo")
    assert done.returncode == 0, done.stderr
    assert "scheduler demo" in done.stdout and "agents demo" in done.stdout


def test_scheduler_demo_runs_the_seed_scenario() -> None:
    done = run("demo", "scheduler")
    assert done.returncode == 0, done.stderr
    assert "task-b     completed attempts=1  B done (got: A done)" in done.stdout
    assert "task-fail  failed    attempts=3" in done.stdout
    # not a terminal: plain, timestamped monitor lines
    assert "task-fail retrying: RuntimeError: simulated failure" in done.stdout
    assert "5/5 finished (100%)" in done.stdout


def test_scheduler_demo_scaled_with_faults() -> None:
    done = run("demo", "scheduler", "--tasks", "40", "--workers", "8", "--fail-rate", "0.3")
    assert done.returncode == 0, done.stderr
    assert "40/40 finished (100%)" in done.stdout
    assert "retrying" in done.stdout


def test_agents_demo_shows_the_reassignment() -> None:
    done = run("demo", "agents")
    assert done.returncode == 0, done.stderr
    assert "search-2 offline: AgentGone: agent 'search-2' sent no heartbeat" in done.stdout
    assert "reassigned=1" in done.stdout
    assert "failed: Call is not allowed in arithmetic" in done.stdout


def test_agents_demo_scaled_with_a_crash_and_a_restart() -> None:
    done = run("demo", "agents", "--tasks", "30", "--agents", "4", "--crash-agent")
    assert done.returncode == 0, done.stderr
    assert "30/30 finished (100%)" in done.stdout
    assert "calc-1 offline" in done.stdout and "simulated agent crash" in done.stdout
    assert "restarts=" in done.stdout and "restarts=0" not in done.stdout


def test_bench_quick_runs_the_suite() -> None:
    done = run("bench", "--quick")
    assert done.returncode == 0, done.stderr
    assert "| goal | measured | target | met |" in done.stdout


def test_ctrl_c_cancels_cleanly_with_a_summary() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "trioflow", "demo", "scheduler", "--tasks", "400", "--workers", "2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # the banner: the run has started
    assert "scheduler demo" in first
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "interrupted" in stdout
    assert "trioflow: interrupted" in stderr
    assert "Traceback" not in stderr
