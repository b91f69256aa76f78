"""The trioflow command, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trioflow", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert "demo" in done.stdout


def test_unknown_command_is_a_usage_error() -> None:
    done = run("frobnicate")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_scheduler_demo_runs_the_seed_scenario() -> None:
    done = run("demo", "scheduler")
    assert done.returncode == 0, done.stderr
    assert "task-b     completed attempts=1  B done (got: A done)" in done.stdout
    assert "task-fail  failed    attempts=3" in done.stdout


def test_agents_demo_shows_the_reassignment() -> None:
    done = run("demo", "agents")
    assert done.returncode == 0, done.stderr
    assert "agent_offline   search-2" in done.stdout
    assert "reassigned=1" in done.stdout
    assert "failed: Call is not allowed in arithmetic" in done.stdout
