"""The Redis building blocks (``_streams.py``) against a real server, and the codec."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

import coredis
import pytest
import trio

from trioflow.agents import AgentCapability, Message, MessageType, TaskRejected
from trioflow.agents.transport import JsonCodec, RemoteError
from trioflow.agents.transport._codec import error_data, error_from, message_data, message_from
from trioflow.agents.transport._streams import GROUP, Entry, GroupReader, ensure_group

pytestmark = pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning")


async def reader_connections(admin: coredis.Redis[str]) -> int:
    clients = await admin.client_list()
    return sum(1 for client in clients if client.get("name", "").startswith("trioflow-reader:"))


async def test_a_reader_cancelled_500_times_reads_each_entry_once(redis_url: str, ns: str) -> None:
    """A reader started and cancelled 500 times at random moments (inside reads, between
    entries, while it connects) while a producer writes: every entry is handled exactly
    once, nothing is left pending, and no connection is left behind. (A naive reader on a
    shared coredis client hangs for good after 64 such cancels.)"""
    stream, total = f"{ns}:s", 2000
    rng = random.Random(int(os.environ.get("SEED", "13")))
    seen: list[str] = []
    produced: list[str] = []
    async with coredis.Redis.from_url(redis_url, decode_responses=True) as admin:
        await ensure_group(admin, stream)
        baseline = await reader_connections(admin)

        async def produce() -> None:
            while len(produced) < total:
                k = min(rng.randint(1, 40), total - len(produced))
                async with admin.pipeline(transaction=False) as pipe:
                    requests = [pipe.xadd(stream, {"i": str(len(produced) + j)}) for j in range(k)]
                produced.extend([str(await request) for request in requests])
                await trio.sleep(rng.uniform(0, 0.01))

        async def consume_once(lifetime: float) -> bool:
            with trio.move_on_after(lifetime) as scope:
                async with GroupReader(
                    redis_url, [stream], "c1", count=rng.randint(1, 50), block_ms=20
                ) as reader:
                    async for batch in reader:
                        for entry in batch:
                            await trio.lowlevel.checkpoint()  # a cancel may land here
                            with trio.CancelScope(shield=True):
                                # on the long-lived client: the reader's own connections
                                # die with a cancel of the whole reader
                                await reader.ack([entry], client=admin)
                                seen.append(entry.id)
            return scope.cancelled_caught

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                cancels = 0
                for _ in range(500):
                    lifetime = rng.choice(
                        [0.0, rng.uniform(0, 0.003), rng.uniform(0, 0.03), rng.uniform(0.03, 0.1)]
                    )
                    cancels += await consume_once(lifetime)
            assert cancels == 500
            with trio.move_on_after(10):
                async with GroupReader(redis_url, [stream], "c1", block_ms=20) as reader:
                    async for batch in reader:
                        seen.extend(entry.id for entry in batch)
                        await reader.ack(batch)
                        if len(set(seen)) >= total:
                            break
        assert sorted(seen) == sorted(produced)
        assert len(seen) == len(set(seen)) == total  # exactly once
        assert (await admin.xpending(stream, GROUP)).pending == 0
        await trio.sleep(0.2)
        assert await reader_connections(admin) == baseline


async def test_a_reader_yields_what_a_cancelled_read_left_pending(redis_url: str, ns: str) -> None:
    """Entries handed to the consumer that nobody saw come back from its pending list when
    a reader of that consumer starts; entries deleted meanwhile are acknowledged, unseen."""
    stream = f"{ns}:s"
    async with coredis.Redis.from_url(redis_url, decode_responses=True) as admin:
        await ensure_group(admin, stream)
        ids = [str(await admin.xadd(stream, {"n": str(n)})) for n in range(5)]
        await admin.xreadgroup(GROUP, "c1", {stream: ">"}, count=5)  # delivered, never seen
        await admin.xdel(stream, [ids[0]])
        new = str(await admin.xadd(stream, {"n": "new"}))
        got: list[Entry] = []
        with trio.fail_after(10):
            async with GroupReader(redis_url, [stream], "c1", block_ms=20) as reader:
                async for batch in reader:
                    got += batch
                    await reader.ack(batch)
                    if len(got) == 5:
                        break
        assert [entry.id for entry in got] == [*ids[1:], new]
        assert (await admin.xpending(stream, GROUP)).pending == 0


async def test_a_reader_of_a_deleted_stream_recreates_its_group(redis_url: str, ns: str) -> None:
    """Deleting an inbox (how a coordinator voids an agent's work) wakes its blocked reader
    (UNBLOCKED), which re-creates the group and reads on."""
    stream = f"{ns}:s"
    async with coredis.Redis.from_url(redis_url, decode_responses=True) as admin:
        with trio.fail_after(10):
            async with (
                GroupReader(redis_url, [stream], "c1", block_ms=1000) as reader,
                trio.open_nursery() as nursery,
            ):

                async def delete_then_add() -> None:
                    await trio.sleep(0.2)
                    await admin.delete([stream])
                    await admin.xadd(stream, {"n": "after"})

                nursery.start_soon(delete_then_add)
                batch = await reader.__anext__()
        assert [entry.fields for entry in batch] == [{"n": "after"}]


def test_the_json_codec() -> None:
    codec = JsonCodec()
    task: Mapping[str, Any] = {"type": AgentCapability.SEARCH, "query": "trio", "n": [1, 2]}
    assert codec.decode(codec.encode(task)) == task
    with pytest.raises(TypeError, match="not JSON serializable"):
        codec.encode({"x": object()})
    with pytest.raises(TypeError, match="not JSON serializable"):
        codec.encode({"x": float("inf")})
    with pytest.raises(ValueError):
        codec.decode("{broken")
    with pytest.raises(ValueError):
        codec.decode('{"__capability__": "no such capability"}')


def test_errors_cross_the_wire_as_their_builtin_class_or_as_remote_errors() -> None:
    assert type(error_from(error_data(KeyError("k")))) is KeyError
    rejected = error_from(error_data(TaskRejected("bad input")))
    assert isinstance(rejected, TaskRejected) and str(rejected) == "bad input"

    class Custom(Exception):
        pass

    try:
        raise Custom("mine")
    except Custom as exc:
        remote = error_from(error_data(exc))
    assert isinstance(remote, RemoteError) and remote.type_name == "Custom"
    assert "raise Custom" in remote.remote_traceback
    with pytest.raises(ValueError):
        error_from({"no": "type"})


def test_messages_cross_the_wire() -> None:
    message = Message(MessageType.AGENT_STATUS, "a", "b", {"load": 1}, 12.5)
    assert message_from(message_data(message)) == message
    with pytest.raises(ValueError):
        message_from({"type": "no such type"})
