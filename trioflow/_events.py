"""Fan-out of status-change events to subscribers, and the channel each one reads.

Each subscriber gets its own unbounded stream of events: a slow subscriber costs memory,
never stalls a worker, and never loses an event. With no subscriber, publishing is one
truth test.

Why not a ``trio`` memory channel per subscriber (as this module used before): a run makes
three or more events per task, and ``MemorySendChannel.send_nowait`` costs about 0.5 µs
here, more than a whole task costs the coordinator. Publishing to an :class:`EventChannel`
is a deque append when nobody is parked in ``receive()``, and a hand-over to the first
parked reader when somebody is. Reading keeps the semantics of a memory channel's receive
end: ``receive()`` is a checkpoint, ``receive_nowait()`` raises ``WouldBlock`` or
``EndOfChannel``, clones share the stream, and closing an end wakes its parked readers.

A subscriber stops being fed when nobody can read its stream any more: when every end of
it (the channel :meth:`EventFanout.subscribe` returned and its clones) has been closed or
garbage-collected. That keeps a forgotten subscriber (``sched.subscribe()`` called and the
result dropped, or a monitor task that died without closing its channel) from buffering
every later event for the rest of the run. An end going away raises a flag that
:meth:`EventFanout.publish` looks at once per event; the streams are walked only then.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Generic, TypeVar, final

import attrs
import outcome
import trio
from trio.lowlevel import enable_ki_protection

# enable_ki_protection, as trio's own channel methods have it: a Ctrl-C landing between two
# steps of a method (a reader recorded as parked, then parked) would leave the stream
# inconsistent. On trio >= 0.27 it marks the code object and costs nothing per call.

__all__ = ["EventChannel", "EventChannelStatistics", "EventFanout"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)  # a reader of TaskEvents reads events


class _Stream(Generic[T]):
    """What the ends of one subscription share: the events not read yet, and the readers
    parked waiting for one (in the order they came, each with the end it reads through)."""

    __slots__ = ("buffer", "ended", "parked", "readers", "unread")

    def __init__(self, unread: list[bool]) -> None:
        self.buffer: deque[T] = deque()
        self.parked: dict[trio.lowlevel.Task, EventChannel[T]] = {}
        self.readers = 0  # ends not closed (nor collected)
        self.ended = False  # the publisher closed it: after the buffer, EndOfChannel
        self.unread = unread  # the fan-out's flag: "a stream may have lost its last reader"

    @enable_ki_protection
    def hand_over(self, event: T) -> None:
        """Give ``event`` to the reader parked longest (there is one; the buffer is empty)."""
        task = next(iter(self.parked))
        del self.parked[task]
        trio.lowlevel.reschedule(task, outcome.Value(event))

    @enable_ki_protection
    def end(self) -> None:
        self.ended = True
        for task in list(self.parked):
            del self.parked[task]
            trio.lowlevel.reschedule(task, outcome.Error(trio.EndOfChannel()))

    def release(self) -> None:
        """One end was closed or collected: with none left, nobody can read the events any
        more (they are let go at once; the publisher drops the stream at its next event)."""
        self.readers -= 1
        if self.readers <= 0:
            self.buffer.clear()
            self.unread[0] = True


@attrs.frozen
class EventChannelStatistics:
    """``EventChannel.statistics()``: the fields of ``trio.MemoryReceiveChannel``'s, but for
    ``peak_buffer_used`` (keeping it would cost every event a comparison), plus ``closed``."""

    current_buffer_used: int  # events published and not read yet
    max_buffer_size: float  # always math.inf: a subscriber never stalls the run
    open_send_channels: int  # 1 while the scheduler or coordinator may publish, then 0
    open_receive_channels: int  # ends of the stream not closed: this one and its clones
    tasks_waiting_send: int  # always 0: publishing never waits
    tasks_waiting_receive: int  # tasks parked in receive() on any of them
    closed: bool  # whether the publisher has ended the stream


@final
class EventChannel(trio.abc.ReceiveChannel[T_co]):
    """The receive end of a subscription (``Scheduler.subscribe()``,
    ``Coordinator.subscribe()``): events in the order they happened, unbounded, ended when
    the scheduler or coordinator finishes.

    Read it like a ``trio.MemoryReceiveChannel``: ``async for event in channel``,
    ``await channel.receive()``, ``channel.receive_nowait()`` (``trio.WouldBlock`` when
    nothing is there yet, ``trio.EndOfChannel`` once the stream has ended and been read),
    ``clone()`` for a second reader of the same stream (each event goes to one of them),
    and ``close()`` (or ``with``/``async with``) when done. Closing every end
    unsubscribes: events are no longer kept for it, and those buffered are let go at once.
    """

    __slots__ = ("__weakref__", "_closed", "_stream")

    def __init__(self, stream: _Stream[T_co]) -> None:
        self._stream = stream
        self._closed = False
        stream.readers += 1

    @enable_ki_protection
    def receive_nowait(self) -> T_co:
        """The next event if one is there; raises ``trio.WouldBlock`` if not yet,
        ``trio.EndOfChannel`` if the stream has ended and every event has been read,
        ``trio.ClosedResourceError`` if this end was closed."""
        if self._closed:
            raise trio.ClosedResourceError
        stream = self._stream
        if stream.buffer:
            return stream.buffer.popleft()
        if stream.ended:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    @enable_ki_protection
    async def receive(self) -> T_co:
        """The next event, waiting for one; raises as :meth:`receive_nowait` does, but waits
        instead of raising ``trio.WouldBlock``. Always a checkpoint."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            value = self.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return value
        task = trio.lowlevel.current_task()
        parked = self._stream.parked
        parked[task] = self

        def abort(_: object) -> trio.lowlevel.Abort:
            del parked[task]
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)  # type: ignore[no-any-return]

    @enable_ki_protection
    def clone(self) -> EventChannel[T_co]:
        """Another end of the same stream: the stream is fed until every end is closed."""
        if self._closed:
            raise trio.ClosedResourceError
        return EventChannel(self._stream)

    @enable_ki_protection
    def close(self) -> None:
        """Close this end (tasks parked in its ``receive()`` get ``ClosedResourceError``);
        idempotent. Closing the last end unsubscribes."""
        if self._closed:
            return
        self._closed = True
        stream = self._stream
        for task, end in list(stream.parked.items()):
            if end is self:
                del stream.parked[task]
                trio.lowlevel.reschedule(task, outcome.Error(trio.ClosedResourceError()))
        stream.release()

    def __enter__(self) -> EventChannel[T_co]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @enable_ki_protection
    async def aclose(self) -> None:
        """:meth:`close`, then a checkpoint (``async with channel:`` ends with this)."""
        self.close()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> EventChannelStatistics:
        """How many events are buffered, ends are open and readers wait, right now."""
        stream = self._stream
        return EventChannelStatistics(
            current_buffer_used=len(stream.buffer),
            max_buffer_size=math.inf,
            open_send_channels=0 if stream.ended else 1,
            open_receive_channels=max(stream.readers, 0),
            tasks_waiting_send=0,
            tasks_waiting_receive=len(stream.parked),
            closed=stream.ended,
        )

    def __del__(self) -> None:
        # Collected without being closed: nobody can read through this end any more.
        # (Nothing here may fail or wait: it runs wherever the collector does.)
        if not self._closed:
            self._closed = True
            self._stream.release()


class EventFanout(Generic[T]):
    __slots__ = ("_closed", "_streams", "_unread")

    def __init__(self) -> None:
        self._streams: list[_Stream[T]] = []
        self._closed = False
        # Raised (possibly from a finalizer, in the middle of anything) when a stream may
        # have lost its last reader; a list, so that streams can raise it without holding
        # a reference to the fan-out itself.
        self._unread: list[bool] = [False]

    def __bool__(self) -> bool:
        return bool(self._streams)

    def subscribe(self) -> EventChannel[T]:
        """A new channel that receives every event published from now on. After
        :meth:`close` the channel is already at its end."""
        stream: _Stream[T] = _Stream(self._unread)
        channel = EventChannel(stream)
        if self._closed:
            stream.end()
        else:
            self._streams.append(stream)
        return channel

    @enable_ki_protection
    def publish(self, event: T) -> bool:
        """Give ``event`` to every subscriber; returns whether there is any (left)."""
        if self._unread[0]:
            self._forget_unread()
        streams = self._streams
        for stream in streams:
            if stream.parked:
                stream.hand_over(event)
            else:
                stream.buffer.append(event)
        return bool(streams)

    def _forget_unread(self) -> None:
        """Drop the streams that nobody can read any more (their buffers are empty
        already: see :meth:`_Stream.release`)."""
        self._unread[0] = False
        self._streams = [stream for stream in self._streams if stream.readers > 0]

    @enable_ki_protection
    def close(self) -> None:
        """End every subscriber's stream (after the events already published)."""
        self._closed = True
        for stream in self._streams:
            stream.end()
        self._streams = []
