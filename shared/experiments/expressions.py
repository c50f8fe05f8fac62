"""A small, safe evaluator for the expressions of global parameters and iteration steps.

An expression is arithmetic over numbers, names and a few functions: ``"2 * pi * f"``,
``"sqrt(a**2 + b**2)"``, ``"rabi.period / 4"``. It is parsed with Python's own grammar
(``ast.parse(mode="eval")``) and then *walked* here, node by node, against a closed list of what is
allowed; nothing is ever handed to ``eval``, so no attribute access, call of an unknown function,
subscript, comprehension or lambda can run. Every value is a float, so ``2 ** 100000`` overflows
into a clear error instead of building a huge integer.
"""

import ast
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

MAX_EXPRESSION_LENGTH = 1000
MAX_NESTING = 64
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

FUNCTIONS: dict[str, Callable[..., float]] = {
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "sqrt": math.sqrt,
    "abs": abs,
    "min": min,
    "max": max,
    "floor": math.floor,
    "ceil": math.ceil,
    "round": round,
}

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
}


class ExpressionError(ValueError):
    """The expression cannot be evaluated; the message says why (without naming its owner)."""


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _parse(text: str) -> ast.Expression:
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    if not text.strip():
        raise ExpressionError("the expression is empty")
    try:
        return ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{text!r} is not a valid expression ({exc.msg})") from None


def evaluate(text: str | int | float, names: Mapping[str, float] | Callable[[str], float]) -> float:
    """The value of `text`; `names` gives the value of every name it reads (a mapping, or a function
    that raises KeyError for an unknown name)."""
    if isinstance(text, bool):
        raise ExpressionError(f"{text!r} is not a number or an expression")
    if isinstance(text, int | float):
        return _finite(float(text))
    if not isinstance(text, str):
        raise ExpressionError(f"{text!r} is not a number or an expression")
    lookup = names.__getitem__ if isinstance(names, Mapping) else names
    tree = _parse(text)
    try:
        return _finite(_Walker(lookup).value(tree.body, 0))
    except ExpressionError:
        raise
    except ZeroDivisionError:
        raise ExpressionError(f"{text!r} divides by zero") from None
    except OverflowError:
        raise ExpressionError(f"{text!r} is too large") from None
    except (ValueError, TypeError) as exc:
        raise ExpressionError(f"{text!r} cannot be evaluated: {exc}") from None


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ExpressionError(f"the value {value} is not a finite number")
    return value


class _Walker:
    def __init__(self, lookup: Callable[[str], float]) -> None:
        self.lookup = lookup

    def value(self, node: ast.expr, depth: int) -> float:
        if depth > MAX_NESTING:
            raise ExpressionError("the expression is nested too deeply")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise ExpressionError(f"{node.value!r} is not a number")
            return float(node.value)
        if isinstance(node, ast.Name | ast.Attribute):
            return self.name(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
            operand = self.value(node.operand, depth + 1)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left = self.value(node.left, depth + 1)
            right = self.value(node.right, depth + 1)
            if isinstance(node.op, ast.Pow) and abs(right) > 1024:
                raise ExpressionError("an exponent above 1024 is not allowed")
            return float(_BINARY[type(node.op)](left, right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            function = FUNCTIONS.get(node.func.id)
            if function is None:
                raise ExpressionError(
                    f"unknown function {node.func.id!r}; known: {', '.join(sorted(FUNCTIONS))}"
                )
            arguments = [self.value(argument, depth + 1) for argument in node.args]
            return float(function(*arguments))
        raise ExpressionError(f"{ast.unparse(node)!r} is not allowed in an expression")

    def name(self, node: ast.Name | ast.Attribute) -> float:
        dotted = _dotted(node)
        if dotted is None:
            raise ExpressionError(f"{ast.unparse(node)!r} is not allowed in an expression")
        try:
            return float(self.lookup(dotted))
        except KeyError:
            if dotted in CONSTANTS:
                return CONSTANTS[dotted]
            raise ExpressionError(f"unknown name {dotted!r}") from None


def flatten_namespace(namespace: Any, where: str = "") -> dict[str, Any]:
    """A nested namespace {"rabi": {"f": "1.5"}} as ordered dotted names {"rabi.f": "1.5"}."""
    if not isinstance(namespace, dict):
        raise ExpressionError(f"{where or 'the namespace'} must be an object of names")
    flat: dict[str, Any] = {}
    for key, value in namespace.items():
        if not isinstance(key, str) or not NAME.fullmatch(key) or "." in key:
            raise ExpressionError(f"{key!r} is not a valid parameter name (letters, digits, _)")
        name = f"{where}.{key}" if where else key
        if isinstance(value, dict):
            flat.update(flatten_namespace(value, name))
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            flat[name] = value
        else:
            raise ExpressionError(f"parameter {name!r}: {value!r} is not a number or an expression")
    return flat


def evaluate_namespace(namespace: Any) -> dict[str, float]:
    """Every global parameter's value. A parameter may read others (in any order); a cycle, an unknown
    name or a bad expression raises ExpressionError naming the parameter."""
    flat = flatten_namespace(namespace)
    values: dict[str, float] = {}
    visiting: list[str] = []

    def resolve(name: str) -> float:
        if name in values:
            return values[name]
        if name not in flat:
            raise KeyError(name)
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise ExpressionError(f"parameter {visiting[0]!r}: the parameters refer to each other ({cycle})")
        visiting.append(name)
        try:
            values[name] = evaluate(flat[name], resolve)
        except ExpressionError as exc:
            if str(exc).startswith("parameter "):
                raise
            raise ExpressionError(f"parameter {name!r}: {exc}") from None
        finally:
            visiting.pop()
        return values[name]

    for name in flat:
        resolve(name)
    return {name: values[name] for name in flat}
