"""Worker processes for the tests: ``python -m trioflow worker`` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


@attrs.define
class Worker:
    """A worker process and the file its standard error goes to."""

    process: trio.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)


def worker_command(url: str, namespace: str, agents: Sequence[str], agent_id: str) -> list[str]:
    command = [sys.executable, "-m", "trioflow", "worker", "--redis", url]
    command += ["--namespace", namespace, "--id", agent_id]
    for agent in agents:
        command += ["--agent", agent]
    return command


@asynccontextmanager
async def worker_process(
    url: str,
    namespace: str,
    agents: Sequence[str],
    agent_id: str,
    *,
    path: Sequence[str] = (),
) -> AsyncIterator[Worker]:
    """A ``trioflow worker`` process; SIGKILLed on the way out if it still runs. ``path``:
    more directories its agent classes are imported from."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(ROOT), str(TESTS)])}
    fd, name = tempfile.mkstemp(prefix=f"trioflow-worker-{agent_id}-", suffix=".log")
    try:
        process = await trio.lowlevel.open_process(
            worker_command(url, namespace, agents, agent_id),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
        )
    finally:
        os.close(fd)
    worker = Worker(process, Path(name))
    try:
        yield worker
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                os.kill(process.pid, signal.SIGCONT)  # in case the test stopped it
                process.kill()
            await process.wait()
        worker.log.unlink(missing_ok=True)
