"""Redis Streams building blocks: key names, the reader, the Lua scripts, the codec.

Everything here was measured against a real ``redis-server`` (7.0) through coredis 6.9 under
trio 0.35 before it was written; the reasons below are those measurements.

**The reader** (:class:`GroupReader`). In coredis 6.9 every ``XREADGROUP`` is flagged as a
blocking command, so it holds a pooled connection until the reply arrives, and a blocking
command that is cancelled (or times out) invalidates its connection without ever giving its
pool slot back: after 64 cancels the default pool is empty and every later command on that
client hangs for good. A retried timeout (the default retry policy of ``from_url``) loses
one slot per try. So a reader here

* owns a client of its own, built without a retry policy, thrown away with the reader;
* never lets a cancel land inside a read: every read is a short ``BLOCK`` (100 ms; Redis
  rounds ``BLOCK`` up to its timer tick, 100 ms at the default ``hz 10``, so shorter buys
  nothing) inside a shielded scope with a deadline, and cancellation is looked at between
  reads. A cancel of a scope inside the reader's block waits for the read in flight (at
  most ~100 ms plus a round trip); a cancel of the whole reader is immediate, because it
  also tears down the reader's own client;
* walks its consumer's own pending list (``XREADGROUP ... 0``) when it starts and every
  ``pending_every`` seconds. Measured: when a read is cancelled after the server answered,
  the entries are in that consumer's pending list but were never seen (17 % of the entries
  in a run of 1,000 reads with random 0-3 ms timeouts), and ``XREADGROUP ... >`` never
  returns them again;
* re-creates its group when the stream was deleted (``NOGROUP``, or ``UNBLOCKED`` for a read
  blocked at that moment): deleting an agent's inbox is how a coordinator voids its work;
* sends ``XREADGROUP`` raw and parses the reply itself: coredis 6.9's parser raises
  ``TypeError`` on the ``[id, nil]`` pairs that a pending-list read returns for entries
  deleted since, and the whole reply would be lost.

Errors raised inside ``async with client:`` come out of coredis wrapped in an
``ExceptionGroup`` (its pool's task group); the reader unwraps a group that holds only the
body's own exception.

**The scripts** (:class:`Scripts`). ``XACK`` is not scoped to a consumer, so a worker that was
declared dead and comes back could acknowledge work that was reassigned, and a plain result
write could record two results. Each step that must be fenced is one Lua script, atomic on
the server: ``SUBMIT`` (the task's hash and its place in the open set), ``ASSIGN`` (owner and
fencing token recorded, work entry appended to the owner's inbox, or a refusal if the task is
finished), ``REPORT`` (an outcome recorded only under the current owner and token; the entry
acknowledged and deleted; one report appended for the coordinator), ``FINISH`` (the
coordinator's final failure or cancel, which holds over a result reported meanwhile). One
``EVALSHA`` costs ~240 µs here, a ``PING`` ~160: sent one at a time that is ~460 µs per
completion, and 45-61 µs in pipelines of 100, so the
scripts run in batches (:meth:`Scripts.run_many`: raw ``EVALSHA`` s in one pipeline, because
coredis adds a ``SCRIPT EXISTS`` round trip to any pipeline that calls a ``Script`` object;
reloaded once on ``NOSCRIPT``, which is what a restarted Redis answers).

The payloads inside entries are the codec's business (``_codec.py``).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from enum import Enum, IntEnum
from types import TracebackType
from typing import Any, Final, NamedTuple, Self, final

import coredis
import trio
from coredis.exceptions import (
    NoScriptError,
    ResponseError,
    StreamDuplicateConsumerGroupError,
)
from coredis.retry import NoRetryPolicy

__all__ = [
    "GROUP",
    "Entry",
    "GroupReader",
    "Keys",
    "ReaderStalledError",
    "Report",
    "Scripts",
    "dead_letter",
    "ensure_group",
    "open_client",
    "send_writes",
    "text",
]

#: The consumer group on every stream.
GROUP: Final = "trioflow"


@final
class Keys:
    """Every Redis key of one namespace. All share the ``{namespace}:`` prefix, so
    ``SCAN MATCH ns:*`` finds them and namespaces never meet. (The scripts touch several
    keys at once: this targets a single Redis node, not a cluster.)"""

    __slots__ = ("coordinator", "dead", "epoch", "inbound", "namespace", "open", "settings")

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        #: Stream: everything agents tell the coordinator (registrations, reports, messages).
        self.inbound = f"{namespace}:in"
        #: Sorted set: the ids of submitted tasks that have not finished, by submission.
        self.open = f"{namespace}:open"
        #: Hash: what workers run by (heartbeat interval and timeout, task timeout, epoch).
        self.settings = f"{namespace}:settings"
        #: Counter: incremented by every coordinator that starts; half of each fencing token.
        self.epoch = f"{namespace}:epoch"
        #: String with a TTL: the one live coordinator of the namespace.
        self.coordinator = f"{namespace}:coordinator"
        #: Stream: entries that could not be handled, each with the reason.
        self.dead = f"{namespace}:dead"

    def inbox(self, agent_id: str) -> str:
        """Stream: what the coordinator tells one agent (work, revokes, messages)."""
        return f"{self.namespace}:agent:{agent_id}"

    def task(self, task_id: str) -> str:
        """Hash: one task's state, payload, owner, token, result or error."""
        return f"{self.namespace}:task:{task_id}"

    def lease(self, agent_id: str) -> str:
        """String with a TTL: the agent's heartbeat, and its worker's lease on the id."""
        return f"{self.namespace}:hb:{agent_id}"


def text(value: Any) -> str:
    """A reply value as ``str`` (clients may hand back bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


# -- the reader --------------------------------------------------------------------------------


class Entry(NamedTuple):
    """One stream entry. ``fields`` is ``None`` for a pending entry deleted since it was
    delivered (the reader acknowledges those itself and never yields them)."""

    stream: str
    id: str
    fields: dict[str, str] | None


class ReaderStalledError(coredis.exceptions.ConnectionError):
    """A read gave no answer within its ``BLOCK`` time plus ``read_timeout``. The reader's
    client may have lost a pool slot to it: leave the reader (that throws the client away)
    and open a new one."""


async def ensure_group(client: coredis.Redis[Any], stream: str, start: str = "0") -> bool:
    """Create the group on ``stream`` (and the stream) unless it exists; True if created."""
    try:
        await client.xgroup_create(stream, GROUP, start, mkstream=True)
    except StreamDuplicateConsumerGroupError:
        return False
    return True


def _leaves(error: BaseException) -> Iterable[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def _unwrap(group: BaseExceptionGroup[Any], original: BaseException | None) -> None:
    """Raise ``original`` itself if the group holds nothing else (coredis's pool wraps it)."""
    if original is not None and all(leaf is original for leaf in _leaves(group)):
        raise original.with_traceback(original.__traceback__)


def _raw(response: Any, **_: Any) -> Any:
    return response


def _parse_streams(reply: Any) -> list[Entry]:
    """The entries of a raw ``XREADGROUP`` reply (RESP3 map or RESP2 array)."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else ((r[0], r[1]) for r in reply)
    out: list[Entry] = []
    for stream, entries in pairs:
        name = text(stream)
        for item in entries or ():
            raw = item[1]
            fields: dict[str, str] | None
            if raw is None:
                fields = None
            elif isinstance(raw, dict):
                fields = {text(k): text(v) for k, v in raw.items()}
            else:
                values = iter(raw)
                # Strings already (the clients here decode): the common case, kept cheap.
                fields = dict(zip(values, values, strict=True))
                if not all(type(key) is str for key in fields):
                    fields = {text(k): text(v) for k, v in fields.items()}
            out.append(Entry(name, text(item[0]), fields))
    return out


@final
class GroupReader:
    """Read streams through the consumer group, safely under cancellation (module docstring).

    ::

        async with GroupReader(url, [stream], consumer) as reader:
            async for batch in reader:      # list[Entry], up to ``count`` per stream
                ...                          # handle, then ack (or settle by a script
                await reader.ack(batch)      # and ``reader.forget(batch)``)

    Delivery is at least once: an entry yielded and not acknowledged before the reader ends
    is yielded again by the next reader of that consumer (from its pending list). Entries
    yielded and neither acknowledged nor forgotten are skipped by the periodic walks of the
    pending list, so a slow handler does not see its own entries twice.

    Args:
        url: the Redis URL.
        streams: the streams to read.
        consumer: the consumer name (one reader per name at a time).
        count: entries per stream per read.
        block_ms: how long a read waits for new entries (the cancel latency inside the block).
        read_timeout: a read that has not answered ``block_ms`` plus this much later raises
            :class:`ReaderStalledError`.
        pending_every: seconds between walks of the pending list (``None``: only at start).
    """

    def __init__(
        self,
        url: str,
        streams: Sequence[str],
        consumer: str,
        *,
        count: int = 100,
        block_ms: int = 100,
        read_timeout: float = 5.0,
        pending_every: float | None = 30.0,
    ) -> None:
        if not streams:
            raise ValueError("a reader needs at least one stream")
        if block_ms <= 0:
            raise ValueError("block_ms must be > 0 (BLOCK 0 would wait forever)")
        self.url = url
        self.streams = list(streams)
        self.consumer = consumer
        self.count = count
        self.block_ms = block_ms
        self.read_timeout = read_timeout
        self.pending_every = pending_every
        self._client: coredis.Redis[str] | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._inflight: set[tuple[str, str]] = set()
        self._cursor: dict[str, str] = {}
        self._next_walk = math.inf
        #: How many reads were made (tests look at it).
        self.reads = 0

    @property
    def client(self) -> coredis.Redis[str]:
        """The reader's own client (valid inside its block)."""
        if self._client is None:
            raise RuntimeError("the reader is not open")
        return self._client

    async def __aenter__(self) -> Self:
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            client: coredis.Redis[str] = coredis.Redis.from_url(
                self.url,
                decode_responses=True,
                retry_policy=NoRetryPolicy(),
                client_name=f"trioflow-reader:{self.consumer}",
            )
            await stack.enter_async_context(client)
            for stream in self.streams:
                await ensure_group(client, stream)
        except BaseException as exc:
            try:
                try:
                    await stack.__aexit__(type(exc), exc, exc.__traceback__)
                except BaseExceptionGroup as group:
                    _unwrap(group, exc)
                    raise
                raise
            except Exception:
                # coredis reports a cancel during connect as "Unable to establish a
                # connection": report the cancel instead.
                await trio.lowlevel.checkpoint_if_cancelled()
                raise
        self._stack, self._client = stack, client
        self._inflight.clear()  # a new session: whatever was not acknowledged comes again
        self._start_walk()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack, self._client = self._stack, None, None
        assert stack is not None
        try:
            return await stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            _unwrap(group, exc)
            raise

    def __aiter__(self) -> AsyncIterator[list[Entry]]:
        return self

    async def __anext__(self) -> list[Entry]:
        while True:
            await trio.lowlevel.checkpoint_if_cancelled()
            if not self._cursor and trio.current_time() >= self._next_walk:
                self._start_walk()
            try:
                batch = await (self._walk() if self._cursor else self._read_new())
            except Exception:
                # A cancel of the whole reader also cancels its client's connection tasks,
                # so the shielded read fails with "Connection lost": report the cancel.
                await trio.lowlevel.checkpoint_if_cancelled()
                raise
            if batch:
                self._inflight.update((entry.stream, entry.id) for entry in batch)
                return batch

    def _start_walk(self) -> None:
        self._cursor = dict.fromkeys(self.streams, "0-0")
        every = self.pending_every
        self._next_walk = trio.current_time() + every if every else math.inf

    async def _read(self, ids: Mapping[str, str], block_ms: int | None) -> list[Entry]:
        """One ``XREADGROUP`` that no outer cancel can interrupt (a shielded scope with a
        deadline): see the module docstring for why."""
        client = self.client
        args: list[Any] = [b"GROUP", GROUP, self.consumer, b"COUNT", self.count]
        if block_ms is not None:
            args += [b"BLOCK", block_ms]
        args += [b"STREAMS", *ids.keys(), *ids.values()]
        self.reads += 1
        limit = (block_ms or 0) / 1000 + self.read_timeout
        with trio.CancelScope(shield=True, deadline=trio.current_time() + limit):
            try:
                reply = await client.create_request(b"XREADGROUP", *args, callback=_raw)
            except ResponseError as exc:
                message = str(exc)
                if "NOGROUP" in message or "no longer exists" in message:
                    # The stream was deleted (an inbox voided), or Redis lost its data.
                    for stream in ids:
                        await ensure_group(client, stream)
                    return []
                raise
            return _parse_streams(reply)
        raise ReaderStalledError(f"XREADGROUP on {list(ids)} gave no answer in {limit:.1f} s")

    async def _read_new(self) -> list[Entry]:
        return await self._read(dict.fromkeys(self.streams, ">"), self.block_ms)

    async def _walk(self) -> list[Entry]:
        """The next page of this consumer's pending list (entries it was handed and never
        acknowledged), skipping those yielded and still being handled."""
        entries = await self._read(self._cursor, None)
        out: list[Entry] = []
        gone: dict[str, list[str]] = {}
        last: dict[str, str] = {}
        for entry in entries:
            last[entry.stream] = entry.id
            if (entry.stream, entry.id) in self._inflight:
                continue
            if entry.fields is None:
                gone.setdefault(entry.stream, []).append(entry.id)
                continue
            out.append(entry)
        for stream in list(self._cursor):
            if stream in last:
                self._cursor[stream] = last[stream]
            else:
                del self._cursor[stream]  # that stream's pending list is done
        for stream, ids in gone.items():
            with trio.CancelScope(shield=True):
                await self.client.xack(stream, GROUP, ids)
        return out

    async def ack(
        self, entries: Iterable[Entry], *, client: coredis.Redis[Any] | None = None
    ) -> None:
        """``XACK`` and ``XDEL`` the entries (one pipeline), shielded, so that a cancel never
        leaves it unknown whether it happened. Streams then hold only unhandled entries and
        need no trimming. ``client``: a longer-lived one, when the ack must outlive a cancel
        of the whole reader (which tears down the reader's own connections)."""
        by_stream: dict[str, list[str]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.id)
        if not by_stream:
            return
        try:
            with trio.CancelScope(shield=True):
                async with (client or self.client).pipeline(transaction=False) as pipe:
                    for stream, ids in by_stream.items():
                        pipe.xack(stream, GROUP, ids)
                        pipe.xdel(stream, ids)
        except Exception:
            await trio.lowlevel.checkpoint_if_cancelled()
            raise
        self.forget((stream, entry_id) for stream, ids in by_stream.items() for entry_id in ids)

    def forget(self, entries: Iterable[Entry | tuple[str, str]]) -> None:
        """The entries were settled elsewhere (a script acknowledged them)."""
        for entry in entries:
            self._inflight.discard((entry[0], entry[1]))


# -- the scripts -------------------------------------------------------------------------------

#: KEYS: task hash, open set.  ARGV: payload, score (submission order), capability.
#: A new submission under an id replaces a finished task of that id (ids are unique among
#: unfinished tasks); one that is still open is left alone (a coordinator that adopted it
#: after a restart submits nothing again). -> 1 written, 0 left alone.
SUBMIT_LUA: Final = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' or state == 'assigned' then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'queued', 'task', ARGV[1], 'attempt', 0)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

#: KEYS: task hash, the owner's inbox.  ARGV: owner, token, task id, attempt.
#: -> {1, entry id} (the same entry again for a repeated call), or {0, state, result} when
#: the task has finished (a report of an earlier owner got there first).
ASSIGN_LUA: Final = """
local h = redis.call('HMGET', KEYS[1], 'state', 'owner', 'token', 'entry', 'task', 'result')
local state = h[1]
if not state then return {0, 'missing', false} end
if state ~= 'queued' and state ~= 'assigned' then return {0, state, h[6]} end
if h[2] == ARGV[1] and h[3] == ARGV[2] then return {1, h[4]} end
local id = redis.call('XADD', KEYS[2], '*', 'k', 'work', 't', ARGV[3], 'tok', ARGV[2],
                      'n', ARGV[4], 'd', h[5])
redis.call('HSET', KEYS[1], 'state', 'assigned', 'owner', ARGV[1], 'token', ARGV[2],
           'entry', id, 'stream', KEYS[2], 'attempt', ARGV[4])
return {1, id}
"""

#: KEYS: task hash, the entry's stream (an inbox), the inbound stream, open set.
#: ARGV: entry id, agent, token, outcome (done | failed | timeout | handback), data, task id.
#: -> 1 accepted, 0 stale, 2 duplicate, 3 unknown task. Accepted and stale reports append
#: one entry to the inbound stream (a stale one frees the slot the coordinator kept for it);
#: a stale caller's entry is settled unless it is the entry of a live assignment (entry ids
#: are unique per stream only, so the stream is compared too). The entry of a task the
#: coordinator finished (cancelled, say) is settled: left pending, a worker whose reader
#: reconnects would walk it again and run the cancelled task.
REPORT_LUA: Final = """
local function settle()
  redis.call('XACK', KEYS[2], 'trioflow', ARGV[1])
  redis.call('XDEL', KEYS[2], ARGV[1])
end
local function report(valid)
  redis.call('XADD', KEYS[3], '*', 'k', 'report', 'a', ARGV[2], 't', ARGV[6], 'tok', ARGV[3],
             'o', ARGV[4], 'v', valid, 'd', ARGV[5])
end
local h = redis.call('HMGET', KEYS[1], 'state', 'owner', 'token', 'entry', 'stream')
local state = h[1]
if not state then
  settle()
  return 3
end
if h[2] ~= ARGV[2] or h[3] ~= ARGV[3] then
  if state ~= 'assigned' or h[4] ~= ARGV[1] or h[5] ~= KEYS[2] then settle() end
  report(0)
  return 0
end
if state ~= 'assigned' then
  settle()
  return 2
end
if ARGV[4] == 'done' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[5])
  redis.call('ZREM', KEYS[4], ARGV[6])
else
  redis.call('HSET', KEYS[1], 'state', 'queued', 'owner', '', 'token', '', 'error', ARGV[5])
end
settle()
report(1)
return 1
"""

#: KEYS: task hash, open set.  ARGV: state (failed | timeout | cancelled), error, task id.
#: The coordinator's final word on a task that did not complete. It holds even over a
#: result its agent reported meanwhile (the coordinator cancelled the task, or failed it
#: when its agent went silent, before that report reached it): the coordinator has told its
#: caller how the task ended, and Redis must not later say otherwise (``coord.result``).
#: -> 1, or 0 if it overrode a result.
FINISH_LUA: Final = """
local state = redis.call('HGET', KEYS[1], 'state')
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'error', ARGV[2], 'owner', '', 'token', '')
redis.call('HDEL', KEYS[1], 'result')
redis.call('ZREM', KEYS[2], ARGV[3])
if state == 'done' then return 0 end
return 1
"""

#: KEYS: lease key.  ARGV: session, beat number, ttl ms.
#: The worker's heartbeat: renew the key if it is ours or free. -> 1, or 0 if another
#: session (a second worker with the same agent id) holds it.
BEAT_LUA: Final = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ' ' then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[3])
return 1
"""

#: KEYS: lease key.  ARGV: session.  A worker that stops gives up its lease at once (so a
#: restarted worker need not wait for it to lapse). -> 1 deleted, 0 not ours.
RELEASE_LUA: Final = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

#: KEYS: lock key.  ARGV: holder, ttl ms (0: release).
#: -> 1 still ours (or taken again after it lapsed), 0 another holder has it.
LOCK_LUA: Final = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) return 1 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v and ARGV[2] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class Report(IntEnum):
    """What :data:`REPORT_LUA` answered."""

    STALE = 0
    ACCEPTED = 1
    DUPLICATE = 2
    UNKNOWN = 3


#: One script call: (script name, keys, args).
Call = tuple[str, list[str], list[Any]]


def batched(source: str) -> str:
    """The script ``source`` made to run for many calls in one ``EVALSHA``: ``ARGV[1]`` and
    ``ARGV[2]`` say how many keys and arguments one call takes, the calls' keys and
    arguments follow one after the other, and it returns the list of their replies.

    Why: coredis spends ~35 µs of Python on each command it sends (measured: 20,000
    ``EVALSHA`` s in pipelines were 0.75 of the coordinator's 2.4 s of CPU for 10,000 tasks),
    so one command per call capped a coordinator at ~3,000 tasks/s; one per batch does not."""
    return (
        "local function one(KEYS, ARGV)\n"
        + source
        + "\nend\n"
        + """
local nk, na = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 0, (#ARGV - 2) / na - 1 do
  local k, a = {}, {}
  for j = 1, nk do k[j] = KEYS[i * nk + j] end
  for j = 1, na do a[j] = ARGV[2 + i * na + j] end
  local reply = one(k, a)
  if reply == nil then reply = false end
  out[i + 1] = reply
end
return out
"""
    )


@final
class Scripts:
    """The Lua scripts, run in batches: one pipeline of ``EVALSHA`` per batch, the scripts
    loaded once, and again after ``NOSCRIPT`` (a restarted Redis has none). The scripts
    that run once per task also have a batched form (``"assign*"``, see :func:`batched`)."""

    SOURCES: Final = {
        "submit": SUBMIT_LUA,
        "assign": ASSIGN_LUA,
        "report": REPORT_LUA,
        "finish": FINISH_LUA,
        "beat": BEAT_LUA,
        "release": RELEASE_LUA,
        "lock": LOCK_LUA,
        "submit*": batched(SUBMIT_LUA),
        "assign*": batched(ASSIGN_LUA),
        "report*": batched(REPORT_LUA),
        "finish*": batched(FINISH_LUA),
    }

    def __init__(self, client: coredis.Redis[Any]) -> None:
        self.client = client
        self._sha: dict[str, str] = {}

    @property
    def loaded(self) -> bool:
        return bool(self._sha)

    def sha(self, name: str) -> str:
        return self._sha[name]

    async def load(self) -> None:
        """Load every script (again: a restarted Redis has none)."""
        for name, source in self.SOURCES.items():
            self._sha[name] = text(await self.client.script_load(source))

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        (reply,) = await self.run_many([(name, keys, args)])
        return reply

    async def run_many(self, calls: Sequence[Call]) -> list[Any]:
        """Run the calls in one pipeline; raise the first error any of them got. Every
        script is idempotent, so a batch that met ``NOSCRIPT`` is simply sent again."""
        if not calls:
            return []
        if not self._sha:
            await self.load()
        for attempt in range(2):
            async with self.client.pipeline(transaction=False, raise_on_error=False) as pipe:
                requests = [
                    pipe.evalsha(self._sha[name], keys=keys, args=args)
                    for name, keys, args in calls
                ]
            replies = [await _reply(request) for request in requests]
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in replies):
                await self.load()
                continue
            for reply in replies:
                if isinstance(reply, BaseException):
                    raise reply
            return replies
        raise AssertionError("unreachable")


async def _reply(request: Any) -> Any:
    try:
        return await request
    except coredis.exceptions.RedisError as exc:
        return exc


async def dead_letter(
    client: coredis.Redis[Any], keys: Keys, entry: Entry, reason: str, *, maxlen: int = 10_000
) -> None:
    """Park ``entry`` (its stream, id and raw fields) with ``reason`` on the dead-letter
    stream (capped at about ``maxlen``), and acknowledge and delete the original, in one
    ``MULTI``: the garbage is out of the way and kept for a human to look at."""
    raw = json.dumps(entry.fields, ensure_ascii=False, default=str)
    async with client.pipeline(transaction=True) as pipe:
        pipe.xadd(
            keys.dead,
            {"reason": reason, "stream": entry.stream, "id": entry.id, "fields": raw},
            trim_strategy=coredis.PureToken.MAXLEN,
            trim_operator=coredis.PureToken.APPROXIMATELY,
            threshold=maxlen,
        )
        pipe.xack(entry.stream, GROUP, [entry.id])
        pipe.xdel(entry.stream, [entry.id])


def describe(value: Enum | object) -> str:
    """A capability or agent id as a string for log lines and wire fields."""
    return value.value if isinstance(value, Enum) else str(value)


@contextlib.asynccontextmanager
async def open_client(client: coredis.Redis[Any]) -> AsyncIterator[coredis.Redis[Any]]:
    """Enter ``client`` so that an exception of the body comes out as itself, not inside
    the ``ExceptionGroup`` that coredis's connection pool makes of it."""
    try:
        async with client:
            yield client
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


#: The writes that :func:`send_writes` knows: a script by name, ``xadd`` and ``del``.
Write = tuple[str, tuple[Any, ...], Any]


async def send_writes(
    client: coredis.Redis[Any], scripts: Scripts, batch: Sequence[Write]
) -> list[Any]:
    """Send ``batch`` in one pipeline, in order: ``(script name, (keys, args), _)``,
    ``("xadd", (stream, fields), _)`` or ``("del", (key,), _)``; return the replies.

    A script the server did not have (``NOSCRIPT``: Redis restarted) is loaded and that call
    alone sent again, in order: every script is idempotent, and nothing else is sent twice.

    Raises:
        coredis.exceptions.ConnectionError: the connection was lost (send the batch again).
        coredis.exceptions.RedisError: any other error a command got.
    """
    if not scripts.loaded:
        await scripts.load()
    # Runs of calls of one script that has a batched form become one command each.
    groups: list[tuple[str, list[Any], list[Any], int]] = []  # name, keys, args, calls
    for command, args, _ in batch:
        if command in _BATCHED:
            keys, argv = args
            last = groups[-1] if groups else None
            if last is not None and last[0] == command and last[3]:
                last[1].extend(keys)
                last[2].extend(argv)
                groups[-1] = (command, last[1], last[2], last[3] + 1)
            else:
                groups.append((command, list(keys), [len(keys), len(argv), *argv], 1))
        else:
            groups.append((command, [args], [], 0))
    async with client.pipeline(transaction=False, raise_on_error=False) as pipe:
        requests = [_request(pipe, scripts, group) for group in groups]
    replies = [await _reply(request) for request in requests]
    out: list[Any] = []
    for group, reply in zip(groups, replies, strict=True):
        if isinstance(reply, NoScriptError):
            await scripts.load()
            reply = await _request(client, scripts, group)
        elif isinstance(reply, BaseException):
            raise reply
        if group[3]:
            out.extend(reply)
        else:
            out.append(reply)
    return out


_BATCHED: Final = frozenset({"submit", "assign", "report", "finish"})


def _request(target: Any, scripts: Scripts, group: tuple[str, list[Any], list[Any], int]) -> Any:
    """The command for one group of :func:`send_writes` on ``target`` (a pipeline or a
    client)."""
    command, keys, argv, calls = group
    if calls:
        return target.evalsha(scripts.sha(command + "*"), keys=keys, args=argv)
    (args,) = keys
    if command == "xadd":
        return target.xadd(args[0], args[1])
    if command == "del":
        return target.delete([args[0]])
    return target.evalsha(scripts.sha(command), keys=args[0], args=args[1])
