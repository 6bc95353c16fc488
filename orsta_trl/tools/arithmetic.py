"""``calculator``: arithmetic read with :mod:`ast` and evaluated node by node; ``eval`` is never called.

Allowed: numbers, ``+ - * / // % **``, unary ``+ -``, parentheses, and the functions and constants of
:data:`FUNCTIONS` / :data:`CONSTANTS`. Anything else (names, attributes, calls of other functions, strings,
comprehensions) is an ``Error`` result. Exponents and factorials are bounded (:data:`MAX_EXPONENT`,
:data:`MAX_DIGITS`), so ``9**9**9`` comes back at once as an ``Error`` instead of hanging the rollout.
"""

from __future__ import annotations

import ast
import math
import operator

#: Functions a call may name (the name as written).
FUNCTIONS = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "factorial": math.factorial,
    "gcd": math.gcd,
    "min": min,
    "max": max,
}
CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_EXPONENT = 10_000
MAX_DIGITS = 4_000  # below Python's 4,300-digit limit of int -> str
MAX_LENGTH = 2_000

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class _Refused(ValueError):
    pass


def _too_big(value) -> bool:
    return isinstance(value, int) and value.bit_length() > MAX_DIGITS * 3.33


def _eval(node: ast.AST):
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, complex):
        return node.value
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise _Refused(f"exponent {right} is larger than {MAX_EXPONENT}")
        if (
            isinstance(node.op, ast.Pow)
            and isinstance(left, int)
            and abs(left) > 1
            and isinstance(right, int)
        ):
            if right * math.log10(abs(left)) > MAX_DIGITS:
                raise _Refused(f"the result would have more than {MAX_DIGITS} digits")
        result = _BINARY[type(node.op)](left, right)
        if _too_big(result):
            raise _Refused(f"the result has more than {MAX_DIGITS} digits")
        return result
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        if node.keywords:
            raise _Refused("keyword arguments are not supported")
        args = [_eval(a) for a in node.args]
        if node.func.id == "factorial" and args and isinstance(args[0], int) and args[0] > 3000:
            raise _Refused("factorial argument larger than 3000")
        return FUNCTIONS[node.func.id](*args)
    raise _Refused(f"unsupported syntax: {ast.dump(node)[:60]}")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return the result.

    Supports + - * / // % ** and parentheses, the functions sqrt, abs, round, floor, ceil, log, log10, exp,
    sin, cos, tan, factorial, gcd, min, max, and the constants pi and e.

    Args:
        expression: The arithmetic expression to evaluate, for example "(3 + 4) * 2 ** 3".

    Returns:
        The value as text, or a message starting with "Error" when the expression cannot be evaluated.

    >>> calculator("(3 + 4) * 2 ** 3"), calculator("__import__('os')")[:5], calculator("9**9**9")[:5]
    ('56', 'Error', 'Error')
    """
    if not isinstance(expression, str):
        return f"Error: expected the expression as text, got {type(expression).__name__}"
    if len(expression) > MAX_LENGTH:
        return f"Error: the expression is longer than {MAX_LENGTH} characters"
    try:
        tree = ast.parse(expression.strip().replace("^", "**"), mode="eval")
        value = _eval(tree)
    except _Refused as exc:
        return f"Error: {exc}"
    except SyntaxError:
        return "Error: not a valid arithmetic expression"
    except (ArithmeticError, ValueError, TypeError, RecursionError) as exc:
        return f"Error: {type(exc).__name__}: {exc}"
    try:
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return str(value)
    except ValueError as exc:
        return f"Error: {exc}"
