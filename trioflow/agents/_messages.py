"""What agents say to each other: capabilities, message types and messages."""

from __future__ import annotations

import time
from collections.abc import Hashable
from enum import Enum
from typing import Any

import attrs
import trio


class AgentCapability(Enum):
    """The seed chapter's capabilities. Any hashable (a string, say) works as well."""

    SEARCH = "search"
    CALCULATE = "calculate"
    SUMMARIZE = "summarize"
    TRANSLATE = "translate"


class MessageType(Enum):
    """The seed chapter's four message types."""

    TASK_REQUEST = "task_request"
    TASK_RESULT = "task_result"
    AGENT_STATUS = "agent_status"
    HEARTBEAT = "heartbeat"


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # built outside trio.run: fall back to a monotonic clock
        return time.monotonic()


@attrs.frozen
class Message:
    """A message from one agent to another, routed by the coordinator.

    ``timestamp`` defaults to ``trio.current_time()``, so a mock clock drives it.
    """

    type: MessageType = attrs.field(validator=attrs.validators.instance_of(MessageType))
    sender: Hashable
    receiver: Hashable
    content: Any = None
    timestamp: float = attrs.field(factory=_now)
