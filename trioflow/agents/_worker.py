"""serve_agents: the worker side of RedisTransport, agents of this process served through Redis.

A worker runs each of its agents over an :class:`~trioflow.agents.transport.AgentEndpoint`
exactly as the in-process coordinator would, so an agent class runs unchanged here. Per
agent, the worker keeps:

* **a lease**: the agent's heartbeat key (``ns:hb:{id}``), whose value names this worker's
  session. Each beat of the agent's own heartbeat loop renews it (a Lua compare-and-set, so
  two workers never serve one agent id: the second waits until the first one's lease
  lapses). A worker that has not renewed it for ``heartbeat_timeout`` (Redis unreachable,
  the process stopped) knows the coordinator has declared the agent silent and given its
  work to others, so it cancels its own attempts at once: **a worker that loses its lease
  cancels its attempts**, rather than finish work whose results would be discarded;
* **a session**: registering makes a new one. The coordinator names it when it voids the
  agent (a ``detach`` entry), so a ``detach`` left in the inbox for an earlier session of the
  same agent id never touches this one;
* **its inbox reader**, a :class:`~trioflow.agents.transport._streams.GroupReader` whose
  consumer name is the agent id: a restarted worker walks the pending list its predecessor
  left and takes up that work (its fencing tokens are still valid unless the coordinator has
  reassigned it meanwhile);
* **its attempts**, by local token (what the agent's loops know), by wire token (what revokes
  name) and by task id. A task that comes again under a new token while it runs here (a
  restarted coordinator reassigns every unfinished task) keeps running: the attempt takes
  the new token, and runs once.

Reports, registrations and messages go out through one writer task per worker, in order,
one pipeline per batch, kept and sent again across a lost connection. Settings come from
``ns:settings``, read every heartbeat interval: a new epoch (a restarted coordinator) makes
every agent register again.

**Shutting down** (the worker's scope cancelled: SIGINT or SIGTERM in ``trioflow worker``):
the agents' attempts are cancelled with everything else; then, on a client of its own
opened under a shield (a cancel of a scope around a coredis client also cancels that
client's connection tasks, so the worker's own client is of no use by then), the worker
tells the coordinator each agent is leaving and hands back every assignment it had not
finished, so they go to other agents without counting as attempts, and gives up the leases.

**An agent leaving by itself** (``await agent.disconnect()``; the worker is the agent's
``coordinator``, as the in-process coordinator is for its agents) does the same for that agent
alone, as the in-process coordinator has it leave: it tells the coordinator it is leaving
(which gives it nothing new), hands back the work it holds but has not started, finishes what
it runs and reports it, then stops for good (its lease is given up, and it never registers
again, with this coordinator or a later one). The worker's other agents run on; when the
last one has left, :func:`serve_agents` returns.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import secrets
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Final, final

import coredis
import trio

from .._errors import (
    AgentUnavailableError,
    RegistrationRefused,
    TaskRejected,
    UnknownAgentError,
)
from ._agent import Agent, runs_below
from ._messages import Message
from .transport._codec import Codec, error_data, error_from, message_data, message_from
from .transport._protocol import AgentEndpoint, AgentSettings, WorkItem
from .transport._redis import RedisTransport
from .transport._streams import (
    Entry,
    GroupReader,
    Keys,
    Scripts,
    Write,
    dead_letter,
    open_client,
    send_writes,
)

__all__ = ["RegistrationRefused", "serve_agents"]

logger = logging.getLogger("trioflow.agents.worker")

#: How often a worker looks for a coordinator while none has published its settings.
WAIT_FOR_SETTINGS: Final = 0.5
#: The bound on the hand-back when a worker shuts down.
SHUTDOWN_TIMEOUT: Final = 5.0
#: How many revoked wire tokens an agent remembers (see ``_Served.revoked``).
REVOKED_KEPT: Final = 10_000

_CONNECTION_ERRORS: Final = (OSError, TimeoutError, coredis.exceptions.ConnectionError)


@final
class _Attempt:
    """One assignment this worker holds for an agent: which task, under which wire token,
    from which inbox entry (what its report settles)."""

    __slots__ = ("entry", "task_id", "token")

    def __init__(self, task_id: str, token: str, entry: Entry) -> None:
        self.task_id = task_id
        self.token = token
        self.entry = entry


def _settings_from(raw: Mapping[str, str]) -> tuple[AgentSettings, int] | None:
    try:
        timeout = raw.get("task_timeout", "")
        settings = AgentSettings(
            float(raw["heartbeat_interval"]),
            float(raw["heartbeat_timeout"]),
            float(timeout) if timeout else None,
        )
        return settings, int(raw["epoch"])
    except (KeyError, ValueError):
        return None


@final
class _Worker:
    """One worker process: its client, its writer, its agents."""

    def __init__(self, url: str, keys: Keys, codec: Codec, client: coredis.Redis[str]) -> None:
        self.url = url
        self.keys = keys
        self.codec = codec
        self.client = client
        self.scripts = Scripts(client)
        self.settings = AgentSettings(1.0, 3.0, None)
        self.epoch = 0
        self.served: dict[str, _Served] = {}
        #: Set when every agent has left by itself (``agent.disconnect()``).
        self.all_left = trio.Event()
        self._writes: list[Write] = []
        self._wake = trio.Event()
        self._sent = trio.Event()  # set after each batch the writer sends

    # -- the host of the agents (``agent.coordinator``) ---------------------------------------

    async def connect(self, agent: Agent) -> None:
        raise RuntimeError(f"agent {agent.id!r} is served by a worker (serve_agents)")

    async def disconnect(self, agent: Agent) -> None:
        """``agent.disconnect()``: see :meth:`_Served.disconnect`."""
        served = self.served.get(str(agent.id))
        if served is None or served.agent is not agent:
            raise RuntimeError(f"agent {agent.id!r} is not connected")
        await served.disconnect()

    def left(self, served: _Served) -> None:
        """``served`` has left for good: the worker serves it no more."""
        del self.served[served.id]
        served.agent.coordinator = None
        served.left.set()
        if not self.served:
            self.all_left.set()

    async def flush(self) -> None:
        """Wait (at most :data:`SHUTDOWN_TIMEOUT`) until the writer has sent everything."""
        with trio.move_on_after(SHUTDOWN_TIMEOUT):
            while self._writes:
                self._sent = trio.Event()
                await self._sent.wait()

    # -- writes -----------------------------------------------------------------------------

    def write(self, write: Write) -> None:
        self._writes.append(write)
        self._wake.set()

    def xadd_inbound(self, fields: dict[str, str]) -> None:
        self.write(("xadd", (self.keys.inbound, fields), None))

    async def write_loop(self) -> None:
        backoff = 0.05
        while True:
            if not self._writes:
                self._wake = trio.Event()
                await self._wake.wait()
            batch = self._writes[:500]
            try:
                await send_writes(self.client, self.scripts, batch)
            except _CONNECTION_ERRORS as exc:
                logger.warning("writing to Redis failed (%r); retrying in %.2f s", exc, backoff)
                self.scripts = Scripts(self.client)  # a restarted Redis has no scripts
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.05
            del self._writes[: len(batch)]
            self._sent.set()

    # -- settings ---------------------------------------------------------------------------

    async def read_settings(self) -> tuple[AgentSettings, int] | None:
        return _settings_from(await self.client.hgetall(self.keys.settings))

    async def wait_for_settings(self) -> None:
        logged = False
        while True:
            try:
                found = await self.read_settings()
            except _CONNECTION_ERRORS as exc:
                logger.warning("Redis unreachable (%r); retrying", exc)
                found = None
            if found is not None:
                self.settings, self.epoch = found
                return
            if not logged:
                logger.info("waiting for a coordinator on namespace %r", self.keys.namespace)
                logged = True
            await trio.sleep(WAIT_FOR_SETTINGS)

    async def watch_settings(self) -> None:
        """Every heartbeat interval: a new epoch means a new coordinator, and every agent
        registers again (with new settings, its loops start again under them)."""
        while True:
            await trio.sleep(self.settings.heartbeat_interval)
            try:
                found = await self.read_settings()
            except _CONNECTION_ERRORS:
                continue
            if found is None or found[1] == self.epoch:
                continue
            changed = found[0] != self.settings
            self.settings, self.epoch = found
            logger.info("a new coordinator (epoch %d): registering again", self.epoch)
            for served in self.served.values():
                if served.leaving:
                    # The new coordinator hands out its work again, to others: it stops now.
                    served.restart()
                    continue
                # With new settings its loops start over: what they asked is cancelled.
                served.restart() if changed else served.register()
            if not changed:
                # After every registration: a request may need an agent of this worker.
                for served in self.served.values():
                    served.ask_again()

    # -- shutting down ------------------------------------------------------------------------

    async def hand_back_all(self) -> None:
        """Leave and hand back every unfinished assignment, on a client of its own (see the
        module docstring), bounded by :data:`SHUTDOWN_TIMEOUT`."""
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + SHUTDOWN_TIMEOUT
            client: coredis.Redis[str] = coredis.Redis.from_url(
                self.url, decode_responses=True, client_name="trioflow-worker-exit"
            )
            try:
                async with open_client(client):
                    scripts = Scripts(client)
                    writes = list(self._writes)  # whatever the writer had not sent
                    for served in self.served.values():
                        writes += served.farewell()
                    await send_writes(client, scripts, writes)
                    for served in self.served.values():
                        await scripts.run("release", [self.keys.lease(served.id)], [served.session])
            except _CONNECTION_ERRORS as exc:
                logger.warning("could not hand back the unfinished work: %r", exc)
        if scope.cancelled_caught:
            logger.warning("handing back the unfinished work took too long")


@final
class _Link:
    """An agent's link to its coordinator, through Redis (a ``CoordinatorLink``)."""

    def __init__(self, served: _Served) -> None:
        self._served = served

    def report_result(self, token: int, result: Any) -> None:
        served = self._served
        attempt = served.attempts.get(token)
        if attempt is None:
            return
        try:
            data = served.worker.codec.encode(result)
        except TypeError as exc:
            error = TypeError(
                f"the result of task {attempt.task_id!r} cannot cross the wire: {exc}"
            )
            served.report(token, "failed", served.worker.codec.encode(error_data(error)))
            return
        served.report(token, "done", data)

    def report_failure(self, token: int, error: BaseException) -> None:
        self._served.report(token, "failed", self._served.worker.codec.encode(error_data(error)))

    def report_timeout(self, token: int, error: TimeoutError) -> None:
        self._served.report(token, "timeout", self._served.worker.codec.encode(error_data(error)))

    def hand_back(self, token: int) -> None:
        self._served.report(token, "handback", "null")

    def heartbeat(self) -> None:
        self._served.beat_due.set()

    async def send_message(self, message: Message) -> None:
        """Route ``message`` through the coordinator and wait until it is delivered (or
        refused: an unknown or offline receiver raises here, as for a local agent)."""
        if not isinstance(message, Message):
            raise TypeError(f"send_message takes a Message, got {message!r}")
        await self._served.deliver(message)

    async def request(self, capability: Hashable, task: Mapping[str, Any]) -> Any:
        return await self._served.request(capability, task)


@final
class _Served:
    """One agent of the worker (see the module docstring)."""

    def __init__(self, worker: _Worker, agent: Agent) -> None:
        self.worker = worker
        self.agent = agent
        self.id = str(agent.id)
        self.session = ""
        self.attempts: dict[int, _Attempt] = {}
        self.by_token: dict[str, int] = {}
        self.by_task: dict[str, int] = {}
        #: Wire tokens revoked lately, oldest first (bounded by REVOKED_KEPT): a work entry
        #: seen after its revoke (walked from the pending list later than the revoke was
        #: read) is handed back unstarted, never run.
        self.revoked: dict[str, None] = {}
        self.beat_due = trio.Event()
        self.lease_deadline = -math.inf
        self._tokens = itertools.count(1)
        self._run_scope: trio.CancelScope | None = None
        self._restart = False
        self._endpoint: AgentEndpoint | None = None
        self._work: trio.MemorySendChannel[WorkItem] | None = None
        self._messages: trio.MemorySendChannel[Message] | None = None
        self._replies: dict[str, tuple[trio.Event, list[Any]]] = {}
        #: What the agent's request() and send_message() calls waiting for a reply sent to
        #: the coordinator, by request id, with the local token of the asking attempt (0:
        #: none): sent again to a new coordinator (see ask_again).
        self._asked: dict[str, tuple[dict[str, str], int]] = {}
        self._refused: str | None = None
        self._beats = 0
        #: It is leaving for good (``agent.disconnect()``); ``left`` is set once it has.
        self.leaving = False
        self.left = trio.Event()
        self._life: trio.CancelScope | None = None
        self._task: trio.lowlevel.Task | None = None

    # -- the agent's life -----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the agent until cancelled or it has left (see :meth:`disconnect`): take the
        lease, register, run its loops; after a detach, a lost lease or new settings, start
        over; after a crash, leave, wait, and start over."""
        self._task = trio.lowlevel.current_task()
        with trio.CancelScope() as life:
            self._life = life
            await self._serve()
        self._life = None
        # It has left: give up its lease after its reports (the writer keeps the order).
        lease = self.worker.keys.lease(self.id)
        self.worker.write(("release", ([lease], [self.session]), None))
        self.worker.left(self)

    async def _serve(self) -> None:
        backoff = 1.0
        while not self.leaving:
            if self.session:
                # Starting over in this process: give up the old session's lease first, or
                # the new session would wait for it to lapse like a stranger's.
                with contextlib.suppress(*_CONNECTION_ERRORS):
                    lease = self.worker.keys.lease(self.id)
                    await self.worker.scripts.run("release", [lease], [self.session])
            self.session = secrets.token_hex(6)
            await self._acquire_lease()
            self.attempts.clear()
            self.by_token.clear()
            self.by_task.clear()
            work_send, work_receive = trio.open_memory_channel[WorkItem](math.inf)
            message_send, message_receive = trio.open_memory_channel[Message](math.inf)
            self._work, self._messages = work_send, message_send
            endpoint = AgentEndpoint(
                self.id, work_receive, message_receive, _Link(self), self.worker.settings
            )
            self._endpoint = endpoint
            self.register()
            self._restart = False
            try:
                with trio.CancelScope() as scope:
                    self._run_scope = scope
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._read_inbox)
                        nursery.start_soon(self._keep_lease)
                        await self.agent._run(endpoint)
            except Exception as exc:
                if isinstance(exc, RegistrationRefused) or (
                    isinstance(exc, BaseExceptionGroup)
                    and exc.subgroup(RegistrationRefused) is not None
                ):
                    raise
                logger.exception("agent %r crashed; it leaves and comes back", self.id)
                self.worker.xadd_inbound({"k": "leave", "a": self.id, "s": self.session})
                for write in self.farewell(leave=False):
                    self.worker.write(write)
                if self.leaving:
                    return  # it was leaving anyway
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            finally:
                self._run_scope = None
                work_send.close()
                message_send.close()
            if self._refused is not None:
                raise RegistrationRefused(f"agent {self.id!r}: {self._refused}")
            backoff = 1.0

    def register(self) -> None:
        agent = self.agent
        data = {
            "capabilities": sorted(agent.capabilities, key=repr),
            "concurrency": agent.concurrency,
        }
        self.worker.xadd_inbound(
            {"k": "register", "a": self.id, "s": self.session, "d": self.worker.codec.encode(data)}
        )

    def restart(self) -> None:
        """Start the agent's loops over (the attempts running now are cut short)."""
        self._restart = True
        if self._run_scope is not None:
            self._run_scope.cancel()

    def farewell(self, *, leave: bool = True, running: bool = True) -> list[Write]:
        """The writes that hand back everything this agent holds: ``leave`` first (so the
        coordinator gives it nothing new), then a hand-back report for each attempt
        (``running=False``: only for those no work loop has started, which are taken out of
        its work inbox here; the running ones finish and report)."""
        writes: list[Write] = []
        if leave and self.session:
            fields = {"k": "leave", "a": self.id, "s": self.session}
            writes.append(("xadd", (self.worker.keys.inbound, fields), None))
        if running:
            tokens = list(self.attempts)
        else:
            tokens = []
            if self._endpoint is not None:
                with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
                    while True:
                        tokens.append(self._endpoint.work.receive_nowait().token)
        for token in tokens:
            if token in self.attempts:
                writes.append(self._report_write(token, "handback", "null"))
        return writes

    async def disconnect(self) -> None:
        """The agent leaves for good (``agent.disconnect()``), as from the in-process
        coordinator: ``leave`` and the hand-back of its unstarted work go out, it takes no
        new work, and once what it runs is reported it stops (:meth:`run` returns). Waits
        for that, unless called from inside the agent, which it would wait for forever."""
        if not self.leaving:
            self.leaving = True
            if self._run_scope is not None and self._endpoint is not None:
                self._endpoint.draining = True  # a late assignment is handed back too
                for write in self.farewell(running=False):
                    self.worker.write(write)
                self._stop_if_left()
            elif self._life is not None:
                self._life.cancel()  # between two runs of its loops: nothing is registered
        if runs_below(self._task):
            await trio.lowlevel.checkpoint()
        else:
            await self.left.wait()

    def _stop_if_left(self) -> None:
        """A leaving agent stops once every attempt it held is reported."""
        if self.leaving and not self.attempts and self._run_scope is not None:
            self._run_scope.cancel()

    # -- the lease ---------------------------------------------------------------------------------

    async def _beat(self) -> bool:
        """Renew the lease: True if it is ours (the deadline moves), False if another
        session holds it."""
        sent = trio.current_time()
        self._beats += 1
        ttl = str(max(int(self.worker.settings.heartbeat_timeout * 1000), 1))
        reply = await self.worker.scripts.run(
            "beat", [self.worker.keys.lease(self.id)], [self.session, self._beats, ttl]
        )
        if int(reply) == 1:
            self.lease_deadline = sent + self.worker.settings.heartbeat_timeout
            return True
        return False

    async def _acquire_lease(self) -> None:
        warned = False
        while True:
            try:
                if await self._beat():
                    return
                if not warned:
                    logger.warning(
                        "another worker serves agent %r; waiting for its lease to lapse", self.id
                    )
                    warned = True
            except _CONNECTION_ERRORS as exc:
                logger.warning("Redis unreachable (%r); retrying", exc)
            await trio.sleep(min(self.worker.settings.heartbeat_interval, 0.5))

    async def _keep_lease(self) -> None:
        """Renew the lease at each beat of the agent's heartbeat loop; when the lease runs
        out (no renewal for ``heartbeat_timeout``), stop: the coordinator has reassigned
        this agent's work, so its attempts are cancelled and it registers afresh."""
        while True:
            with trio.move_on_at(self.lease_deadline):
                await self.beat_due.wait()
                self.beat_due = trio.Event()
                try:
                    with trio.move_on_after(self.worker.settings.heartbeat_interval):
                        if not await self._beat():
                            logger.warning("agent %r: another worker took its lease", self.id)
                            self.restart()
                            return
                except _CONNECTION_ERRORS as exc:
                    logger.warning("agent %r: heartbeat failed (%r)", self.id, exc)
                continue
            logger.warning(
                "agent %r lost its lease (no heartbeat for %s s): cancelling its attempts",
                self.id,
                self.worker.settings.heartbeat_timeout,
            )
            self.restart()
            return

    # -- the inbox -----------------------------------------------------------------------------

    async def _read_inbox(self) -> None:
        keys = self.worker.keys
        client = self.worker.client
        backoff = 0.05
        while True:
            try:
                async with GroupReader(
                    self.worker.url, [keys.inbox(self.id)], self.id, pending_every=5.0
                ) as reader:
                    backoff = 0.05
                    async for batch in reader:
                        settled: list[Entry] = []
                        for entry in batch:
                            reason = self._handle(entry)
                            if reason == "":
                                continue  # work: its report settles the entry
                            if reason is None:
                                settled.append(entry)
                                continue
                            logger.warning("dead letter %s %s: %s", entry.stream, entry.id, reason)
                            with trio.CancelScope(shield=True):
                                await dead_letter(client, keys, entry, reason)
                            reader.forget([entry])
                        await reader.ack(settled, client=client)
                        if self._refused is not None:
                            self.restart()
            except _CONNECTION_ERRORS as exc:
                logger.warning("reading from Redis failed (%r); reconnecting", exc)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    def _handle(self, entry: Entry) -> str | None:
        """Handle one inbox entry. Returns ``""`` for work (settled by its report),
        ``None`` for an entry to acknowledge now, or why the entry is garbage."""
        fields = entry.fields or {}
        kind = fields.get("k")
        try:
            if kind == "work":
                return self._on_work(entry, fields)
            if kind == "revoke":
                token = fields["tok"]
                self.revoked[token] = None
                if len(self.revoked) > REVOKED_KEPT:
                    del self.revoked[next(iter(self.revoked))]
                local = self.by_token.get(token)
                if local is not None and self._endpoint is not None:
                    self._endpoint.revoke(local)
            elif kind == "drain":
                if self._endpoint is not None:
                    self._endpoint.draining = True
            elif kind == "detach":
                if fields["s"] == self.session:
                    if not self.leaving:
                        logger.warning("agent %r was taken offline by the coordinator", self.id)
                    self.restart()
            elif kind == "msg":
                message = message_from(self.worker.codec.decode(fields["d"]))
                if self._messages is not None:
                    self._messages.send_nowait(message)
            elif kind == "resp":
                waiting = self._replies.get(fields["r"])
                if waiting is not None:
                    waiting[1].append(self.worker.codec.decode(fields["d"]))
                    waiting[0].set()
            elif kind == "refused":
                if fields["s"] == self.session:
                    self._refused = str(self.worker.codec.decode(fields["d"]))
            else:
                return f"unknown kind {kind!r}"
        except (KeyError, ValueError, TypeError) as exc:
            return f"malformed {kind} entry: {type(exc).__name__}: {exc}"
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the agent's loops are being restarted
        return None

    def _on_work(self, entry: Entry, fields: dict[str, str]) -> str:
        """Take one work entry. Returns ``""`` (its report settles it), or why it is
        garbage: a payload that does not decode goes to the dead-letter stream, and its
        task fails at once with a ``TaskRejected`` that says so (the coordinator must
        hear of it, or the task would wait for its report for ever)."""
        task_id, token = fields["t"], fields["tok"]
        if token in self.by_token:
            return ""  # seen already (walked again from the pending list after a reconnect)
        if token in self.revoked or self.leaving:
            # Its task was cancelled before this entry was seen, or the agent is leaving:
            # nothing to start. The hand-back frees the slot the coordinator keeps for it
            # (the task goes to another agent, no attempt charged), and settles the entry.
            self.worker.write(self._report_of(_Attempt(task_id, token, entry), "handback", "null"))
            return ""
        local = self.by_task.get(task_id)
        if local is not None:
            # Reassigned to us while it runs here (a restarted coordinator): the running
            # attempt answers for the new token, and the old entry is settled.
            held = self.attempts[local]
            self.worker.write(self._settle_write(held.entry))
            del self.by_token[held.token]
            held.token, held.entry = token, entry
            self.by_token[token] = local
            return ""
        codec = self.worker.codec
        try:
            attempt = int(fields["n"])
            payload = codec.decode(fields["d"])
            if not isinstance(payload, dict):
                raise ValueError(f"a task must be a mapping, got {payload!r}")
        except (KeyError, ValueError, TypeError) as exc:
            reason = f"work of task {task_id!r} did not decode: {type(exc).__name__}: {exc}"
            error = TaskRejected(
                f"task {task_id!r} did not decode on agent {self.id!r}: {exc} (its work "
                f"entry is on the dead-letter stream {self.worker.keys.dead!r})"
            )
            failed = codec.encode(error_data(error))
            self.worker.write(self._report_of(_Attempt(task_id, token, entry), "failed", failed))
            return reason
        local = next(self._tokens)
        self.attempts[local] = _Attempt(task_id, token, entry)
        self.by_token[token] = local
        self.by_task[task_id] = local
        assert self._work is not None
        self._work.send_nowait(WorkItem(local, attempt, payload, task_id))
        return ""

    # -- reports ---------------------------------------------------------------------------------

    def ask_again(self) -> None:
        """A new coordinator started: the one this agent's waiting ``request()`` and
        ``send_message()`` calls asked will never answer (its requests died with it), so
        ask the new one. Execution stays at least once: the old coordinator may have served
        a request (its delegated task is adopted and runs again) or delivered a message."""
        for fields, local in self._asked.values():
            again = dict(fields)
            if again["k"] == "req":
                attempt = self.attempts.get(local)
                again["w"] = "" if attempt is None else attempt.token
            self.worker.xadd_inbound(again)

    def _settle_write(self, entry: Entry) -> Write:
        # A report of a task no store knows settles its entry and does nothing else.
        keys = self.worker.keys
        return (
            "report",
            (
                [keys.task(""), entry.stream, keys.inbound, keys.open],
                [entry.id, self.id, "", "handback", "null", ""],
            ),
            None,
        )

    def _report_write(self, token: int, outcome: str, data: str) -> Write:
        attempt = self.attempts.pop(token)
        self.by_token.pop(attempt.token, None)
        self.by_task.pop(attempt.task_id, None)
        return self._report_of(attempt, outcome, data)

    def _report_of(self, attempt: _Attempt, outcome: str, data: str) -> Write:
        """The ``REPORT`` of ``attempt`` (held or not: one never started is reported too)."""
        keys = self.worker.keys
        return (
            "report",
            (
                [keys.task(attempt.task_id), attempt.entry.stream, keys.inbound, keys.open],
                [attempt.entry.id, self.id, attempt.token, outcome, data, attempt.task_id],
            ),
            None,
        )

    def report(self, token: int, outcome: str, data: str) -> None:
        """Queue the ``REPORT`` of attempt ``token`` (``done``, ``failed``, ``timeout`` or
        ``handback``); a token no longer held (voided by a detach) reports nothing."""
        if token in self.attempts:
            self.worker.write(self._report_write(token, outcome, data))
            self._stop_if_left()

    # -- delegation ------------------------------------------------------------------------------

    async def deliver(self, message: Message) -> None:
        """Send ``message`` through the coordinator, which answers in this agent's inbox
        once it has delivered it (or why it could not)."""
        data = self.worker.codec.encode(message_data(message))
        reply = await self._ask({"k": "msg", "a": self.id, "r": secrets.token_hex(8), "d": data})
        if reply.get("ok"):
            return
        error = reply.get("error")
        kind = error.get("type") if isinstance(error, dict) else None
        # The two refusals section 3 names come back as themselves.
        if kind == "UnknownAgentError":
            raise UnknownAgentError(message.receiver)
        if kind == "AgentUnavailableError":
            raise AgentUnavailableError(message.receiver)
        raise error_from(error)

    async def request(self, capability: Hashable, task: Mapping[str, Any]) -> Any:
        """Delegate through the coordinator and wait for the reply in this agent's inbox;
        cancelling the call cancels the delegated task."""
        if not isinstance(task, Mapping):
            raise TypeError(f"a task must be a mapping, got {task!r}")
        codec = self.worker.codec
        data = codec.encode({"capability": capability, "task": dict(task)})
        waiter = ""
        local = 0
        endpoint = self._endpoint
        current = getattr(endpoint, "current_attempt", None)
        if current is not None:
            local = current()
            attempt = self.attempts.get(local)
            waiter = "" if attempt is None else attempt.token
        fields = {"k": "req", "a": self.id, "r": secrets.token_hex(8), "w": waiter, "d": data}
        reply = await self._ask(fields, local)
        if reply.get("ok"):
            return reply.get("value")
        raise error_from(reply.get("error"))

    async def _ask(self, fields: dict[str, str], local: int = 0) -> dict[str, Any]:
        """Send ``fields`` (a message or a delegation, its request id in ``"r"``) to the
        coordinator and wait for the reply in this agent's inbox. Meanwhile it is
        remembered, so that a new coordinator is asked again (see :meth:`ask_again`);
        ``local`` is the asking attempt's token (0: none). A cancelled delegation is
        cancelled at the coordinator too."""
        request = fields["r"]
        event = trio.Event()
        slot: list[Any] = []
        self._replies[request] = (event, slot)
        self._asked[request] = (fields, local)
        self.worker.xadd_inbound(fields)
        try:
            await event.wait()
        except trio.Cancelled:
            if fields["k"] == "req":
                self.worker.xadd_inbound({"k": "cancel", "r": request})
            raise
        finally:
            del self._replies[request]
            del self._asked[request]
        reply = slot[0]
        if not isinstance(reply, dict):
            raise TypeError(f"a malformed reply: {reply!r}")
        return reply


async def serve_agents(agents: Iterable[Agent], *, transport: RedisTransport) -> None:
    """Run ``agents`` (:class:`~trioflow.agents.Agent` objects, written as for the
    in-process coordinator) as a worker of ``transport``'s namespace, until cancelled or
    every one of them has left by itself.

    Each agent registers itself with the namespace's coordinator (waiting for one to
    start), beats, and works through its inbox. The heartbeat interval and timeout and the
    task timeout are the coordinator's, read from Redis: a worker needs no timing settings,
    and follows a restarted coordinator by itself. An agent whose worker cannot renew its
    heartbeat for ``heartbeat_timeout`` cancels its own attempts (the coordinator has given
    them to others). Cancelled (Ctrl-C, say), the worker hands back its unfinished work: the
    agents leave, and what they had not finished goes to other agents without counting as
    an attempt.

    An agent may leave by itself, as from the in-process coordinator: ``await
    agent.disconnect()`` (from inside its own work too: it then returns at once) hands back
    the agent's unstarted work, lets what it runs finish and be reported, and then stops
    serving it for good (it does not register again, even with a new coordinator). The
    other agents run on; once the last one has left there is nothing left to serve, and
    ``serve_agents`` returns (``trioflow worker`` then exits 0).

    Raises:
        TypeError: ``transport`` is not a :class:`~trioflow.agents.RedisTransport`, or an
            agent is not an :class:`~trioflow.agents.Agent` or its id is not a string.
        ValueError: two agents have the same id, or there are none.
        RuntimeError: an agent is connected to a coordinator of this process.
        RegistrationRefused: the coordinator refused an agent (its id is taken by an agent
            with other capabilities, say).
    """
    if not isinstance(transport, RedisTransport):
        raise TypeError(f"serve_agents needs a RedisTransport, got {transport!r}")
    agents = list(agents)
    if not agents:
        raise ValueError("serve_agents needs at least one agent")
    ids: set[str] = set()
    for agent in agents:
        if not isinstance(agent, Agent):
            raise TypeError(f"serve_agents takes Agent objects, got {agent!r}")
        if not isinstance(agent.id, str):
            raise TypeError(f"an agent served through Redis needs a string id, got {agent.id!r}")
        if agent.coordinator is not None:
            # Its loops would run twice, and its request() and send_message() go through
            # whichever endpoint was set last.
            raise RuntimeError(f"agent {agent.id!r} is already connected to a coordinator")
        if agent.id in ids:
            raise ValueError(f"two agents have the id {agent.id!r}")
        ids.add(agent.id)
    transport.claim()
    url, namespace = transport.url, transport.namespace
    keys = Keys(namespace)
    client: coredis.Redis[str] = coredis.Redis.from_url(
        url, decode_responses=True, client_name="trioflow-worker"
    )
    async with open_client(client):
        worker = _Worker(url, keys, transport.codec, client)
        await worker.wait_for_settings()
        logger.info(
            "serving %s on namespace %r (epoch %d)",
            ", ".join(repr(agent.id) for agent in agents),
            namespace,
            worker.epoch,
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(worker.write_loop)
                nursery.start_soon(worker.watch_settings)
                for agent in agents:
                    served = _Served(worker, agent)
                    worker.served[served.id] = served
                    agent.coordinator = worker  # what agent.disconnect() goes through
                    nursery.start_soon(served.run)
                await worker.all_left.wait()
                await worker.flush()  # their last reports
                nursery.cancel_scope.cancel()
        finally:
            await worker.hand_back_all()
            for agent in agents:
                if agent.coordinator is worker:
                    agent.coordinator = None
            for served in worker.served.values():
                served.left.set()  # for a disconnect() waiting outside the agent
