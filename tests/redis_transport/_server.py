"""Private ``redis-server`` instances on free loopback ports, for the tests and benchmarks.

Nothing here talks to any address but 127.0.0.1. Every server started is stopped by the
context manager (SIGTERM, then SIGKILL after a bound), so a failed test leaves nothing
behind. ``aof=True`` turns on ``appendonly yes`` (``appendfsync everysec``); otherwise
persistence is off (``--save '' --appendonly no``). The data directory survives
:meth:`RedisServer.kill` and :meth:`RedisServer.start`, so a restart replays the AOF.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis server answers ``PING`` there."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private ``redis-server`` bound to 127.0.0.1."""

    def __init__(self, *, aof: bool = False, port: int | None = None) -> None:
        self.port = port or free_port()
        self.aof = aof
        self.dir = Path(tempfile.mkdtemp(prefix="trioflow-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        args = [
            exe,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--daemonize", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        if self.aof:
            return [*args, "--appendonly", "yes", "--appendfsync", "everysec"]
        return [*args, "--appendonly", "no"]

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait (bounded) until it answers ``PING``."""
        self.proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_tail()}")
            if ping("127.0.0.1", self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not answer PING in time")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no last fsync."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.dir / "redis.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def redis_server(*, aof: bool = False) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, always stopped and its directory removed."""
    server = RedisServer(aof=aof)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
