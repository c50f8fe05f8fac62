"""A sequence's iteration: a nest of steps that yields the points of a scan.

    {"steps": [
      {"declare": {"variable": "amp", "value": "2 * base"}},
      {"linspace": {"variable": "theta", "start": "0", "stop": "pi", "num": 21, "steps": [{"execute": {}}]}},
      {"arange": {"variable": "k", "start": "0", "stop": "3", "step": "1", "steps": [{"execute": {}}]}}
    ]}

Steps run in order. A declaration is visible to the steps after it in its own list and to the steps
nested below them; a loop variable to the loop's own steps. Every ``execute`` yields one point: the
values of the variables in scope. Names that are not variables are read from the global parameters
(a variable shadows a global of the same name). The number of points may depend on expressions, so
it is only known once the iteration is evaluated; evaluation stops as soon as it exceeds the limit.
"""

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .expressions import ExpressionError, evaluate

VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
STEP_KINDS = ("declare", "linspace", "arange", "execute")
MAX_DEPTH = 16


class IterationError(ValueError):
    """The iteration is malformed or cannot be evaluated; the message names the step."""


class TooManyPoints(IterationError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the iteration yields more than {limit} points, the most a sequence may have")
        self.limit = limit


def validate_iteration(iteration: Any) -> dict[str, Any]:
    """Check the shape of an iteration document (not its values); return it unchanged."""
    if not isinstance(iteration, dict) or set(iteration) != {"steps"}:
        raise IterationError('the iteration must be an object {"steps": [...]}')
    _check_steps(iteration["steps"], "steps", 0)
    return iteration


def _expression(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise IterationError(f"{where} must be a number or an expression text, not {value!r}")


def _check_steps(steps: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise IterationError(f"{where}: loops are nested more than {MAX_DEPTH} deep")
    if not isinstance(steps, list):
        raise IterationError(f"{where} must be a list of steps")
    for index, step in enumerate(steps):
        here = f"{where}[{index}]"
        if not isinstance(step, dict) or len(step) != 1 or next(iter(step)) not in STEP_KINDS:
            raise IterationError(f"{here} must be one of {{{', '.join(STEP_KINDS)}: ...}}")
        kind, body = next(iter(step.items()))
        here = f"{here}.{kind}"
        if not isinstance(body, dict):
            raise IterationError(f"{here} must be an object")
        if kind == "execute":
            if body:
                raise IterationError(f"{here} takes no fields")
            continue
        expected = {
            "declare": {"variable", "value"},
            "linspace": {"variable", "start", "stop", "num", "steps"},
            "arange": {"variable", "start", "stop", "step", "steps"},
        }[kind]
        if set(body) != expected:
            raise IterationError(f"{here} needs exactly the fields {', '.join(sorted(expected))}")
        variable = body["variable"]
        if not isinstance(variable, str) or not VARIABLE.fullmatch(variable):
            raise IterationError(f"{here}.variable must be a name (letters, digits, _), not {variable!r}")
        for field in ("value", "start", "stop", "step"):
            if field in body:
                _expression(body[field], f"{here}.{field}")
        if kind == "linspace":
            num = body["num"]
            if isinstance(num, bool) or not isinstance(num, int) or num < 1:
                raise IterationError(f"{here}.num must be a whole number of at least 1, not {num!r}")
        if kind in ("linspace", "arange"):
            _check_steps(body["steps"], f"{here}.steps", depth + 1)


def iterate_points(
    iteration: dict[str, Any], globals_: Mapping[str, float], limit: int
) -> Iterator[dict[str, float]]:
    """The points of the iteration in order: for each, the variables in scope and their values.
    Raises TooManyPoints when there would be more than `limit`."""
    counter = [0]
    yield from _run(iteration["steps"], {}, globals_, "steps", counter, limit)


def _value(text: Any, scope: dict[str, float], globals_: Mapping[str, float], where: str) -> float:
    def lookup(name: str) -> float:
        if name in scope:
            return scope[name]
        return globals_[name]

    try:
        return evaluate(text, lookup)
    except ExpressionError as exc:
        raise IterationError(f"{where}: {exc}") from None


def _run(
    steps: list[dict[str, Any]],
    outer: dict[str, float],
    globals_: Mapping[str, float],
    where: str,
    counter: list[int],
    limit: int,
) -> Iterator[dict[str, float]]:
    scope = dict(outer)
    for index, step in enumerate(steps):
        kind, body = next(iter(step.items()))
        here = f"{where}[{index}].{kind}"
        if kind == "execute":
            counter[0] += 1
            if counter[0] > limit:
                raise TooManyPoints(limit)
            yield dict(scope)
        elif kind == "declare":
            scope[body["variable"]] = _value(body["value"], scope, globals_, f"{here}.value")
        else:
            for value in _loop_values(kind, body, scope, globals_, here, limit):
                inner = {**scope, body["variable"]: value}
                yield from _run(body["steps"], inner, globals_, f"{here}.steps", counter, limit)


def _loop_values(
    kind: str,
    body: dict[str, Any],
    scope: dict[str, float],
    globals_: Mapping[str, float],
    here: str,
    limit: int,
) -> list[float]:
    start = _value(body["start"], scope, globals_, f"{here}.start")
    stop = _value(body["stop"], scope, globals_, f"{here}.stop")
    if kind == "linspace":
        num = int(body["num"])
        if num > limit:
            raise TooManyPoints(limit)
        if num == 1:
            return [start]
        return [start + (stop - start) * i / (num - 1) for i in range(num)]
    step = _value(body["step"], scope, globals_, f"{here}.step")
    if step == 0:
        raise IterationError(f"{here}.step must not be zero")
    count = max(0, math.ceil((stop - start) / step))
    if count > limit:
        raise TooManyPoints(limit)
    return [start + i * step for i in range(count)]
