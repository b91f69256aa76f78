"""The trioflow command, run as a user runs it: in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def started(*args: str, **options: object) -> Iterator[subprocess.Popen[str]]:
    """``trioflow *args`` in a child process that is killed if the test ends early (a
    timeout, a failed assertion), so that no test leaves one behind."""
    process = subprocess.Popen(
        [sys.executable, "-m", "trioflow", *args],
        cwd=ROOT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        **options,  # type: ignore[call-overload]
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trioflow", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("args", [(), ("demo",), ("demo", "scheduler"), ("demo", "agents")])
def test_help_on_every_command(args: tuple[str, ...]) -> None:
    done = run(*args, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: trioflow")


def test_the_benchmarks_are_not_a_command_of_the_installed_package() -> None:
    """They are a repository tool (``python -m benchmarks.run``); --help says where."""
    done = run("bench")
    assert done.returncode == 2
    assert "invalid choice: 'bench'" in done.stderr
    help_text = " ".join(run("--help").stdout.split())
    assert "python -m benchmarks.run" in help_text
    assert "141 output closed early" in help_text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("frobnicate",), "invalid choice"),
        (("demo", "scheduler", "--tasks", "0"), "must be at least 1"),
        (("demo", "scheduler", "--fail-rate", "2"), "must be between 0 and 1"),
        (("demo", "agents", "--agents", "many"), "not a whole number"),
        (("demo", "agents", "--slow-after", "0"), "must be a positive number of seconds"),
        (("demo", "machines", "--redis", "localhost:6379"), "not a Redis URL"),
        (("worker", "--redis", "notaurl", "--agent", "m:C"), "not a Redis URL"),
    ],
)
def test_bad_usage_is_one_clear_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("trioflow") and message in line and "--help" in line


def test_machines_demo_without_a_redis_says_so_in_one_line() -> None:
    """Nothing listens on the port: one line naming the URL, exit 1, no workers started."""
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run("demo", "machines", "--redis", f"redis://127.0.0.1:{port}", timeout=60)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        f"trioflow demo machines: cannot reach Redis at redis://127.0.0.1:{port}"
    )
    assert "finished" not in done.stdout


def test_scheduler_demo_says_when_every_task_completed() -> None:
    done = run("demo", "scheduler", "--tasks", "20", "--workers", "20")
    assert done.returncode == 0, done.stderr
    assert "  all 20 tasks completed" in done.stdout


def test_demo_without_a_name_runs_both_scenarios_without_the_optional_extras() -> None:
    """The README's first command: the demo of a plain install (no coredis, no rich)."""
    without_extras = (
        "import runpy, sys; sys.modules['coredis'] = sys.modules['rich'] = None; "
        "sys.argv = ['trioflow', 'demo']; runpy.run_module('trioflow', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", without_extras],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
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


def test_ctrl_c_cancels_cleanly_with_a_short_summary() -> None:
    with started(
        "demo",
        "scheduler",
        "--tasks",
        "400",
        "--workers",
        "2",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        assert "scheduler demo" in process.stdout.readline()  # the banner
        # progress lines until one counts completed tasks: the run is well under way
        for line in process.stdout:
            assert "finished" in line
            if "completed" in line:
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "trioflow: interrupted" in stderr
    assert "Traceback" not in stderr
    lines = stdout.splitlines()
    # one summary, not a line per cancelled task
    assert not [line for line in lines if re.search(r"\] t\d+ cancelled", line)]
    assert len(lines) <= 4, stdout
    assert re.fullmatch(
        r"\[\+ *[0-9.]+s\] interrupted: the run was cancelled; "
        r"400 tasks: completed \d+  cancelled \d+",
        lines[-1],
    )


def test_a_pipe_closed_early_ends_the_run_quietly() -> None:
    """``trioflow demo ... | head -n 3``: no traceback, exit 141, and the run stops at once
    instead of running on for a reader that has gone."""
    with started(
        "demo",
        "scheduler",
        "--tasks",
        "400",
        "--workers",
        "2",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        head = subprocess.run(
            ["head", "-n", "3"], stdin=process.stdout, capture_output=True, text=True, timeout=30
        )
        process.stdout.close()  # only head reads it now
        # The whole run would take about a minute (400 tasks of 0.05-0.5 s on 2 workers):
        # ending within the timeout means it stopped when the reader went away.
        _, stderr = process.communicate(timeout=30)
    assert head.returncode == 0
    lines = head.stdout.splitlines()
    assert len(lines) == 3 and "scheduler demo" in lines[0]
    assert stderr == ""
    assert process.returncode == 141
