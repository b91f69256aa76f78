"""Safe arithmetic: evaluate ``+ - * / // % **``, parentheses and numbers, never ``eval``.

The expression is parsed with :mod:`ast` and walked with an allow-list of node types. Names,
calls, attributes, subscripts, comparisons, strings and everything else are refused before
anything is computed. Sizes are bounded up front, so no input can make it compute a huge
number: the text length, the number of nodes, the size of integer results (estimated
*before* each multiplication or power from the operands' sizes, and checked exactly after
every operation, so no intermediate result is over the bound either) and float overflow,
literals such as ``1e999`` included.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from ..._errors import TaskRejected

MAX_LENGTH = 200
MAX_NODES = 100
MAX_INT_BITS = 4096  # about 1233 decimal digits

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


class CalculationError(TaskRejected):
    """The expression is not plain arithmetic, is too large, or cannot be computed. (A
    :class:`~trioflow.TaskRejected`: no other agent would do better, so it is not retried.)"""


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression.

    Raises:
        CalculationError: anything but numbers, ``+ - * / // % **`` and parentheses; input
            over :data:`MAX_LENGTH` characters or :data:`MAX_NODES` nodes; a result over
            :data:`MAX_INT_BITS` bits or a float overflow; division by zero.
    """
    if not isinstance(expression, str):
        raise CalculationError(f"expression must be a string, got {type(expression).__name__}")
    if len(expression) > MAX_LENGTH:
        raise CalculationError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"not an arithmetic expression: {exc.msg}") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise CalculationError(f"expression has more than {MAX_NODES} parts")
    return _value(tree.body)


def _value(node: ast.expr) -> int | float:
    if isinstance(node, ast.Constant):
        value = node.value
        if type(value) is float and not math.isfinite(value):
            raise CalculationError("number too large")  # a literal such as 1e999 reads as inf
        if type(value) is int or type(value) is float:  # not bool, not complex
            return value
        raise CalculationError(f"only numbers are allowed, not {node.value!r}")
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        _check_size(node.op, left, right)
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise CalculationError("division by zero") from None
        except OverflowError:
            raise CalculationError("result too large") from None
        if isinstance(result, complex):
            raise CalculationError("result is not a real number")
        if isinstance(result, float) and not math.isfinite(result):
            raise CalculationError("result too large")
        if type(result) is int and result.bit_length() > MAX_INT_BITS:
            raise CalculationError("result too large")
        return result
    raise CalculationError(f"{type(node).__name__} is not allowed in arithmetic")


def _check_size(op: ast.operator, left: int | float, right: int | float) -> None:
    """Refuse an integer product or power whose result would be over MAX_INT_BITS, before
    computing it; what passes is at most a bit over, and checked exactly afterwards."""
    if type(left) is not int or type(right) is not int:
        return  # float arithmetic cannot grow past its overflow, which is caught
    if isinstance(op, ast.Mult):
        # A product of numbers of a and b bits has a + b - 1 or a + b bits.
        if left and right and left.bit_length() + right.bit_length() - 1 > MAX_INT_BITS:
            raise CalculationError("result too large")
    elif isinstance(op, ast.Pow):
        if right < 0 and left == 0:
            raise CalculationError("division by zero")
        # |left| ** right has about right * log2|left| bits (0, 1 and -1 stay small). Since
        # log2|left| >= 1, an exponent over MAX_INT_BITS + 1 is too large whatever the base;
        # checked first, as an int, because a larger one may not even convert to a float.
        if (
            right > 0
            and abs(left) > 1
            and (right > MAX_INT_BITS + 1 or right * math.log2(abs(left)) > MAX_INT_BITS + 1)
        ):
            raise CalculationError("result too large")
