"""Chaos, bounded and seeded: random mixes of the faults trioflow promises to contain, on
the mock clock, for both engines (the scenarios live in benchmarks/chaos.py, whose soak
mode runs them for minutes on the real clock)."""

from __future__ import annotations

import pytest

from benchmarks.chaos import Outcome, check, run_one


@pytest.mark.parametrize("seed", range(12))
def test_scheduler_chaos_keeps_every_invariant(seed: int) -> None:
    outcome = run_one("scheduler", seed, tasks=150, burst=0, mock_clock=True)
    assert outcome.submitted == 150


@pytest.mark.parametrize("seed", range(12))
def test_agents_chaos_keeps_every_invariant(seed: int) -> None:
    outcome = run_one("agents", seed, tasks=150, burst=0, mock_clock=True)
    assert outcome.submitted == 150


def test_a_burst_of_a_hundred_thousand_submissions() -> None:
    outcome = run_one("scheduler", 7, tasks=50, burst=100_000, mock_clock=True)
    assert outcome.submitted == 100_050
    assert outcome.statuses


def test_the_seeds_cover_the_faults_they_are_meant_to() -> None:
    """The scenarios really do raise in the block, cancel from outside and end tasks in
    every terminal status, so the invariants above are tested under those faults."""
    outcomes = [run_one("scheduler", s, 150, 0, mock_clock=True) for s in range(12)]
    outcomes += [run_one("agents", s, 150, 0, mock_clock=True) for s in range(12)]
    assert any(o.body_raised for o in outcomes)
    assert any(o.cancelled_outside for o in outcomes)
    seen = {status for o in outcomes for status in o.statuses}
    assert {"completed", "failed", "timeout", "cancelled"} <= seen


def test_check_catches_a_broken_invariant() -> None:
    good = Outcome("scheduler", 0, submitted=1, total=1, finished=1, ids=[0])
    good.terminal_events[0] = 1
    check(good)
    for broken in (
        Outcome("scheduler", 0, submitted=1, total=1, finished=0, ids=[0]),
        Outcome("scheduler", 0, submitted=1, total=1, finished=1, ids=[0], borrowed=1),
        Outcome("scheduler", 0, submitted=1, total=1, finished=1, ids=[0], raised=KeyError()),
    ):
        broken.terminal_events[0] = 1
        with pytest.raises(AssertionError, match="seed 0"):
            check(broken)
    twice = Outcome("scheduler", 0, submitted=1, total=1, finished=1, ids=[0])
    twice.terminal_events[0] = 2
    with pytest.raises(AssertionError, match="exactly once"):
        check(twice)


def test_a_short_soak_reports_each_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The soak mode: scenarios on the faster-than-real clock, each reported, none breaking
    an invariant (small ones here, to keep the suite quick)."""
    from benchmarks import chaos

    runs = chaos.soak(0.01, seed=3, tasks=(20, 40), bursts=False)
    lines = capsys.readouterr().out.splitlines()
    assert runs >= 1 and len(lines) == runs
    assert all(" tasks " in line for line in lines)


def test_the_benchmark_runner_offers_the_soak(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import chaos, run

    asked: list[float] = []
    monkeypatch.setattr(chaos, "soak", lambda minutes: asked.append(minutes) or 0)
    assert run.main(["--soak", "2.5"]) == 0
    assert asked == [2.5]
