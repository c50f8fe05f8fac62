"""Validation and normalisation of sampler params (pure logic: no database, no broker)."""

import base64
import json
import zlib

import pytest
from qiskit import QuantumCircuit
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

from services.api.programs.validation import Limits, decode_body, normalize, parse_circuit
from shared.backends.catalog import BackendInfo
from shared.kit.errors import InvalidInput, NotFound, QRuntimeError
from tests.stack import BELL_QASM2, BELL_QASM3

LIMITS = Limits(max_shots=1000, max_circuits=3, max_decoded_bytes=1 << 20, default_shots=128)
FIVE_QUBITS = BackendInfo("fake_manila", 5, simulator=False)


def test_parses_both_qasm_versions() -> None:
    for text in (BELL_QASM2, BELL_QASM3):
        circuit = parse_circuit(text, "pub 0", LIMITS.on(FIVE_QUBITS))
        assert circuit.num_qubits == 2
        assert [r.name for r in circuit.cregs] == ["c"]


def test_default_shots_and_normalised_encoding_round_trip() -> None:
    params = normalize("sampler", {"pubs": [[BELL_QASM2], [BELL_QASM3, None, 7]]}, FIVE_QUBITS, LIMITS)
    assert params.num_pubs == 2
    assert params.total_shots == 128 + 7
    decoded = json.loads(params.encoded, cls=RuntimeDecoder)
    assert [pub[2] for pub in decoded["pubs"]] == [128, 7]
    assert isinstance(decoded["pubs"][0][0], QuantumCircuit)


def test_parameter_sweeps_count_every_binding() -> None:
    from qiskit.circuit import Parameter

    theta = Parameter("t")
    circuit = QuantumCircuit(1, 1)
    circuit.rx(theta, 0)
    circuit.measure(0, 0)
    body = json.dumps({"pubs": [(circuit, [[0.1], [0.2], [0.3]], 10)]}, cls=RuntimeEncoder)
    params = normalize("sampler", json.loads(body, cls=RuntimeDecoder), FIVE_QUBITS, LIMITS)
    assert params.total_shots == 30


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"pubs": [[BELL_QASM2]] * 4}, 1203),
        ({"pubs": [[BELL_QASM2, None, 1001]]}, 6001),
        ({"pubs": [[BELL_QASM2]], "options": {"default_shots": True}}, 6001),
        ({"pubs": [[BELL_QASM2, None, 1, "extra"]]}, 1200),
        ({"pubs": [["OPENQASM 2.0;\nqreg q[6];\n"]]}, 1002),
        ({"pubs": "nope"}, 1200),
    ],
)
def test_refusals_carry_codes(params: dict, code: int) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalize("sampler", params, FIVE_QUBITS, LIMITS)
    assert refused.value.code == code


def test_unknown_program_is_not_found() -> None:
    with pytest.raises(NotFound):
        normalize("qaoa", {}, FIVE_QUBITS, LIMITS)


def test_decoder_refuses_payloads_that_inflate_past_the_budget() -> None:
    payload = base64.standard_b64encode(zlib.compress(b"\0" * (2 << 20))).decode()
    body = json.dumps({"x": {"__type__": "ndarray", "__value__": payload}}).encode()
    with pytest.raises(QRuntimeError) as refused:
        decode_body(body, max_decoded_bytes=1 << 20)
    assert refused.value.status == 413


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("OPENQASM 2.0;\nqreg a[3];\nqreg b[3];\n", "6 qubits"),  # registers add up
        ("OPENQASM 2.0;\nqreg q[2];\ncreg c[5000];\n", "5000 classical bits"),
        ("OPENQASM 3.0;\nqreg/**/q[99999999999999999999];\n", "qubits"),
        ("OPENQASM 3.0;\nqubit a;\nqubit b;\nqubit[4] c;\n", "6 qubits"),
        ("OPENQASM 3.0;\ninput bit[9000] c;\nqubit q;\n", "9000 classical bits"),
        ("OPENQASM 3.0;\nqubit[2*8] q;\n", "whole-number literals"),
        ('OPENQASM 2.0;\ninclude "qelib1.inc" ;\ninclude "../x.inc";\nqreg q[1];\n', "may include only"),
        ("OPENQASM 2.0;\ninclude '/etc/passwd';\nqreg q[1];\n", "may include only"),
        ('OPENQASM 3.0;\ninclude "qelib1.inc";\nqubit q;\n', "stdgates.inc"),
    ],
)
def test_declared_sizes_and_includes_are_checked_before_parsing(text: str, words: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_circuit(text, "pub 0", LIMITS.on(FIVE_QUBITS))
    assert words in refused.value.message


def test_comments_neither_hide_nor_invent_declarations() -> None:
    text = "OPENQASM 2.0;\n// qreg huge[100000000];\nqreg q[2];\ncreg c[2];\n"
    assert parse_circuit(text, "pub 0", LIMITS.on(FIVE_QUBITS)).num_qubits == 2
    text = "OPENQASM 3.0;\n/* qubit[100000000] q;\n */ qubit[2] q; // bit[99999999] c;\nbit[2] c;\n"
    assert parse_circuit(text, "pub 0", LIMITS.on(FIVE_QUBITS)).num_qubits == 2
