"""Benchmarks over Redis: trioflow's RedisTransport against the floor and the peer, same run.

    python -m benchmarks.over_redis                 # the full set (a few minutes)
    python -m benchmarks.over_redis --quick         # tiny sizes: seconds
    python -m benchmarks.over_redis --url URL       # against a server of yours (it is flushed)

For 1, 2 and 4 worker processes:

* **trioflow**: round-trip throughput. A coordinator in this process (``RedisTransport``),
  N ``trioflow worker`` processes each serving one no-op agent of concurrency 100;
  ``coord.run_all`` of J tasks; jobs/s = J / (submit to the last result).
* **floor**: plain coredis, no trioflow: a producer ``XADD`` s in pipelines of 100, N consumer
  processes read ``COUNT 100`` and answer each batch with one pipeline of result ``XADD`` s
  and one ``XACK``.
* **streaq** (the peer, a coredis-based task queue): N worker processes, a caller that
  enqueues and awaits each result, 32 in flight (as the issue quotes it).
* **failover**: a long task on one worker, SIGKILLed; the time from the kill to the task's
  reassignment to another agent (``heartbeat_interval=0.2``, ``heartbeat_timeout=1.0``),
  the median of three kills. With one worker process there is nobody to fail over to.

Without ``--url`` it starts a private ``redis-server`` on a free loopback port (and says
so, and measures nothing Redis-bound, when there is none). Results go to
``benchmarks/results/<date>-<host>-redis.json`` (``--quick``: a temporary directory, unless
``--out``), with the goals of ``report.redis_goals``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from . import report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _flush(url: str) -> None:
    import coredis

    async def flush() -> None:
        async with coredis.Redis.from_url(url) as client:
            await client.flushall()

    trio.run(flush)


def _spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args],
        env=env or ENV,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _workers(url: str, namespace: str, count: int) -> list[subprocess.Popen[bytes]]:
    agent = "benchmarks.contenders.redis_noop:Noop"
    common = ["-m", "trioflow", "worker", "--redis", url, "--namespace", namespace]
    return [
        _spawn([*common, "--agent", agent, "--id", f"w{i}", "--concurrency", "100"])
        for i in range(count)
    ]


async def _wait_online(coord: Any, count: int) -> None:
    from trioflow._machines import wait_online

    with trio.fail_after(60):
        await wait_online(coord, count)


def trioflow_roundtrip(url: str, workers: int, jobs: int) -> float:
    """Jobs per second through a coordinator and ``workers`` worker processes."""
    from trioflow.agents import RedisTransport, open_coordinator

    _flush(url)
    namespace = f"bench-{workers}"
    processes = _workers(url, namespace, workers)

    async def main() -> float:
        transport = RedisTransport(url, namespace=namespace)
        async with open_coordinator(transport=transport, slow_after=None) as coord:
            await _wait_online(coord, workers)
            tasks = [{"type": "noop", "n": n} for n in range(jobs)]
            start = time.perf_counter()
            results = await coord.run_all(tasks)
            elapsed = time.perf_counter() - start
            assert results == list(range(jobs))
        return jobs / elapsed

    try:
        return trio.run(main)
    finally:
        _stop(processes)


def floor_roundtrip(url: str, workers: int, jobs: int) -> float:
    """Jobs per second of plain coredis consumers (see the module docstring)."""
    from .contenders import redis_floor

    _flush(url)
    trio.run(redis_floor.prepare, url)
    processes = [
        _spawn(["-m", "benchmarks.contenders.redis_floor", "consumer", url, f"c{i}"])
        for i in range(workers)
    ]
    try:
        time.sleep(1.0)  # the consumers connect
        return trio.run(redis_floor.produce, url, jobs)
    finally:
        _stop(processes)


def streaq_roundtrip(url: str, workers: int, jobs: int) -> float | None:
    """Jobs per second of streaq's enqueue-and-await, or ``None`` without streaq."""
    try:
        import streaq  # noqa: F401
    except ImportError:
        return None
    _flush(url)
    env = {**ENV, "STREAQ_URL": url}
    processes = [
        _spawn(["-m", "benchmarks.contenders.streaq_peer", "worker"], env) for _ in range(workers)
    ]
    try:
        time.sleep(1.5)  # the workers connect and create their group
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.contenders.streaq_peer", "roundtrip", str(jobs)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if out.returncode:
            raise RuntimeError(f"streaq failed: {out.stderr[-2000:]}")
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        _stop(processes)


def failover(url: str, workers: int, kills: int = 3) -> list[float]:
    """Seconds from a SIGKILL of the worker running a task to the task's reassignment."""
    from trioflow.agents import EventKind, RedisTransport, open_coordinator

    _flush(url)
    namespace = f"failover-{workers}"
    processes = _workers(url, namespace, workers)
    by_id = {f"w{i}": process for i, process in enumerate(processes)}

    async def main() -> list[float]:
        times: list[float] = []
        transport = RedisTransport(url, namespace=namespace)
        async with open_coordinator(
            heartbeat_interval=0.2, heartbeat_timeout=1.0, transport=transport, slow_after=None
        ) as coord:
            await _wait_online(coord, workers)
            for kill in range(min(kills, workers - 1)):
                events = coord.subscribe()
                handle = coord.submit({"type": "noop", "n": kill, "seconds": 3.0})
                victim = by_id[str(handle.agent_id)]
                await trio.sleep(0.3)
                killed = trio.current_time()
                victim.send_signal(signal.SIGKILL)
                async for event in events:
                    if (
                        event.kind is EventKind.TASK_ASSIGNED
                        and event.task_id == handle.id
                        and event.attempt == 2
                    ):
                        times.append(event.at - killed)
                        break
                await events.aclose()
                handle.cancel()
        return times

    try:
        return trio.run(main)
    finally:
        _stop(processes)


def _server(url: str | None) -> tuple[str | None, subprocess.Popen[bytes] | None, str]:
    if url:
        return url, None, ""
    exe = shutil.which("redis-server")
    if exe is None:
        return None, None, "redis-server is not installed (apt-get install -y redis-server)"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="trioflow-bench-redis-")
    server = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0", server, ""
        except OSError:
            time.sleep(0.05)
    server.kill()
    return None, None, "the private redis-server did not start"


def run(
    *, url: str | None = None, quick: bool = False, repeat: int = 3, write: Any = print
) -> dict[str, Any]:
    """Measure everything (see the module docstring); the results as a dict, with
    ``"skipped"`` set (and nothing measured) when no Redis can be had."""
    try:
        import coredis  # noqa: F401
    except ImportError:
        reason = "coredis is not installed: pip install -e '.[bench]'"
        write(f"redis benchmarks skipped: {reason}")
        return {"skipped": reason}
    found, server, reason = _server(url)
    if found is None:
        write(f"redis benchmarks skipped: {reason}")
        return {"skipped": reason}
    jobs = 500 if quick else 20_000
    floor_jobs = 1000 if quick else 30_000
    streaq_jobs = 100 if quick else 1_000
    counts = [1, 2] if quick else [1, 2, 4]
    repeat = 1 if quick else repeat
    figures: list[dict[str, Any]] = []
    try:
        for workers in counts:
            for name, measure, size in (
                ("trioflow", trioflow_roundtrip, jobs),
                ("floor", floor_roundtrip, floor_jobs),
                ("streaq", streaq_roundtrip, streaq_jobs),
            ):
                runs = []
                for _ in range(1 if name == "streaq" and not quick else repeat):
                    value = measure(found, workers, size)
                    if value is not None:
                        runs.append(value)
                if runs:
                    figures.append(
                        {"contender": name, "workers": workers, "jobs": size, "jobs_per_s": runs}
                    )
                    write(
                        f"  {name:<9} workers={workers} {statistics.median(runs):9.0f} jobs/s "
                        f"({size} jobs, {len(runs)} run(s))"
                    )
                else:
                    write(f"  {name:<9} workers={workers} skipped: streaq is not installed")
            if workers > 1:
                times = failover(found, workers, kills=1 if quick else 3)
                figures.append({"contender": "failover", "workers": workers, "seconds": times})
                shown = ", ".join(f"{t:.2f}" for t in times)
                write(f"  failover  workers={workers} {shown} s (heartbeat 0.2 / timeout 1.0)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    return {
        "date": datetime.date.today().isoformat(),
        "host": socket.gethostname(),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "quick": quick,
        "heartbeat": {"interval": 0.2, "timeout": 1.0},
        "figures": figures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.over_redis")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each")
    parser.add_argument("--url", help="a Redis to use (it is flushed) instead of a private one")
    parser.add_argument("--out", type=Path, help="the directory for the results file")
    args = parser.parse_args(argv)
    results = run(url=args.url, quick=args.quick)
    if "skipped" in results:
        return 0
    directory = args.out or (Path(tempfile.mkdtemp()) if args.quick else RESULTS)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{results['date']}-{results['host']}-redis.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\n{report.goals_table(report.redis_goals(results))}\n\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
