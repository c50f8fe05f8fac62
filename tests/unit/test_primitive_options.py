"""The option table (pure logic): each option's fate, and the docs that show it."""

from pathlib import Path
from typing import Any

import pytest

from shared.jobs.options import (
    RULES,
    Context,
    check_estimator_model,
    check_options,
    estimator_model_options,
    option_warnings,
)
from shared.kit.errors import InvalidInput

MANILA = Context(program="estimator", ideal=False, rep_delay_range=(0.0, 500e-6), resilience_level=1)
MANILA_SAMPLER = Context(program="sampler", ideal=False, rep_delay_range=(0.0, 500e-6), resilience_level=1)
IDEAL = Context(program="estimator", ideal=True, rep_delay_range=None, resilience_level=1)
IDEAL_SAMPLER = Context(program="sampler", ideal=True, rep_delay_range=None, resilience_level=1)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "primitives.md"


def test_the_docs_show_every_row_of_the_table() -> None:
    text = DOCS.read_text()
    for rule in RULES:
        assert f"| `{rule.path}` | {', '.join(rule.programs)} | {rule.summary} |" in text, rule.path


@pytest.mark.parametrize(
    ("params", "context", "code", "named"),
    [
        ({"options": {"bogus": 1}}, MANILA, 1256, "bogus"),
        ({"options": {"twirling": {"bogus": 1}}}, MANILA, 1256, "twirling.bogus"),
        ({"options": {"default_precision": 0.1}}, MANILA_SAMPLER, 1256, "default_precision"),
        ({"options": {"execution": {"rep_delay": 0.01}}}, MANILA, 1250, "execution.rep_delay"),
        ({"options": {"execution": {"meas_type": "kerneled"}}}, MANILA_SAMPLER, 1250, "meas_type"),
        ({"options": {"resilience": {"pec_mitigation": True}}}, MANILA, 1250, "pec_mitigation"),
        ({"options": {"resilience": {"zne": {"amplifier": "pea"}}}}, MANILA, 1250, "amplifier"),
        ({"resilience_level": 3}, MANILA, 1250, "resilience_level"),
        ({"options": {"twirling": {"num_randomizations": 0}}}, MANILA, 1250, "num_randomizations"),
    ],
)
def test_refusals_name_the_option(params: dict[str, Any], context: Context, code: int, named: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_options(params, context)
    assert refused.value.code == code
    assert named in refused.value.message


@pytest.mark.parametrize(
    ("params", "context", "named"),
    [
        ({"options": {"execution": {"rep_delay": 0.0001}}}, MANILA, "execution.rep_delay"),
        ({"options": {"execution": {"init_qubits": False}}}, MANILA, "execution.init_qubits"),
        ({"options": {"simulator": {"coupling_map": [[0, 1]]}}}, MANILA, "simulator.coupling_map"),
        (
            {"options": {"dynamical_decoupling": {"enable": True}}},
            IDEAL_SAMPLER,
            "dynamical_decoupling.enable",
        ),
        ({"options": {"dynamical_decoupling": {"enable": True}}}, IDEAL, "dynamical_decoupling.enable"),
        ({"resilience_level": 1}, MANILA_SAMPLER, "resilience_level"),
    ],
)
def test_warnings_are_readable_and_repeatable(params: dict[str, Any], context: Context, named: str) -> None:
    warnings = check_options(params, context)
    assert len(warnings) == 1 and warnings[0].startswith(f"Option {named}=")
    assert "has no effect here" in warnings[0]
    assert option_warnings(params, context) == warnings


def test_honoured_options_pass_silently() -> None:
    params = {
        "resilience_level": 2,
        "options": {
            "default_precision": 0.02,
            "seed_estimator": 5,
            "twirling": {"enable_gates": True, "num_randomizations": 8, "strategy": "active"},
            "dynamical_decoupling": {"enable": True, "sequence_type": "XY4"},
            "resilience": {"zne": {"noise_factors": [1, 3, 5], "extrapolator": ["linear"]}},
            "execution": {"init_qubits": True},
            "simulator": {"seed_simulator": 1},
        },
    }
    assert check_options(params, MANILA) == []
    sampler_params = {"options": {k: params["options"][k] for k in ("twirling", "dynamical_decoupling")}}
    assert check_options(sampler_params, MANILA_SAMPLER) == []
    model = estimator_model_options(params, ideal=False)
    assert model["resilience_level"] == 2
    assert model["resilience"]["zne"]["extrapolator"] == ("linear",)
    assert model["dynamical_decoupling"]["sequence_type"] == "XY4"
    assert "dynamical_decoupling" not in estimator_model_options(params, ideal=True)
    check_estimator_model(params, ideal=False)


def test_unset_resilience_level_is_ibms_default() -> None:
    assert estimator_model_options({"options": {}}, ideal=False)["resilience_level"] == 1


def test_pipeline_refusals_are_caught_at_submission() -> None:
    too_few = {"resilience_level": 2, "options": {"resilience": {"zne": {"noise_factors": [1]}}}}
    with pytest.raises(InvalidInput) as refused:
        check_estimator_model(too_few, ideal=False)
    assert refused.value.code == 1250 and "noise_factors" in refused.value.message
    with pytest.raises(InvalidInput) as refused:
        check_estimator_model({"options": {"twirling": {"strategy": "sideways"}}}, ideal=False)
    assert "twirling.strategy" in refused.value.message
