"""Fidelity: the official 0.51 client against qruntime, compared with the same client's local testing
mode (qiskit_ibm_runtime.fake_provider, run here in-process on the same fake device).

One client run (the `fidelity` scenario) collects everything; each test below checks one property.
Tolerances, and why:

* Values are compared in units of their standard errors, at 4 sigma (a false alarm about once in
  16,000 comparisons), or at the issue's fixed 0.05 where that is the requirement.
* Reported stds come from the data: for <ZII> of a GHZ state (expectation ~0) the standard error is
  sqrt(1 - ev^2 / shots) ~ precision, so they must be within 30 % of the requested precision.
* The spread of 16 independent estimates is a chi-square quantity with 15 degrees of freedom: its
  ratio to the precision lies in [0.45, 1.65] with probability 0.998. Their mean is compared with
  local testing mode's value at precision 0.005 (what both converge to), at 4 combined sigma. (Local
  testing mode's own 100-shot runs of this pub averaged +0.040 +- 0.006 over 240 runs against
  +0.002 at 40,000 shots, so they are not used as the reference.)
* Mitigation: level 1 (TREX) must bring <XXX> within 40 % of level 0's error from the ideal 1, and
  level 2 closer than level 0; on fake_manila readout error dominates (level 0 ~ 0.69, level 1 ~ 0.94,
  level 2 ~ 0.97, each +- 0.02), so the margins are several sigma wide.
"""

import math
import statistics
import warnings
from typing import Any

import pytest

from tests.compat.test_official_client import run_client
from tests.stack import Stack

LOCAL_REPEATS = 8


@pytest.fixture(scope="module")
def fidelity_stack() -> Any:
    stack = Stack(backends=["aer_simulator", "fake_manila"])
    try:
        stack.start_all()
        yield stack
    finally:
        stack.destroy()


@pytest.fixture(scope="module")
def seen(fidelity_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_client(fidelity_stack, "0.51", "fidelity", tmp_path_factory.mktemp("fidelity"))


@pytest.fixture(scope="module")
def local(seen: dict[str, Any]) -> dict[str, Any]:
    """Local testing mode on the same ISA circuit (same layout) and observables."""
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import EstimatorV2
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    device = FakeManilaV2()
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    isa = generate_preset_pass_manager(
        optimization_level=1, backend=device, initial_layout=seen["layout"]
    ).run(circuit)
    xxx = SparsePauliOp("XXX").apply_layout(isa.layout)
    zii = SparsePauliOp("IIZ").apply_layout(isa.layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ghz = EstimatorV2(mode=device).run([(isa, xxx)] * LOCAL_REPEATS).result()
        reference = EstimatorV2(mode=device).run([(isa, zii)], precision=0.005).result()
    return {
        "xxx": [float(pub.data.evs) for pub in ghz],
        "xxx_std": float(ghz[0].data.stds),
        "zii": float(reference[0].data.evs),
    }


def test_unmitigated_estimator_matches_local_testing_mode(
    seen: dict[str, Any], local: dict[str, Any]
) -> None:
    level0 = seen["levels"]["0"]
    local_mean = statistics.fmean(local["xxx"])
    assert abs(level0["ev"] - local_mean) <= 0.05, (level0, local_mean)
    assert level0["std"] > 0
    assert level0["std"] == pytest.approx(local["xxx_std"], rel=0.3)
    assert level0["metadata"]["target_precision"] == 0.015625
    assert level0["metadata"]["shots"] == 4096
    assert "num_randomizations" not in level0["metadata"]


def test_default_options_are_ibms(seen: dict[str, Any]) -> None:
    """Unset resilience_level is IBM's default, 1: measurement twirling + TREX."""
    default = seen["default"]
    assert default["std"] > 0
    assert default["metadata"]["target_precision"] == 0.015625
    assert default["metadata"]["shots"] == 4096
    assert default["metadata"]["num_randomizations"] == 32
    assert default["job_metadata"]["resilience"]["measure_mitigation"] is True
    assert default["job_metadata"]["twirling"]["enable_measure"] is True
    assert -1 <= default["ev"] <= 1


def test_resilience_levels_reduce_the_error(seen: dict[str, Any]) -> None:
    error = {level: abs(1 - seen["levels"][str(level)]["ev"]) for level in (0, 1, 2)}
    assert error[1] <= 0.4 * error[0], error
    assert error[2] < error[0], error
    zne = seen["levels"]["2"]
    assert {"evs_extrapolated", "stds_extrapolated", "evs_noise_factors"} <= set(zne["fields"])
    assert "zne" in zne["metadata"]["resilience"]


def test_precision_sets_shots_and_stds_come_from_data(seen: dict[str, Any], local: dict[str, Any]) -> None:
    for precision_text, sweep in seen["sweep"].items():
        precision = float(precision_text)
        assert sweep["shots"] == math.ceil(1 / precision**2)
        assert sweep["target_precision"] == precision
        for std in sweep["stds"]:
            assert std == pytest.approx(precision, rel=0.3)
        assert all(-1 <= ev <= 1 for ev in sweep["evs"])
        spread = statistics.stdev(sweep["evs"])
        assert 0.45 * precision <= spread <= 1.65 * precision, (precision, spread)
        ours, reference = statistics.fmean(sweep["evs"]), local["zii"]
        # Local testing mode's own value of <ZII> is not stable at the precision asked of it: runs gave
        # +0.002 and +0.0405 at precision 0.005 (the ideal and the noisy values are near 0), so the
        # reference carries up to 0.045 of its own error beside our 16-run mean's.
        assert abs(ours - reference) <= 4 * math.sqrt(precision**2 / 16) + 0.045, (ours, reference)
    assert seen["default_shots"]["shots"] == 400
    assert seen["default_shots"]["target_precision"] == pytest.approx(0.05)


def test_honoured_options_show_their_effect(seen: dict[str, Any]) -> None:
    assert seen["seeded_evs"][0] == seen["seeded_evs"][1]
    assert seen["twirled"]["num_randomizations"] == 4
    assert seen["dd"]["enable"] is True and seen["dd"]["sequence_type"] == "XY4"
    zne = seen["zne"]
    assert zne["resilience"]["zne"]["noise_factors"] == [1.0, 2.0, 3.0], zne
    assert "evs_noise_factors" in zne["fields"], zne


def test_warned_options_say_so_in_metadata_and_logs(seen: dict[str, Any]) -> None:
    warned = seen["warned"]
    for option in ("execution.init_qubits", "execution.rep_delay"):
        assert any(option in text and "no effect" in text for text in warned["metadata"]), warned
        assert f"warning: Option {option}=" in warned["logs"], warned["logs"]
    assert seen["sampler_warnings"] == []  # the sampler honours twirling: no warning


def test_twirled_sampler_keeps_the_bell_state(seen: dict[str, Any]) -> None:
    """Gate twirling on the sampler: at least the shots asked (whole randomizations), and the
    Bell correlations a noisy device gives (>= 85 % in 00/11 on fake_manila, ~93 % expected)."""
    counts = seen["twirled_counts"]
    total = sum(counts.values())
    assert 100 <= total <= 200
    assert counts.get("00", 0) + counts.get("11", 0) >= 0.85 * total, counts


@pytest.mark.parametrize(
    ("row", "code", "option"),
    [
        ("rep_delay", "1250", "execution.rep_delay"),
        ("kerneled", "1250", "execution.meas_type"),
        ("pec", "1250", "resilience.pec_mitigation"),
        ("pea", "1250", "resilience.zne.amplifier"),
        ("unknown", "1256", "bogus_option"),
        ("private", "1250", "environment.private"),
    ],
)
def test_refused_options_name_the_option(seen: dict[str, Any], row: str, code: str, option: str) -> None:
    refusal = seen["refused"][row]
    assert refusal["refused"] is True
    assert code in refusal["message"] and option in refusal["message"], refusal["message"]


def test_usage_spans_and_dynamic_circuits(seen: dict[str, Any]) -> None:
    assert seen["usage_positive"] is True, seen["usage"]
    spans = seen["spans"]
    assert spans["count"] == 1 and spans["start_before_stop"] is True
    assert spans["mask_shape"] == [100] and spans["pub_idxs"] == [0]
    assert "fake_manila" in seen["dynamic_backends"] and "aer_simulator" in seen["dynamic_backends"]


def test_dry_run_on_the_mock_device(seen: dict[str, Any]) -> None:
    dry = seen["dry_run"]
    assert dry["sampler_backend"] == "mock_manila"
    assert dry["sampler_shots"] == 50
    assert dry["estimator_shape"] == []
    assert "mock_manila" not in dry["listed"] and "mock_manila" in dry["listed_with_mocks"]
    assert dry["least_busy"] == "fake_manila"


def test_noise_learner_layers_follow_the_device(seen: dict[str, Any]) -> None:
    """GHZ-3 on fake_manila has two CX layers; active-accum gives [a, b] then [a, b, c]."""
    learned = seen["noise_learner"]
    assert learned["type"] == "NoiseLearnerResult" and learned["protocol"] == "lindblad"
    first, second = learned["layers"]
    assert len(first["qubits"]) == 2 and first["num_generators"] == 15
    assert len(second["qubits"]) == 3 and set(first["qubits"]) < set(second["qubits"])
    assert second["num_generators"] == 15 + 3  # the gate's pair, and relaxation on the idle qubit
    for layer in learned["layers"]:
        assert layer["gates"] == {"cx": 1}
        # fake_manila's CX errors are ~1 %: 15 rates of order 1e-4 to 1e-3, none negative.
        assert 0 <= layer["rates_min"] and 1e-5 < layer["rates_max"] < 0.05
    refusal = seen["noise_learner_v3"]
    assert (
        refusal["refused"] is True and "1250" in refusal["message"] and "NoiseLearnerV3" in refusal["message"]
    )
