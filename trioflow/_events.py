"""Fan-out of status-change events to subscribers.

Each subscriber gets its own unbounded memory channel and events go in with
``send_nowait``: a slow subscriber costs memory, never stalls a worker, and never loses an
event. A subscriber that closes its end is dropped. With no subscriber, publishing is one
truth test.
"""

from __future__ import annotations

import math
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class EventFanout(Generic[T]):
    __slots__ = ("_closed", "_senders")

    def __init__(self) -> None:
        self._senders: list[trio.MemorySendChannel[T]] = []
        self._closed = False

    def __bool__(self) -> bool:
        return bool(self._senders)

    def subscribe(self) -> trio.MemoryReceiveChannel[T]:
        """A new channel that receives every event published from now on. After
        :meth:`close` the channel is already at its end."""
        send, receive = trio.open_memory_channel[T](math.inf)
        if self._closed:
            send.close()
        else:
            self._senders.append(send)
        return receive

    def publish(self, event: T) -> None:
        dropped = None
        for send in self._senders:
            try:
                send.send_nowait(event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                dropped = [*(dropped or ()), send]
        if dropped:
            self._senders = [send for send in self._senders if send not in dropped]

    def close(self) -> None:
        """End every subscriber's stream (after the events already sent)."""
        self._closed = True
        for send in self._senders:
            send.close()
        self._senders = []
