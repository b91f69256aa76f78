"""Module-level functions for the process tests: a worker process must be able to import
them by name."""

from __future__ import annotations

import os
import time
from pathlib import Path


def pid_and_square(n: int) -> tuple[int, int]:
    return os.getpid(), n * n


def write_pid_then_spin(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    while True:  # CPU-bound and uninterruptible: only killing the process ends it
        pass


def fail_first_time(marker: str) -> str:
    flag = Path(marker)
    if not flag.exists():
        flag.write_text("failed once")
        raise OSError("first attempt fails")
    return "second attempt"


def sleep_then(seconds: float, value: object) -> object:
    time.sleep(seconds)
    return value


def unpicklable_result() -> object:
    return lambda: None
