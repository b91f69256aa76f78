"""The benchmarks over Redis run end to end at tiny sizes (so their code never rots)."""

from __future__ import annotations

import pytest

from benchmarks import over_redis, report

pytestmark = pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning")


def test_the_quick_redis_benchmarks_run_and_judge_their_goals(redis_server_bin: None) -> None:
    """``--quick`` on a private server: every contender measured, the goals judged."""
    lines: list[str] = []
    results = over_redis.run(quick=True, write=lines.append)
    assert "skipped" not in results, lines
    measured = {(f["contender"], f["workers"]) for f in results["figures"]}
    assert {("trioflow", 1), ("floor", 1), ("trioflow", 2), ("failover", 2)} <= measured
    goals = {row["goal"]: row for row in report.redis_goals(results)}
    failover = goals["failover seconds, 2 workers (bound: timeout + interval)"]
    assert failover["value"] is not None and failover["value"] < 5  # a generous bound here
    assert goals["jobs/s over Redis at 2 workers, trioflow / the floor"]["value"] > 0
