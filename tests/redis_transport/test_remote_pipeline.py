"""docs/examples/remote_pipeline.py: a scheduler pipeline whose heavy steps run on agents in
two real worker processes, over a real Redis (issue 13's "DAGs across machines")."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from ._workers import worker_process

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
pytestmark = pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning")


async def test_the_pipelines_heavy_steps_run_on_the_workers(
    redis_url: str, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import remote_pipeline

    renderer = ["remote_pipeline:Renderer"]
    with trio.fail_after(90):
        async with (
            worker_process(redis_url, ns, renderer, "r1", path=[str(EXAMPLES)]) as first,
            worker_process(redis_url, ns, renderer, "r2", path=[str(EXAMPLES)]) as second,
        ):
            lines = await remote_pipeline.pipeline(redis_url, parts=8, namespace=ns)
    assert [line.split(":")[0] for line in lines] == [f"part {n}" for n in range(8)]
    workers = {line.rsplit("(by ", 1)[1].rstrip(")") for line in lines}
    assert workers <= {"r1", "r2"}, (first.output(), second.output())
    # The same part always renders to the same digest, wherever it ran.
    again = await remote_pipeline.Renderer("local").process_task(
        {"type": "render", "part": 3, "rounds": 20_000}
    )
    assert lines[3].startswith(f"part 3: {again['digest']}")
    assert sys.modules["remote_pipeline"] is remote_pipeline
