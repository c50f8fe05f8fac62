"""The fate of every primitive option, in one table.

Each option of the legacy `sampler` and `estimator` programs (as qiskit-ibm-runtime's SamplerV2 and
EstimatorV2 send them in `params.options`, plus `params.resilience_level`) is either

* honoured: the simulation applies it;
* refused: the job is refused at submission with a 1xxx code and a message naming the option;
* warned: the job runs, and a readable warning says the option has no effect here (in the
  result's metadata under "warnings" and in the job's logs).

An option name that is not in the table is refused, as IBM does. The api calls `check_options` when
a job is submitted; the executor and the job logs call `option_warnings` on the stored params,
which gives the same warnings because it is the same table. docs/primitives.md shows this table
to users; a unit test keeps the two in step.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.kit.errors import ErrorCode, InvalidInput


class Fate(StrEnum):
    HONOURED = "honoured"
    WARNED = "warned"
    REFUSED = "refused"


@dataclass(frozen=True)
class Context:
    program: str  # "sampler" | "estimator"
    ideal: bool  # the ideal simulator (no noise, no device)
    rep_delay_range: tuple[float, float] | None  # seconds, from the device's configuration
    resilience_level: int


@dataclass(frozen=True)
class Verdict:
    fate: Fate
    reason: str = ""


HONOURED = Verdict(Fate.HONOURED)
Decide = Callable[[Any, Context], Verdict]


def always(fate: Fate, reason: str = "") -> Decide:
    verdict = Verdict(fate, reason)
    return lambda _value, _context: verdict


def _ideal_no_effect(reason: str) -> Decide:
    def decide(_value: Any, context: Context) -> Verdict:
        return Verdict(Fate.WARNED, reason) if context.ideal else HONOURED

    return decide


def _dd_enable(value: Any, context: Context) -> Verdict:
    if not value:
        return HONOURED
    if context.ideal:
        return Verdict(Fate.WARNED, "the ideal simulator has no idle errors to decouple")
    return HONOURED


def _rep_delay(value: Any, context: Context) -> Verdict:
    if context.rep_delay_range is not None:
        low, high = context.rep_delay_range
        if not isinstance(value, int | float) or not low <= float(value) <= high:
            return Verdict(
                Fate.REFUSED,
                f"it must be between {low:g} and {high:g} seconds on this device",
            )
    return Verdict(Fate.WARNED, "the simulator starts every shot from |0>, so the delay changes nothing")


def _init_qubits(value: Any, _context: Context) -> Verdict:
    if value is False:
        return Verdict(Fate.WARNED, "the simulator always starts every shot from |0>")
    return HONOURED


def _meas_type(value: Any, _context: Context) -> Verdict:
    if value == "classified":
        return HONOURED
    return Verdict(Fate.REFUSED, "only 'classified' results are simulated (no IQ data)")


def _pec(value: Any, _context: Context) -> Verdict:
    if value:
        return Verdict(
            Fate.REFUSED,
            "PEC needs a learned layer noise model; use the executor-based Estimator "
            "(qiskit_ibm_runtime.executor_estimator) with resilience.layer_noise_model",
        )
    return HONOURED


def _zne_amplifier(value: Any, _context: Context) -> Verdict:
    if value in ("gate_folding", "gate_folding_front", "gate_folding_back"):
        return HONOURED
    return Verdict(
        Fate.REFUSED,
        "only gate folding amplifies noise here ('gate_folding', 'gate_folding_front', "
        "'gate_folding_back'); PEA needs a learned layer noise model",
    )


def _resilience_level(value: Any, context: Context) -> Verdict:
    if isinstance(value, bool) or value not in (0, 1, 2):
        return Verdict(Fate.REFUSED, "it must be 0, 1 or 2")
    if context.program != "estimator":
        return Verdict(Fate.WARNED, "the sampler has no resilience levels")
    return HONOURED


def _positive_number(value: Any, _context: Context) -> Verdict:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return Verdict(Fate.REFUSED, "it must be a positive number")
    return HONOURED


def _shots_count(value: Any, context: Context) -> Verdict:
    if context.program == "sampler":
        return HONOURED  # checked against the shot limits with the pubs' own shots (code 6001)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return Verdict(Fate.REFUSED, "it must be a whole number of shots, at least 1")
    return HONOURED


def _randomizations(value: Any, _context: Context) -> Verdict:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return HONOURED
    return Verdict(Fate.REFUSED, "it must be 'auto' or a whole number, at least 1")


_DEVICE_OWN = "the device's own noise model, coupling map and basis gates are simulated"
_NO_LAYER_LEARNING = "no layer noise is learned for the legacy estimator here (no PEC/PEA)"


@dataclass(frozen=True)
class Rule:
    path: str
    programs: tuple[str, ...]
    decide: Decide
    summary: str  # for the docs table


def _honoured(path: str, programs: tuple[str, ...], summary: str = "honoured") -> Rule:
    """An option applied as the service applies it, whatever its value."""
    return Rule(path, programs, always(Fate.HONOURED), summary)


def _warned(path: str, programs: tuple[str, ...], reason: str) -> Rule:
    """An option accepted but not applied here, whatever its value: the warning says why."""
    return Rule(path, programs, always(Fate.WARNED, reason), "warned")


S, E, SE, NL = ("sampler",), ("estimator",), ("sampler", "estimator"), ("noise-learner",)
_SAMPLOMATIC = "honoured (samplomatic twirls, as the client-side primitives)"
_COMPUTED = "the layer errors are computed from the device's noise model, not sampled"


def _twirling_strategy(value: Any, _context: Context) -> Verdict:
    if value in ("active", "active-accum", "active-circuit", "all"):
        return HONOURED
    return Verdict(Fate.REFUSED, "it must be 'active', 'active-accum', 'active-circuit' or 'all'")


def _layer_count(value: Any, _context: Context) -> Verdict:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return HONOURED
    return Verdict(Fate.REFUSED, "it must be a whole number, at least 0")


RULES: tuple[Rule, ...] = (
    Rule("default_shots", SE, _shots_count, "honoured (estimator: sets the shots, i.e. a precision)"),
    Rule("default_precision", E, _positive_number, "honoured: shots = ceil(1/precision^2)"),
    _honoured("seed_estimator", E, "honoured: seeds sampling and twirling"),
    Rule("resilience_level", E, _resilience_level, "honoured: 0, 1 (TREX), 2 (+ gate twirling, ZNE)"),
    _honoured("resilience.measure_mitigation", E, "honoured (TREX)"),
    Rule("resilience.measure_noise_learning.num_randomizations", E, _randomizations, "honoured"),
    _warned(
        "resilience.measure_noise_learning.shots_per_randomization",
        E,
        "TREX calibration shots follow the job's shots here",
    ),
    _honoured("resilience.zne_mitigation", E, "honoured (gate folding)"),
    _honoured("resilience.zne.noise_factors", E),
    _honoured("resilience.zne.extrapolator", E),
    _honoured("resilience.zne.extrapolated_noise_factors", E),
    Rule("resilience.zne.amplifier", E, _zne_amplifier, "honoured for gate folding; 'pea' refused"),
    Rule("resilience.pec_mitigation", E, _pec, "refused when true (needs a learned noise model)"),
    _warned("resilience.pec.max_overhead", E, "PEC is not run here"),
    _warned("resilience.pec.noise_gain", E, "PEC is not run here"),
    _warned("resilience.layer_noise_learning.max_layers_to_learn", E, _NO_LAYER_LEARNING),
    _warned("resilience.layer_noise_learning.shots_per_randomization", E, _NO_LAYER_LEARNING),
    _warned("resilience.layer_noise_learning.num_randomizations", E, _NO_LAYER_LEARNING),
    _warned("resilience.layer_noise_learning.layer_pair_depths", E, _NO_LAYER_LEARNING),
    _warned("resilience.layer_noise_model", E, _NO_LAYER_LEARNING),
    _honoured("twirling.enable_gates", SE, _SAMPLOMATIC),
    _honoured("twirling.enable_measure", SE, _SAMPLOMATIC),
    Rule("twirling.num_randomizations", SE, _randomizations, "honoured"),
    Rule("twirling.shots_per_randomization", SE, _randomizations, "honoured"),
    _honoured("twirling.strategy", SE, _SAMPLOMATIC),
    Rule(
        "dynamical_decoupling.enable",
        SE,
        _dd_enable,
        "on a device: honoured (the device's durations); on the ideal simulator: warned",
    ),
    Rule("dynamical_decoupling.sequence_type", SE, _dd_enable, "as dynamical_decoupling.enable"),
    Rule("dynamical_decoupling.extra_slack_distribution", SE, _dd_enable, "as dynamical_decoupling.enable"),
    Rule("dynamical_decoupling.scheduling_method", SE, _dd_enable, "as dynamical_decoupling.enable"),
    Rule("dynamical_decoupling.skip_reset_qubits", SE, _dd_enable, "as dynamical_decoupling.enable"),
    Rule("execution.init_qubits", SE, _init_qubits, "true: honoured; false: warned"),
    Rule("execution.rep_delay", SE, _rep_delay, "outside the device's rep_delay_range: refused; else warned"),
    Rule("execution.meas_type", S, _meas_type, "'classified': honoured; kerneled: refused"),
    _honoured("simulator.seed_simulator", SE),
    _warned("simulator.noise_model", SE, _DEVICE_OWN),
    _warned("simulator.coupling_map", SE, _DEVICE_OWN),
    _warned("simulator.basis_gates", SE, _DEVICE_OWN),
    Rule("max_layers_to_learn", NL, _layer_count, "honoured"),
    Rule("twirling_strategy", NL, _twirling_strategy, "honoured: which qubits each layer covers"),
    _honoured("support_qiskit", NL, "honoured (sent by the client)"),
    _warned("shots_per_randomization", NL, _COMPUTED),
    _warned("num_randomizations", NL, _COMPUTED),
    _warned("layer_pair_depths", NL, _COMPUTED),
)
_BY_PATH = {(rule.path, program): rule for rule in RULES for program in rule.programs}
_PREFIXES = {rule.path.rsplit(".", 1)[0] for rule in RULES if "." in rule.path} | {
    "resilience.zne",
    "resilience.pec",
    "resilience.measure_noise_learning",
    "resilience.layer_noise_learning",
}
# Leaves whose values are structured (not walked into).
_STRUCTURED = {"resilience.layer_noise_model", "simulator.noise_model", "simulator.coupling_map"}


def _leaves(options: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in options.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in _STRUCTURED and path in _PREFIXES:
            yield from _leaves(value, path + ".")
        elif value is not None:
            yield path, value


def context_for(program: str, params: dict[str, Any], ideal: bool, rep_delay_range: Any) -> Context:
    level = params.get("resilience_level")
    return Context(
        program=program,
        ideal=ideal,
        rep_delay_range=None if rep_delay_range is None else (rep_delay_range[0], rep_delay_range[1]),
        resilience_level=1 if level is None else int(level) if isinstance(level, int) else 1,
    )


def verdicts(params: dict[str, Any], context: Context) -> list[tuple[str, Any, Verdict]]:
    """Every option set in these params with its fate; unknown names are refused."""
    options = params.get("options") or {}
    found: list[tuple[str, Any, Verdict]] = []
    if not isinstance(options, dict):
        return [("options", options, Verdict(Fate.REFUSED, "options must be an object"))]
    if params.get("resilience_level") is not None:
        value = params["resilience_level"]
        found.append(("resilience_level", value, _resilience_level(value, context)))
    for path, value in _leaves(options):
        rule = _BY_PATH.get((path, context.program))
        if rule is None:
            known = any(path == rule.path for rule in RULES)
            reason = (
                f"it is not an option of the {context.program} program"
                if known
                else "it is not a known option name"
            )
            found.append((path, value, Verdict(Fate.REFUSED, reason)))
        else:
            found.append((path, value, rule.decide(value, context)))
    return found


def check_options(params: dict[str, Any], context: Context) -> list[str]:
    """Refuse the first refused option (InvalidInput naming it); return the warnings."""
    found = verdicts(params, context)
    for path, value, verdict in found:
        if verdict.fate is Fate.REFUSED:
            known = (path, context.program) in _BY_PATH or path == "resilience_level"
            raise InvalidInput(
                ErrorCode.OPTION_NOT_SUPPORTED if known else ErrorCode.UNKNOWN_OPTION,
                f"Option {path}={value!r} is refused: {verdict.reason}.",
            )
    return [_warning(path, value, verdict) for path, value, verdict in found if verdict.fate is Fate.WARNED]


def option_warnings(params: dict[str, Any], context: Context) -> list[str]:
    """The warnings of params that were accepted (nothing raises)."""
    return [
        _warning(path, value, verdict)
        for path, value, verdict in verdicts(params, context)
        if verdict.fate is Fate.WARNED
    ]


def _warning(path: str, value: Any, verdict: Verdict) -> str:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"Option {path}={shown} has no effect here: {verdict.reason}."


# The honoured estimator options, as qiskit-ibm-runtime's executor-based Estimator names them
# (qiskit_ibm_runtime.options_models.EstimatorOptions): the legacy program runs that pipeline.
_MODEL_PATHS = (
    "default_precision",
    "default_shots",
    "resilience.measure_mitigation",
    "resilience.measure_noise_learning.num_randomizations",
    "resilience.zne_mitigation",
    "resilience.zne.noise_factors",
    "resilience.zne.extrapolator",
    "resilience.zne.extrapolated_noise_factors",
    "resilience.zne.amplifier",
    "twirling.enable_gates",
    "twirling.enable_measure",
    "twirling.num_randomizations",
    "twirling.shots_per_randomization",
    "twirling.strategy",
)
_DD_PATHS = (
    "dynamical_decoupling.enable",
    "dynamical_decoupling.sequence_type",
    "dynamical_decoupling.extra_slack_distribution",
    "dynamical_decoupling.scheduling_method",
    "dynamical_decoupling.skip_reset_qubits",
)


def estimator_model_options(params: dict[str, Any], ideal: bool) -> dict[str, Any]:
    """The legacy estimator's honoured options as a dict for the executor-based EstimatorOptions.
    An unset resilience_level is IBM's default, 1."""
    options = params.get("options") or {}
    leaves = dict(_leaves(options)) if isinstance(options, dict) else {}
    model: dict[str, Any] = {"resilience_level": params.get("resilience_level", 1)}
    for path in _MODEL_PATHS + (() if ideal else _DD_PATHS):
        if path in leaves:
            node = model
            *parents, name = path.split(".")
            for parent in parents:
                node = node.setdefault(parent, {})
            value = leaves[path]
            node[name] = tuple(value) if isinstance(value, list) and name == "extrapolator" else value
    return model


def check_estimator_model(params: dict[str, Any], ideal: bool) -> None:
    """Refuse, at submission, honoured estimator options the pipeline would refuse when running:
    wrong types or values, and too few ZNE noise factors for the extrapolator."""
    from pydantic import ValidationError
    from qiskit_ibm_runtime.executor_estimator.finalize_options import finalize_estimator_options
    from qiskit_ibm_runtime.executor_estimator.prepare import normalise_extrapolator
    from qiskit_ibm_runtime.executor_estimator.utils import resolve_noise_factors, validate_noise_factors
    from qiskit_ibm_runtime.options_models.estimator import EstimatorOptions

    try:
        model = EstimatorOptions.model_validate(estimator_model_options(params, ideal))
    except ValidationError as exc:
        error = exc.errors()[0]
        path = ".".join(
            str(part) for part in error["loc"] if not str(part).startswith(("function", "literal"))
        )
        raise InvalidInput(
            ErrorCode.OPTION_NOT_SUPPORTED,
            f"Option {path}={error.get('input')!r} is refused: {error['msg']}.",
        ) from exc
    resilience = finalize_estimator_options(model).resilience
    if resilience.zne_mitigation:
        try:
            noise_factors, _ = resolve_noise_factors(resilience.zne)
            validate_noise_factors(noise_factors, normalise_extrapolator(resilience.zne.extrapolator))
        except Exception as exc:
            raise InvalidInput(
                ErrorCode.OPTION_NOT_SUPPORTED,
                f"Option resilience.zne.noise_factors is refused: {' '.join(str(exc).split())}",
            ) from exc
