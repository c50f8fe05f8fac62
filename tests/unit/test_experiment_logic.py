"""Pure logic of the experiment store: the expression evaluator, iterations, the sequence state table."""

import math

import pytest

from shared.experiments.expressions import ExpressionError, evaluate, evaluate_namespace, flatten_namespace
from shared.experiments.iteration import IterationError, TooManyPoints, iterate_points, validate_iteration
from shared.experiments.states import (
    SEQUENCE_TRANSITIONS,
    SequenceState,
    check_sequence_transition,
    sequence_sources_of,
)
from shared.kit.errors import Conflict


def test_arithmetic_names_functions_and_constants() -> None:
    assert evaluate("2 * pi * f", {"f": 1.5}) == pytest.approx(3 * math.pi)
    assert evaluate("sqrt(a**2 + b**2)", {"a": 3, "b": 4}) == 5.0
    assert evaluate("-x + 7 // 2 % 2", {"x": 1}) == 0.0
    assert evaluate("rabi.period / 4", {"rabi.period": 8}) == 2.0
    assert evaluate(3, {}) == 3.0
    assert evaluate("max(1, 2, 3) + atan2(1, 1)", {}) == pytest.approx(3 + math.pi / 4)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("__import__('os').system('true')", "not allowed"),
        ("__import__('os')", "unknown function"),
        ("().__class__", "not allowed"),
        ("a if b else c", "not allowed"),
        ("[1, 2][0]", "not allowed"),
        ("lambda: 1", "not allowed"),
        ("'text'", "not a number"),
        ("2 ** 5000", "exponent"),
        ("10.0 ** 400", "too large"),
        ("1 / 0", "divides by zero"),
        ("sqrt(-1)", "cannot be evaluated"),
        ("missing + 1", "unknown name 'missing'"),
        ("1 +", "not a valid expression"),
        ("", "empty"),
        ("x" * 2000, "longer than"),
        ("f(x=1)", "not allowed"),
    ],
)
def test_what_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError, match=fragment.replace("(", r"\(")):
        evaluate(text, {})


def test_a_namespace_is_ordered_nested_and_may_refer_to_itself_in_any_order() -> None:
    namespace = {"b": "2 * a", "a": "1", "rabi": {"f": "b + 1", "half": "rabi.f / 2"}}
    assert list(flatten_namespace(namespace)) == ["b", "a", "rabi.f", "rabi.half"]
    assert evaluate_namespace(namespace) == {"b": 2.0, "a": 1.0, "rabi.f": 3.0, "rabi.half": 1.5}


def test_namespace_errors_name_the_parameter() -> None:
    with pytest.raises(ExpressionError, match="parameter 'x': unknown name 'nothing'"):
        evaluate_namespace({"x": "nothing * 2"})
    with pytest.raises(ExpressionError, match=r"refer to each other \(a -> b -> a\)"):
        evaluate_namespace({"a": "b", "b": "a"})
    with pytest.raises(ExpressionError, match="not a valid parameter name"):
        evaluate_namespace({"has space": "1"})
    with pytest.raises(ExpressionError, match="parameter 'flag'"):
        evaluate_namespace({"flag": True})


def test_iteration_points_scopes_and_shadowing() -> None:
    iteration = {
        "steps": [
            {"declare": {"variable": "amp", "value": "2 * base"}},
            {
                "linspace": {
                    "variable": "theta",
                    "start": "0",
                    "stop": "pi",
                    "num": 3,
                    "steps": [{"execute": {}}],
                }
            },
            {"arange": {"variable": "k", "start": "0", "stop": "3", "step": "1", "steps": [{"execute": {}}]}},
            {"declare": {"variable": "base", "value": "10"}},  # shadows the global from here on
            {"execute": {}},
        ]
    }
    validate_iteration(iteration)
    points = list(iterate_points(iteration, {"base": 0.5}, limit=100))
    assert [p.get("theta") for p in points[:3]] == pytest.approx([0.0, math.pi / 2, math.pi])
    assert all(p["amp"] == 1.0 for p in points)
    assert [p["k"] for p in points[3:6]] == [0.0, 1.0, 2.0]
    assert points[-1] == {"amp": 1.0, "base": 10.0}
    assert len(points) == 7


def test_nested_loops_and_the_point_limit() -> None:
    inner = {"linspace": {"variable": "y", "start": "0", "stop": "1", "num": 10, "steps": [{"execute": {}}]}}
    outer = {"arange": {"variable": "x", "start": "0", "stop": "n", "step": "1", "steps": [inner]}}
    assert len(list(iterate_points({"steps": [outer]}, {"n": 5}, limit=50))) == 50
    with pytest.raises(TooManyPoints):
        list(iterate_points({"steps": [outer]}, {"n": 6}, limit=50))
    negative = {
        "arange": {"variable": "x", "start": "3", "stop": "0", "step": "-1", "steps": [{"execute": {}}]}
    }
    assert [p["x"] for p in iterate_points({"steps": [negative]}, {}, limit=10)] == [3.0, 2.0, 1.0]


@pytest.mark.parametrize(
    "iteration",
    [
        [],
        {"steps": {}},
        {"steps": [{"loop": {}}]},
        {"steps": [{"execute": {"x": 1}}]},
        {"steps": [{"declare": {"variable": "1x", "value": "1"}}]},
        {"steps": [{"linspace": {"variable": "x", "start": 0, "stop": 1, "num": 0, "steps": []}}]},
        {"steps": [{"arange": {"variable": "x", "start": 0, "stop": 1, "steps": []}}]},
        {"steps": [{"declare": {"variable": "x", "value": True}}]},
    ],
)
def test_malformed_iterations_are_refused(iteration: object) -> None:
    with pytest.raises(IterationError):
        validate_iteration(iteration)


def test_a_zero_step_names_its_step() -> None:
    zero = {"steps": [{"arange": {"variable": "x", "start": "0", "stop": "1", "step": "0", "steps": []}}]}
    with pytest.raises(IterationError, match=r"steps\[0\].arange.step must not be zero"):
        list(iterate_points(zero, {}, limit=10))


def test_the_sequence_state_table_is_caqtus() -> None:
    allowed = {(a, b) for a, targets in SEQUENCE_TRANSITIONS.items() for b in targets}
    s = SequenceState
    assert allowed == {
        (s.DRAFT, s.PREPARING),
        (s.PREPARING, s.RUNNING),
        (s.PREPARING, s.CRASHED),
        (s.RUNNING, s.FINISHED),
        (s.RUNNING, s.INTERRUPTED),
        (s.RUNNING, s.CRASHED),
        (s.FINISHED, s.DRAFT),
        (s.INTERRUPTED, s.DRAFT),
        (s.CRASHED, s.DRAFT),
    }
    assert sequence_sources_of(s.DRAFT) == {s.FINISHED, s.INTERRUPTED, s.CRASHED}
    for current in s:
        for target in s:
            if (current, target) in allowed:
                check_sequence_transition(current, target, "/p")
            else:
                with pytest.raises(Conflict):
                    check_sequence_transition(current, target, "/p")


def test_sequence_events_have_their_routing_keys_and_asyncapi_channels() -> None:
    from shared.events.document import Event, asyncapi_document

    event = Event(
        type="sequence.state_changed",
        sequence_id="7",
        path="/lab/rabi",
        backend="fake_manila",
        instance="i",
        state="finished",
    )
    assert event.routing_key() == "sequence.finished.fake_manila" and event.is_final
    assert event.tenant_routing_key() == "i.sequence.finished.fake_manila"
    running = Event(type="sequence.state_changed", sequence_id="7", backend="fake_manila", state="running")
    assert not running.is_final
    channels = asyncapi_document("qruntime")["channels"]
    assert {"sequence.{state}.{backend}", "{instance}.sequence.{state}.{backend}"} <= set(channels)
