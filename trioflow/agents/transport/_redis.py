"""RedisTransport: a coordinator and agents in other processes, over Redis Streams.

The coordinator decides everything, as with any transport (placement, fencing tokens,
retries, who is online); Redis carries its decisions out and keeps what must outlive a
process. The wire, under a namespace ``ns`` (``_streams.Keys`` names every key):

=====================  ==========================================================================
``ns:settings``         hash: heartbeat interval and timeout, task timeout, epoch. Workers read it,
                        so a worker needs no timing flags, and re-register when the epoch changes.
``ns:coordinator``      the lock: one live coordinator per namespace (``SET NX PX``, renewed).
``ns:epoch``            counter, incremented by each coordinator that starts.
``ns:in``               stream: registrations, reports, messages and requests from the agents,
                        read by the coordinator through the group (consumer ``coordinator``).
``ns:agent:{id}``       stream: one agent's inbox (work, revokes, messages, replies), read by its
                        worker through the group (consumer = the agent id).
``ns:hb:{id}``          string with a TTL: the agent's heartbeat, and its worker's lease on the id.
``ns:task:{id}``        hash: a task's payload, state, owner, fencing token, result or error.
``ns:open``             sorted set: the unfinished tasks, in submission order.
``ns:dead``             stream: entries that could not be handled, each with the reason.
=====================  ==========================================================================

**Fencing.** A wire token is ``"{epoch}:{n}"``: ``n`` is the coordinator's own token for the
assignment and the epoch tells coordinators apart, so a report meant for an earlier
coordinator never matches a token of this one. The ``ASSIGN`` script records owner and token
in the task's hash as it appends the work entry; the worker's ``REPORT`` script records a
result only under that owner and token. The coordinator checks the token again
(``Dispatcher``): a result counts when both agree, and a task completes exactly once. The one
race the two layers see differently is settled by Redis: a report that reached Redis before
a reassignment of the same task did completes it there, and the reassignment's ``ASSIGN``
finds the task done and hands its result to the coordinator under the new token. A cancel
or a final failure is the coordinator's own word, told to its caller at once: ``FINISH``
records it even over a result that reached Redis first, so ``coord.result(task_id)`` never
says otherwise later.

**Heartbeats** are keys with a TTL of ``heartbeat_timeout``, renewed by each beat of the
agent's own heartbeat loop; the coordinator reads them all with one ``MGET`` every tick
(a quarter of the interval, 50 ms at least) and reports a heartbeat when a key's value
changed. The key is also the worker's lease: a worker that has not renewed it for
``heartbeat_timeout`` (Redis unreachable, the process stalled) cancels its own attempts,
since the coordinator will have given them to others. Measured with SIGKILLed workers:
a silent agent is found 0.9-1.0 s after its last beat with a 1 s timeout and a 50 ms tick.

**Voiding an agent's inbox.** When the coordinator takes an agent offline it deletes the
agent's inbox (stream, group and pending list in one ``DEL``) and appends a ``detach``
entry naming the worker session it voids. The spike behind this design claimed the silent
consumer's entries with ``XAUTOCLAIM`` to a reaper consumer instead; with one inbox per
agent and the coordinator reassigning through its dispatcher, nobody needs the entries: one
``DEL`` voids them at once, with no minimum idle time to wait out, and a blocked reader of
the deleted stream is woken (``UNBLOCKED``) and re-creates its group.

**Batching.** Round trips decide throughput (measured: one entry at a time ~1,000 jobs/s;
``COUNT 100`` with pipelined acks and results 12-21k): every write the coordinator makes
(submissions, assignments, revokes, messages) is queued by a synchronous call and written by
one writer task, in order, one pipeline per batch; a lost connection keeps the batch and
sends it again (every script is idempotent), so a Redis restart loses nothing that was
queued.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, Final, final
from urllib.parse import urlsplit

import trio

from ..._errors import AgentUnavailableError, SchedulerClosedError, TaskRejected, TrioflowError
from .._messages import Message
from .._records import AssignmentStatus
from ._codec import Codec, JsonCodec, error_data, error_from, message_data, message_from
from ._protocol import (
    AgentEndpoint,
    AgentRegistration,
    AgentSettings,
    Inbound,
    Transport,
    WorkItem,
    implements,
)
from ._store import StoredOutcome, TaskStore

if TYPE_CHECKING:
    import coredis

    from ._streams import Entry, Keys, Scripts

__all__ = ["RedisTransport"]

logger = logging.getLogger("trioflow.agents.redis")

#: Writes sent in one pipeline at most.
WRITE_BATCH: Final = 500
#: The consumer name of the coordinator on the inbound stream (stable across restarts, so a
#: restarted coordinator walks what its predecessor read and did not acknowledge).
COORDINATOR: Final = "coordinator"

_TERMINAL: Final = {
    "done": AssignmentStatus.COMPLETED,
    "failed": AssignmentStatus.FAILED,
    "timeout": AssignmentStatus.TIMEOUT,
    "cancelled": AssignmentStatus.CANCELLED,
}
_FINAL_STATE: Final = {
    AssignmentStatus.FAILED: "failed",
    AssignmentStatus.TIMEOUT: "timeout",
    AssignmentStatus.CANCELLED: "cancelled",
}


def import_redis() -> None:
    """Raise a clear ``ImportError`` when coredis (the ``redis`` extra) is missing."""
    try:
        import coredis  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("RedisTransport needs coredis: pip install 'trioflow[redis]'") from None


def check_redis_url(url: object) -> str:
    """``url`` if it is a Redis URL as coredis takes it (``redis://``, ``rediss://`` or
    ``unix://``). Checked up front: coredis fails on a malformed one only when it first
    connects, with a bare ``AssertionError``."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ValueError(
            f"not a Redis URL (redis://host:port/db, rediss://... or unix://path): {url!r}"
        )
    return url


def parse_token(token: str) -> tuple[int, int]:
    """``"{epoch}:{n}"`` -> ``(epoch, n)``; ``ValueError`` for anything else."""
    epoch, sep, n = token.partition(":")
    if not sep:
        raise ValueError(f"not a fencing token: {token!r}")
    return int(epoch), int(n)


# One queued write: (command, arguments, what to do with the reply or None).
_Write = tuple[str, tuple[Any, ...], Callable[[Any], None] | None]


@final
@implements(Transport, TaskStore)
class RedisTransport:
    """Agents in other processes and on other hosts, through one Redis server.

    ``open_coordinator(transport=RedisTransport(url))`` on the coordinator's side;
    ``await serve_agents(agents, transport=RedisTransport(url))`` (or the command
    ``trioflow worker --redis URL --agent module:Class``) on each worker's. Everything the
    in-memory coordinator promises holds, with one stated difference: **execution** is at
    least once (an attempt cut short by a lost lease, or by a worker or coordinator that
    died, may have partly run, and runs again), **completion** stays exactly once.

    Tasks, results and messages cross the wire as JSON (``codec``): a task that does not
    encode fails at ``submit`` with ``TypeError``; a result that does not encode fails its
    attempt with one. Task ids are strings on the wire.

    A coordinator that starts on a namespace takes the tasks its predecessor left unfinished
    (``coord.result(task_id)`` reads the outcome of any task of the namespace); with Redis
    persistence on (``appendonly yes``), a Redis restart loses nothing.

    Args:
        url: the Redis URL (``redis://host:port/db``).
        namespace: the prefix of every key; coordinators and workers of one namespace work
            together, namespaces never meet.
        codec: how payloads cross the wire (default :class:`JsonCodec`); the coordinator
            and every worker of a namespace must use the same.

    One instance serves one coordinator or one worker, once.

    Raises:
        TypeError: ``url`` or ``namespace`` is not a string, or ``codec`` not a codec.
        ValueError: ``url`` is not a Redis URL (checked here: a malformed one would fail
            only when coredis first connects); an empty namespace, or one with whitespace.
    """

    def __init__(
        self, url: str, *, namespace: str = "trioflow", codec: Codec | None = None
    ) -> None:
        check_redis_url(url)
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be a string, got {namespace!r}")
        if not namespace or any(ch.isspace() for ch in namespace):
            raise ValueError(f"namespace must be non-empty, without whitespace: {namespace!r}")
        if codec is None:
            codec = JsonCodec()
        elif not isinstance(codec, Codec):
            raise TypeError(f"codec must have encode() and decode(), got {codec!r}")
        self.url = url
        self.namespace = namespace
        self.codec = codec
        self._used = False
        # -- the coordinator's side; set by start() ---------------------------------------
        self._inbound: Inbound | None = None
        self._settings: AgentSettings | None = None
        self._nursery: trio.Nursery | None = None
        self._client: coredis.Redis[str] | None = None
        self._keys: Keys | None = None
        self._scripts: Scripts | None = None
        self._epoch = 0
        self._holder = secrets.token_hex(8)
        #: What the ids this coordinator makes up start with (set with the epoch).
        self._id_prefix = ""
        self._writes: list[_Write] = []
        self._wake = trio.Event()
        self._flushed = trio.Event()
        #: Online remote agents: id -> the worker session that registered it.
        self._online: dict[str, str] = {}
        #: The last value seen of each online agent's heartbeat key.
        self._beats: dict[str, str | None] = {}
        self._recovered: list[tuple[Hashable, Mapping[str, Any]]] = []
        self._requests: dict[str, trio.CancelScope] = {}
        self._served_requests: set[str] = set()
        # Tasks checked at submit and not yet submitted, by id: each is encoded once (a
        # run_all checks all its tasks before it submits any).
        self._encoded: dict[int, tuple[object, str]] = {}
        self._order = 0

    def __repr__(self) -> str:
        return f"<RedisTransport {self.url!r} namespace={self.namespace!r}>"

    def claim(self) -> None:
        """Mark this instance as in use (by a coordinator or a worker).

        Raises:
            RuntimeError: it is in use already.
        """
        self._claim()

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("this RedisTransport is already in use")
        self._used = True

    # == the coordinator's side: the Transport protocol ======================================

    async def start(self, inbound: Inbound, nursery: trio.Nursery, settings: AgentSettings) -> None:
        """Connect, take the namespace's lock (waiting up to ``heartbeat_timeout`` for a
        dead predecessor's to lapse), start a new epoch, publish the settings, read the
        unfinished tasks, and start the reader, the writer, the heartbeat watch and the
        lock's renewal in ``nursery``.

        Raises:
            RuntimeError: another coordinator holds the namespace.
            coredis.exceptions.ConnectionError: Redis cannot be reached.
        """
        import_redis()
        self._claim()
        self._inbound, self._settings, self._nursery = inbound, settings, nursery
        await nursery.start(self._run)

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        import coredis

        from ._streams import Keys, Scripts, open_client

        settings = self._settings
        assert settings is not None
        self._keys = keys = Keys(self.namespace)
        client: coredis.Redis[str] = coredis.Redis.from_url(
            self.url, decode_responses=True, client_name="trioflow-coordinator"
        )
        async with open_client(client):
            self._client = client
            self._scripts = Scripts(client)
            await self._scripts.load()
            await self._acquire_lock(settings.heartbeat_timeout)
            self._epoch = int(await client.incr(keys.epoch))
            # The epoch keeps made-up ids apart across coordinators; the random part keeps
            # them apart from the ids users give (any string: "1-2" is a natural name).
            self._id_prefix = f"{self._epoch}-{secrets.token_hex(4)}-"
            await client.hset(
                keys.settings,
                {
                    "heartbeat_interval": repr(settings.heartbeat_interval),
                    "heartbeat_timeout": repr(settings.heartbeat_timeout),
                    "task_timeout": ""
                    if settings.task_timeout is None
                    else repr(settings.task_timeout),
                    "epoch": str(self._epoch),
                    "codec": type(self.codec).__name__,
                },
            )
            self._recovered = await self._read_open()
            logger.info(
                "coordinator of namespace %r started, epoch %d, %d unfinished task(s) found",
                self.namespace,
                self._epoch,
                len(self._recovered),
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_inbound)
                nursery.start_soon(self._write_loop)
                nursery.start_soon(self._watch_heartbeats, settings)
                nursery.start_soon(self._keep_lock, settings.heartbeat_timeout)
                task_status.started()

    def check_task(self, task: Mapping[str, Any]) -> None:
        """Raise ``TypeError`` if ``task`` does not encode (the encoding is kept for the
        submission that follows, so a task is encoded once)."""
        encoded = self._encoded
        if len(encoded) > 100_000:  # checked and never submitted (a run_all that failed)
            encoded.clear()
        encoded[id(task)] = (task, self.codec.encode(dict(task)))

    def attach(self, registration: AgentRegistration) -> AgentEndpoint:
        raise TypeError(
            "RedisTransport serves agents that register themselves: run them with "
            "trioflow.agents.serve_agents(...) or `trioflow worker --redis URL --agent "
            "module:Class`"
        )

    def deliver_work(self, agent_id: Hashable, item: WorkItem) -> None:
        owner = str(agent_id)
        token = f"{self._epoch}:{item.token}"
        task_id = str(item.task_id)
        keys = self._require_keys()

        def assigned(reply: Any) -> None:
            self._on_assigned(reply, owner, item)

        self._write(
            "assign",
            ([keys.task(task_id), keys.inbox(owner)], [owner, token, task_id, item.attempt]),
            assigned,
        )

    def revoke(self, agent_id: Hashable, token: int) -> None:
        self._xadd(str(agent_id), {"k": "revoke", "tok": f"{self._epoch}:{token}"})

    async def deliver_message(self, agent_id: Hashable, message: Message) -> None:
        await trio.lowlevel.checkpoint()
        if str(agent_id) not in self._online:
            raise AgentUnavailableError(agent_id)
        self._xadd(str(agent_id), {"k": "msg", "d": self.codec.encode(message_data(message))})

    def drain(self, agent_id: Hashable) -> None:
        self._xadd(str(agent_id), {"k": "drain"})

    def detach(self, agent_id: Hashable) -> None:
        """Void the agent's inbox (one ``DEL``: entries, group, pending list) and tell its
        worker, by session, that its assignments are void."""
        owner = str(agent_id)
        session = self._online.pop(owner, None)
        self._beats.pop(owner, None)
        if session is None or self._keys is None:
            return
        self._write("del", (self._keys.inbox(owner),), None)
        self._xadd(owner, {"k": "detach", "s": session})

    def close(self) -> None:
        self._online.clear()

    # == the coordinator's side: the TaskStore protocol =======================================

    def new_task_id(self, key: int) -> Hashable:
        return f"{self._id_prefix}{key}"

    def submitted(self, task_id: Hashable, task: Mapping[str, Any]) -> None:
        held = self._encoded.pop(id(task), None)
        data = held[1] if held is not None and held[0] is task else self.codec.encode(dict(task))
        self._order += 1
        keys = self._require_keys()
        score = self._epoch * 2.0**32 + self._order
        name = str(task_id)
        self._write("submit", ([keys.task(name), keys.open], [data, score, name]), None)

    def finished(
        self, task_id: Hashable, status: AssignmentStatus, error: BaseException | None
    ) -> None:
        state = _FINAL_STATE.get(status)
        if state is None or self._keys is None:
            return  # a completion: the agent's report wrote it
        data = self.codec.encode(error_data(error) if error is not None else None)
        name = str(task_id)
        self._write("finish", ([self._keys.task(name), self._keys.open], [state, data, name]), None)

    async def recover(self) -> list[tuple[Hashable, Mapping[str, Any]]]:
        await trio.lowlevel.checkpoint()
        recovered, self._recovered = self._recovered, []
        return recovered

    async def lookup(self, task_id: Hashable) -> StoredOutcome | None:
        """How ``task_id`` stands in Redis (``None``: Redis does not know it)."""
        client, keys = self._require_client(), self._require_keys()
        fields = await client.hgetall(keys.task(str(task_id)))
        state = fields.get("state")
        if state is None:
            return None
        status = _TERMINAL.get(state)
        if status is None:
            return StoredOutcome(
                AssignmentStatus.ASSIGNED if state == "assigned" else AssignmentStatus.QUEUED
            )
        if status is AssignmentStatus.COMPLETED:
            return StoredOutcome(status, self.codec.decode(fields.get("result", "null")))
        raw = self.codec.decode(fields.get("error", "null"))
        return StoredOutcome(status, None, None if raw is None else error_from(raw))

    async def flush(self) -> None:
        """Wait until every write queued so far is in Redis, then give up the lock (the
        coordinator calls it once every task has ended, before it stops)."""
        if self._client is None:
            await trio.lowlevel.checkpoint()
            return
        while self._writes:
            self._flushed = trio.Event()
            self._wake.set()
            await self._flushed.wait()
        await self._lock("0")

    # == the coordinator's side: the work ====================================================

    def _require_keys(self) -> Keys:
        if self._keys is None:
            raise RuntimeError("the transport has not been started by a coordinator")
        return self._keys

    def _require_client(self) -> coredis.Redis[str]:
        if self._client is None:
            raise RuntimeError("the transport has not been started by a coordinator")
        return self._client

    def _write(
        self, command: str, args: tuple[Any, ...], on_reply: Callable[[Any], None] | None
    ) -> None:
        self._writes.append((command, args, on_reply))
        self._wake.set()

    def _xadd(self, agent_id: str, fields: dict[str, str]) -> None:
        self._write("xadd", (self._require_keys().inbox(agent_id), fields), None)

    async def _write_loop(self) -> None:
        """Write what was queued, in order, one pipeline per batch; on a lost connection
        keep the batch and send it again (with backoff) until Redis is back."""
        backoff = 0.05
        while True:
            if not self._writes:
                self._flushed.set()
                self._wake = trio.Event()
                await self._wake.wait()
            batch = self._writes[:WRITE_BATCH]
            try:
                replies = await self._send(batch)
            except (OSError, TimeoutError, _connection_errors()) as exc:
                logger.warning("writing to Redis failed (%r); retrying in %.2f s", exc, backoff)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.05
            del self._writes[: len(batch)]
            for (_, _, on_reply), reply in zip(batch, replies, strict=True):
                if on_reply is not None:
                    on_reply(reply)

    async def _send(self, batch: list[_Write]) -> list[Any]:
        from ._streams import send_writes

        scripts = self._scripts
        assert scripts is not None
        return await send_writes(self._require_client(), scripts, batch)

    def _on_assigned(self, reply: Any, owner: str, item: WorkItem) -> None:
        """``ASSIGN`` answered. ``[1, entry]``: delivered. ``[0, state, result]``: the task
        had already ended in Redis (a report of its earlier owner got there before this
        reassignment): its outcome goes to the coordinator under the new token, so the
        task completes exactly once, with the result Redis kept."""
        inbound = self._inbound
        assert inbound is not None
        if int(reply[0]) == 1:
            return
        state = str(reply[1])
        if state == "done":
            try:
                result = self.codec.decode(str(reply[2]))
            except ValueError as exc:
                inbound.failure(owner, item.token, TaskRejected(f"undecodable result: {exc}"))
                return
            inbound.result(owner, item.token, result)
        elif state == "missing":
            # Redis lost the task (restarted without persistence): write it again.
            logger.warning("task %r was missing from Redis; submitting it again", item.task_id)
            self.submitted(item.task_id, item.task)
            self.deliver_work(owner, item)
        else:
            inbound.failure(
                owner, item.token, TaskRejected(f"task {item.task_id!r} already ended {state}")
            )

    async def _read_inbound(self) -> None:
        """Read the inbound stream for as long as the coordinator runs, reconnecting (with
        backoff) when Redis goes away; every entry becomes one call of the coordinator's
        ``Inbound``, and garbage goes to the dead-letter stream with the reason."""
        from ._streams import GroupReader, dead_letter

        keys = self._require_keys()
        client = self._require_client()
        backoff = 0.05
        while True:
            try:
                async with GroupReader(self.url, [keys.inbound], COORDINATOR) as reader:
                    backoff = 0.05
                    async for batch in reader:
                        handled: list[Entry] = []
                        for entry in batch:
                            reason = self._handle(entry)
                            if reason is None:
                                handled.append(entry)
                            else:
                                logger.warning(
                                    "dead letter %s %s: %s", entry.stream, entry.id, reason
                                )
                                with trio.CancelScope(shield=True):
                                    await dead_letter(client, keys, entry, reason)
                                reader.forget([entry])
                        await reader.ack(handled, client=client)
            except (OSError, TimeoutError, _connection_errors()) as exc:
                logger.warning(
                    "reading from Redis failed (%r); reconnecting in %.2f s", exc, backoff
                )
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    def _handle(self, entry: Entry) -> str | None:
        """Handle one inbound entry; return why it is garbage, or ``None``."""
        fields = entry.fields or {}
        kind = fields.get("k")
        try:
            if kind == "report":
                self._on_report(fields)
            elif kind == "register":
                self._on_register(fields)
            elif kind == "leave":
                if self._online.get(fields["a"]) == fields["s"]:
                    assert self._inbound is not None
                    self._inbound.leave(fields["a"])
            elif kind == "msg":
                message = message_from(self.codec.decode(fields["d"]))
                assert self._nursery is not None
                self._nursery.start_soon(self._route, message, fields.get("a"), fields.get("r"))
            elif kind == "req":
                self._on_request(fields)
            elif kind == "cancel":
                scope = self._requests.get(fields["r"])
                if scope is not None:
                    scope.cancel()
            else:
                return f"unknown kind {kind!r}"
        except (KeyError, ValueError, TypeError) as exc:
            return f"malformed {kind} entry: {type(exc).__name__}: {exc}"
        return None

    def _on_report(self, fields: dict[str, str]) -> None:
        inbound = self._inbound
        assert inbound is not None
        agent, outcome = fields["a"], fields["o"]
        epoch, token = parse_token(fields["tok"])
        if outcome not in ("done", "failed", "timeout", "handback"):
            raise ValueError(f"unknown outcome {outcome!r}")
        if epoch != self._epoch:
            return  # meant for an earlier coordinator: its tokens mean nothing here
        if outcome == "done":
            inbound.result(agent, token, self.codec.decode(fields["d"]))
        elif outcome == "handback":
            inbound.hand_back(agent, token)
        else:
            error = error_from(self.codec.decode(fields["d"]))
            if outcome == "timeout":
                inbound.timeout(
                    agent,
                    token,
                    error if isinstance(error, TimeoutError) else TimeoutError(str(error)),
                )
            else:
                inbound.failure(agent, token, error)

    def _on_register(self, fields: dict[str, str]) -> None:
        inbound = self._inbound
        assert inbound is not None
        agent, session = fields["a"], fields["s"]
        data = self.codec.decode(fields["d"])
        capabilities = frozenset(data["capabilities"])
        concurrency = data["concurrency"]
        if type(concurrency) is not int:
            raise ValueError(f"concurrency must be an int, got {concurrency!r}")
        if agent in self._online:
            # Registered already: a worker that re-registered for a new epoch, or a restarted
            # worker that took over the lease of the id (its pending work is its own now).
            self._online[agent] = session
            return
        try:
            inbound.register(AgentRegistration(agent, capabilities, concurrency))
        except (ValueError, TypeError, SchedulerClosedError) as exc:
            logger.warning("registration of agent %r refused: %s", agent, exc)
            self._xadd(agent, {"k": "refused", "s": session, "d": self.codec.encode(str(exc))})
            return
        self._online[agent] = session
        self._beats[agent] = None

    def _on_request(self, fields: dict[str, str]) -> None:
        agent, request = fields["a"], fields["r"]
        data = self.codec.decode(fields["d"])
        capability, task = data["capability"], data["task"]
        if not isinstance(task, dict):
            raise TypeError(f"a task must be a mapping, got {task!r}")
        waiter = 0
        with_token = fields.get("w", "")
        if with_token:
            epoch, token = parse_token(with_token)
            waiter = token if epoch == self._epoch else 0
        if request in self._served_requests:
            return  # read again after a reconnect: it is served already
        self._served_requests.add(request)
        assert self._nursery is not None
        self._nursery.start_soon(self._serve_request, agent, request, capability, task, waiter)

    async def _serve_request(
        self, agent: str, request: str, capability: Hashable, task: dict[str, Any], waiter: int
    ) -> None:
        """Run a task an agent delegated with ``request()`` and send the outcome back to
        its inbox (a ``cancel`` entry from the worker cancels it)."""
        inbound = self._inbound
        assert inbound is not None
        reply: dict[str, Any]
        with trio.CancelScope() as scope:
            self._requests[request] = scope
            try:
                value = await inbound.request(agent, capability, task, waiter)
            except Exception as exc:
                reply = {"ok": False, "error": error_data(exc)}
            else:
                reply = {"ok": True, "value": value}
            try:
                encoded = self.codec.encode(reply)
            except TypeError as exc:
                encoded = self.codec.encode({"ok": False, "error": error_data(exc)})
            self._xadd(agent, {"k": "resp", "r": request, "d": encoded})
        self._requests.pop(request, None)
        self._served_requests.discard(request)

    async def _route(
        self, message: Message, sender: str | None = None, request: str | None = None
    ) -> None:
        """Deliver a message an agent of a worker sent. When it asked for an answer (the
        worker's ``send_message`` waits for one), say whether it was delivered, so that an
        unknown or offline receiver is the sender's error, as for a local agent."""
        inbound = self._inbound
        assert inbound is not None
        reply: dict[str, Any]
        try:
            await inbound.send_message(message)
        except TrioflowError as exc:
            if not (sender and request):
                logger.warning(
                    "message from %r to %r not delivered: %s",
                    message.sender,
                    message.receiver,
                    exc,
                )
                return
            reply = {"ok": False, "error": error_data(exc)}
        else:
            reply = {"ok": True, "value": None}
        if sender and request:
            self._xadd(sender, {"k": "resp", "r": request, "d": self.codec.encode(reply)})

    async def _watch_heartbeats(self, settings: AgentSettings) -> None:
        """Every tick, one ``MGET`` of the online agents' heartbeat keys; a value that
        changed is a heartbeat. (The coordinator's supervisor declares the silence.)"""
        tick = max(settings.heartbeat_interval / 4, 0.05)
        keys, client = self._require_keys(), self._require_client()
        inbound = self._inbound
        assert inbound is not None
        while True:
            agents = list(self._online)
            if agents:
                try:
                    values: tuple[str | None, ...] = await client.mget(
                        [keys.lease(agent) for agent in agents]
                    )
                except (OSError, TimeoutError, _connection_errors()):
                    values = (None,) * len(agents)
                for agent, value in zip(agents, values, strict=True):
                    if value is not None and agent in self._beats and value != self._beats[agent]:
                        self._beats[agent] = value
                        inbound.heartbeat(agent)
            await trio.sleep(tick)

    async def _lock(self, ttl_ms: str) -> bool:
        scripts, keys = self._scripts, self._require_keys()
        assert scripts is not None
        reply = await scripts.run("lock", [keys.coordinator], [self._holder, ttl_ms])
        return bool(int(reply))

    async def _acquire_lock(self, ttl: float) -> None:
        ttl_ms = str(max(int(ttl * 1000), 100))
        deadline = trio.current_time() + ttl + 1.0
        while not await self._lock(ttl_ms):
            if trio.current_time() > deadline:
                raise RuntimeError(
                    f"namespace {self.namespace!r} already has a live coordinator "
                    f"(it holds {self._require_keys().coordinator!r}); use another namespace"
                )
            await trio.sleep(0.1)

    async def _keep_lock(self, ttl: float) -> None:
        """Renew the lock every third of its TTL. Losing it to another coordinator is fatal:
        two coordinators would hand out clashing work."""
        ttl_ms = str(max(int(ttl * 1000), 100))
        while True:
            await trio.sleep(ttl / 3)
            try:
                ours = await self._lock(ttl_ms)
            except (OSError, TimeoutError, _connection_errors()):
                continue
            if not ours:
                raise RuntimeError(f"another coordinator took over namespace {self.namespace!r}")

    async def _read_open(self) -> list[tuple[Hashable, Mapping[str, Any]]]:
        """The unfinished tasks of earlier coordinators, oldest first. One that does not
        decode is finished as failed, with the reason."""
        client, keys = self._require_client(), self._require_keys()
        ids = [str(task_id) for task_id in await client.zrange(keys.open, 0, -1)]
        found: list[tuple[Hashable, Mapping[str, Any]]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            async with client.pipeline(transaction=False) as pipe:
                requests = [pipe.hget(keys.task(task_id), "task") for task_id in chunk]
            for task_id, request in zip(chunk, requests, strict=True):
                raw = await request
                try:
                    if raw is None:
                        raise ValueError("its hash is gone")
                    task = self.codec.decode(str(raw))
                    if not isinstance(task, dict) or "type" not in task:
                        raise ValueError(f"not a task: {task!r}")
                except ValueError as exc:
                    logger.warning("unfinished task %r cannot be resumed: %s", task_id, exc)
                    self.finished(task_id, AssignmentStatus.FAILED, TaskRejected(str(exc)))
                    continue
                found.append((task_id, task))
        return found


def _connection_errors() -> type[Exception]:
    import coredis.exceptions

    return coredis.exceptions.ConnectionError
