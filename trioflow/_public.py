"""Show public names under their public module, as trio does.

A class defined in ``trioflow.scheduler._runner`` but imported as ``trioflow.TaskHandle``
should say so in reprs, tracebacks, pickles and the API docs. Each public package calls
:func:`publish` once at the end of its ``__init__``.
"""

from __future__ import annotations

import contextlib
from collections.abc import MutableMapping

__all__ = ["publish"]


def publish(namespace: MutableMapping[str, object], module: str) -> None:
    """Set ``__module__`` to ``module`` on every public name in ``namespace`` that was
    defined in one of trioflow's private modules (a name with a ``._`` in its path)."""
    for name, obj in list(namespace.items()):
        if name.startswith("_"):
            continue
        defined_in = getattr(obj, "__module__", None)
        if (
            isinstance(defined_in, str)
            and defined_in.startswith("trioflow.")
            and ("._" in defined_in)
        ):
            # A value rather than a class or function may refuse; it needs no fix.
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = module
