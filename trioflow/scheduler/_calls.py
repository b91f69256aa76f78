"""How an attempt calls a task's function, and how what it raised is sorted.

Pure helpers of the runner, one concern each: whether a callable is async (looked at once
per distinct function), stepping a coroutine inside a context that is not its worker's,
running a plain function in a worker process (``process=True``), and splitting an
exception group into the part a scope must see and the rest.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import pickle
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

__all__ = ["check_process_call", "in_context", "is_async_callable", "run_in_process", "split"]

T = TypeVar("T")


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` gives a coroutine (to await) rather than a value (to compute
    in a thread)."""
    code = getattr(fn, "__code__", None)
    if code is not None:  # a plain function: the fast path, once per distinct function
        return bool(code.co_flags & inspect.CO_COROUTINE)
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )


@types.coroutine
def in_context(
    context: contextvars.Context, coro: Coroutine[Any, Any, T]
) -> Generator[Any, Any, T]:
    """Run ``coro`` with each of its steps inside ``context``: what trio does for a task,
    for a coroutine that must not run in its worker's context."""
    send = coro.send
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            yielded = context.run(send, value) if error is None else context.run(coro.throw, error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value = yield yielded
            error = None
        except BaseException as exc:  # delivered into the task, as trio would
            value, error = None, exc


def check_process_call(fn: Callable[..., Any], process: object, is_async: bool) -> None:
    """Refuse at submit what cannot run in a worker process."""
    if type(process) is not bool:
        raise TypeError(f"process must be a bool, got {process!r}")
    if is_async:
        raise TypeError(f"process=True runs a plain function in a worker process; {fn!r} is async")
    try:
        pickle.dumps(fn)
    except Exception as exc:
        raise TypeError(
            f"process=True needs a function a worker process can import (a module-level "
            f"function, not a lambda or a local one): {fn!r} cannot be pickled ({exc})"
        ) from None
    try:
        import trio_parallel  # noqa: F401
    except ImportError:
        raise ImportError(
            "process=True needs trio-parallel: pip install 'trioflow[process]'"
        ) from None


async def run_in_process(call: Callable[[], T]) -> T:
    """Run ``call`` in a worker process. Cancelling (a timeout, ``cancel()``) kills the
    process: a CPU-bound function cannot be interrupted any other way."""
    import trio_parallel

    result: T = await trio_parallel.run_sync(call, kill_on_cancel=True)
    return result


def split(
    error: BaseException | None, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> tuple[BaseException | None, BaseException | None]:
    """``(the part of error that is kind, the rest)``; either may be None. A group is split
    leaf by leaf, keeping its structure on both sides, as ``BaseExceptionGroup.split``."""
    if error is None:
        return None, None
    if isinstance(error, kind):
        return error, None
    if isinstance(error, BaseExceptionGroup):
        return error.split(kind)
    return None, error
