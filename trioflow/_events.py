"""Fan-out of status-change events to subscribers.

Each subscriber gets its own unbounded memory channel and events go in with
``send_nowait``: a slow subscriber costs memory, never stalls a worker, and never loses an
event. With no subscriber, publishing is one truth test.

A subscriber stops being fed when nobody can read its channel any more:

* it closed its receive end (``send_nowait`` then raises and the sender is dropped), or
* the receive channel that :meth:`EventFanout.subscribe` returned was garbage-collected
  without being closed, and no open clone of it is left.

The second rule is what keeps a forgotten subscriber (``sched.subscribe()`` called and the
result dropped, or a monitor task that died without closing its channel) from buffering
every later event for the rest of the run. It costs one truth test per event: a weak reference to
each receive channel has a callback that raises a flag, and :meth:`EventFanout.publish`
looks at its subscribers again only once that flag is up. A clone of the channel keeps the
subscriber fed, as a clone is a reader like any other; the fan-out sees clones only through
the channel's ``open_receive_channels`` count, so a clone must be *closed* (not merely
dropped) for the subscriber to be let go after its original was collected.
"""

from __future__ import annotations

import math
import weakref
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class EventFanout(Generic[T]):
    # ``_senders`` and ``_receivers`` are parallel lists: publish walks the senders alone,
    # exactly as it did before receivers were tracked, and pays one truth test for them.
    __slots__ = ("_closed", "_collected", "_receivers", "_senders")

    def __init__(self) -> None:
        self._senders: list[trio.MemorySendChannel[T]] = []
        self._receivers: list[weakref.ref[trio.MemoryReceiveChannel[T]]] = []
        self._closed = False
        # Set (from a weakref callback, which may run in the middle of anything) when a
        # subscriber's receive channel has been collected; a list so the callback can flag
        # it without holding a reference to the fan-out itself.
        self._collected: list[bool] = [False]

    def __bool__(self) -> bool:
        return bool(self._senders)

    def subscribe(self) -> trio.MemoryReceiveChannel[T]:
        """A new channel that receives every event published from now on. After
        :meth:`close` the channel is already at its end.

        The channel is fed for as long as someone can read it: closing it, or dropping
        every reference to it (and closing any clones), unsubscribes."""
        send, receive = trio.open_memory_channel[T](math.inf)
        if self._closed:
            send.close()
            return receive
        collected = self._collected

        def flag(_: object) -> None:
            collected[0] = True

        self._senders.append(send)
        self._receivers.append(weakref.ref(receive, flag))
        return receive

    def publish(self, event: T) -> None:
        if self._collected[0]:
            self._forget_unreadable()
        dropped = None
        for send in self._senders:
            try:
                send.send_nowait(event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                dropped = [*(dropped or ()), send]
        if dropped:
            self._keep([send not in dropped for send in self._senders])

    def _forget_unreadable(self) -> None:
        """Drop the subscribers whose receive channels were collected. One whose original
        was collected while a clone stays open is kept, and the flag stays up so that it is
        looked at again on each publish until the clone is closed."""
        keep: list[bool] = []
        orphans = False
        for send, receiver in zip(self._senders, self._receivers, strict=True):
            if receiver() is not None:
                keep.append(True)
            # The collected original was never closed, so it still counts as one open
            # receiver: more than one means an open clone is reading.
            elif send.statistics().open_receive_channels > 1:
                keep.append(True)
                orphans = True
            else:
                # Nothing else holds the channel's state: dropping the sender frees it and
                # every event buffered in it.
                send.close()
                keep.append(False)
        self._keep(keep)
        self._collected[0] = orphans

    def _keep(self, keep: list[bool]) -> None:
        self._senders = [s for s, k in zip(self._senders, keep, strict=True) if k]
        self._receivers = [r for r, k in zip(self._receivers, keep, strict=True) if k]

    def close(self) -> None:
        """End every subscriber's stream (after the events already sent)."""
        self._closed = True
        for send in self._senders:
            send.close()
        self._senders = []
        self._receivers = []
