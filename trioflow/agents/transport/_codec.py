"""What crosses the wire, and how: the codec for payloads, errors and messages.

Tasks, results and messages travel as compact JSON by default, in one field of a stream entry;
the fields that Lua scripts and ``redis-cli`` read (kind, task id, token) stay plain strings
beside it. The codec is pluggable (:class:`Codec`): ``encode`` must raise ``TypeError`` for a
value it cannot carry, which is how a task that cannot cross the wire fails at ``submit``.

An attempt's error crosses as its class name, message and traceback and is rebuilt on the
other side as the same builtin class where there is one (so a retry policy's ``retry_on``
matches as it would in one process) or as :class:`RemoteError`. The errors an agent's
``request()`` raises in process cross as themselves too: :class:`~trioflow.TaskFailed` (with
its task id, status and cause) and :class:`~trioflow.agents.NoCapableAgentError`, so an
agent that catches them works the same in a worker process.

This module needs no Redis client, so the coordinator can check tasks without one.
"""

from __future__ import annotations

import builtins
import json
import traceback
from typing import Any, Final, Protocol, final, runtime_checkable

from ..._errors import AgentGone, NoCapableAgentError, TaskFailed, TaskRejected, TrioflowError
from .._messages import AgentCapability, Message, MessageType
from .._records import AssignmentStatus
from ._protocol import implements

__all__ = [
    "Codec",
    "JsonCodec",
    "RemoteError",
    "error_data",
    "error_from",
    "message_data",
    "message_from",
]


# -- the codec ---------------------------------------------------------------------------------


@runtime_checkable
class Codec(Protocol):
    """How payloads cross the wire: ``encode`` raises ``TypeError`` for what it cannot carry
    (a task is checked at submit), ``decode`` raises ``ValueError`` for garbage (the entry
    goes to the dead-letter stream)."""

    def encode(self, value: Any) -> str:
        """``value`` as text for the wire; ``TypeError`` if it cannot be carried."""

    def decode(self, data: str) -> Any:
        """The value that ``data`` encodes; ``ValueError`` if it is not a valid encoding."""


_CAPABILITY: Final = "__capability__"


def _default(value: object) -> object:
    if isinstance(value, AgentCapability):
        return {_CAPABILITY: value.value}
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r}")


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _CAPABILITY in obj:
        return AgentCapability(obj[_CAPABILITY])
    return obj


@final
@implements(Codec)
class JsonCodec:
    """Compact JSON, the default. ``AgentCapability`` members travel as themselves (a task's
    ``"type"`` must compare equal on both sides); sets become lists, tuples lists; ``NaN``
    and infinities are refused (JSON has none)."""

    def encode(self, value: Any) -> str:
        try:
            return json.dumps(
                value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
            )
        except ValueError as exc:  # NaN / inf, or a circular reference
            raise TypeError(f"not JSON serializable: {exc}") from None

    def decode(self, data: str) -> Any:
        try:
            return json.loads(data, object_hook=_hook)
        except (TypeError, KeyError) as exc:  # an unknown capability value, say
            raise ValueError(f"undecodable: {exc!r}") from None


# -- errors and messages on the wire -----------------------------------------------------------


class RemoteError(TrioflowError):
    """An exception raised in another process, whose class could not be rebuilt here.
    ``type_name`` is that class's name; ``remote_traceback`` its formatted traceback."""

    def __init__(self, type_name: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.remote_traceback = remote_traceback


def _plain(value: object) -> bool:
    """Whether any codec carries ``value`` (a task's ``"type"`` is one of these)."""
    return value is None or isinstance(value, (str, int, float, AgentCapability))


def error_data(error: BaseException) -> dict[str, Any]:
    """What crosses the wire for an attempt's error: its class name, message and traceback
    (the last 4,000 characters); for a :class:`~trioflow.TaskFailed` its task id, status and
    cause, for a :class:`~trioflow.agents.NoCapableAgentError` its capability (when they are
    plain values, so the description always encodes)."""
    formatted = "".join(traceback.format_exception(error))
    data: dict[str, Any] = {
        "type": type(error).__name__,
        "message": str(error),
        "traceback": formatted[-4000:],
    }
    if isinstance(error, TaskFailed) and _plain(error.task_id):
        data["task_id"] = error.task_id
        data["status"] = str(getattr(error.status, "value", error.status))
        data["cause"] = None if error.error is None else error_data(error.error)
    elif isinstance(error, NoCapableAgentError) and _plain(error.capability):
        data["capability"] = error.capability
    return data


def _rebuildable() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {
        name: value
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    # trioflow's own whose constructor takes a message (TaskRejected decides "no retry").
    found["TaskRejected"] = TaskRejected
    found["AgentGone"] = AgentGone
    return found


_REBUILD: Final = _rebuildable()


def error_from(data: Any) -> BaseException:
    """The exception that :func:`error_data` described: the same builtin class (so a retry
    policy's ``retry_on`` matches as it would in process), or :class:`TaskRejected` (so the
    task fails at once), else a :class:`RemoteError`. The remote traceback is attached as a
    note. Raises ``ValueError`` for data that describes no error."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ValueError(f"not an error description: {data!r}")
    name, message = data["type"], str(data.get("message", ""))
    trace = str(data.get("traceback", ""))
    error: BaseException | None = _rebuild_structured(name, data)
    if error is None:
        cls = _REBUILD.get(name)
        try:
            error = cls(message) if cls is not None else RemoteError(name, message, trace)
        except Exception:  # a constructor that wants other arguments
            error = RemoteError(name, message, trace)
    if trace:
        error.add_note(f"raised in a worker process:\n{trace.rstrip()}")
    return error


_STATUSES: Final = frozenset(status.value for status in AssignmentStatus)


def _rebuild_structured(name: str, data: dict[str, Any]) -> BaseException | None:
    """The :class:`~trioflow.TaskFailed` or :class:`~trioflow.agents.NoCapableAgentError`
    that :func:`error_data` described with its fields, or ``None``."""
    if name == "NoCapableAgentError" and "capability" in data:
        return NoCapableAgentError(data["capability"])
    if name == "TaskFailed" and "status" in data:
        raw = data.get("cause")
        try:
            cause = None if raw is None else error_from(raw)
        except ValueError:
            cause = None
        status: object = data["status"]
        if status in _STATUSES:
            status = AssignmentStatus(status)
        return TaskFailed(data.get("task_id"), status, cause)
    return None


def message_data(message: Message) -> dict[str, Any]:
    """A :class:`~trioflow.agents.Message` as plain data for the codec."""
    return {
        "type": message.type.value,
        "sender": message.sender,
        "receiver": message.receiver,
        "content": message.content,
        "timestamp": message.timestamp,
    }


def message_from(data: Any) -> Message:
    """The message :func:`message_data` described.

    Raises:
        ValueError: the data is not a message.
    """
    try:
        return Message(
            MessageType(data["type"]),
            data["sender"],
            data["receiver"],
            data.get("content"),
            float(data["timestamp"]),
        )
    except (TypeError, KeyError) as exc:
        raise ValueError(f"not a message: {data!r} ({exc!r})") from None
