"""Bad input gets a clear 4xx with a machine-readable code, and nothing is written."""

import base64
import json
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stack import BELL_QASM2, Stack, sampler_job

SIX_QUBITS = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[6];\ncreg c[6];\nh q[0];\nmeasure q -> c;\n'


@pytest.fixture
def nothing_written(stack: Stack) -> Iterator[None]:
    before = stack.sql("SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM outbox) AS outbox")[
        0
    ]
    yield
    after = stack.sql("SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM outbox) AS outbox")[
        0
    ]
    assert dict(after) == dict(before)


def bomb() -> dict[str, str]:
    # 300 MB of zeros compress to ~300 KB: a valid-looking QPY payload that must not be inflated.
    compressor = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    data = b"".join(compressor.compress(chunk) for _ in range(300)) + compressor.flush()
    return {"__type__": "QuantumCircuit", "__value__": base64.standard_b64encode(data).decode()}


CASES = {
    "malformed qasm2": (
        sampler_job("aer_simulator", "OPENQASM 2.0;\nqreg q[2];\nfoo q[0];\n"),
        400,
        1201,
        "OpenQASM 2",
    ),
    "malformed qasm3": (
        sampler_job("aer_simulator", "OPENQASM 3.0;\nqubit[2] q;\nh q[5;\n"),
        400,
        1201,
        "OpenQASM 3",
    ),
    "not a circuit": (sampler_job("aer_simulator", "hello"), 400, 1201, "OPENQASM"),
    "circuit of wrong type": (sampler_job("aer_simulator", 42), 400, 1201, "circuit"),
    "bad qpy": (
        sampler_job("aer_simulator", {"__type__": "QuantumCircuit", "__value__": "bm90IHFweQ=="}),
        400,
        1201,
        "QuantumCircuit",
    ),
    "unknown backend": (sampler_job("ibm_nowhere"), 400, 1007, "ibm_nowhere"),
    "too many qubits": (sampler_job("fake_manila", SIX_QUBITS), 400, 1002, "6 qubits"),
    "zero shots": (sampler_job("aer_simulator", BELL_QASM2, 0), 400, 6001, "between 1 and"),
    "negative shots": (sampler_job("aer_simulator", BELL_QASM2, -5), 400, 6001, "between 1 and"),
    "too many shots": (sampler_job("aer_simulator", BELL_QASM2, 100001), 400, 6001, "100000"),
    "fractional shots": (sampler_job("aer_simulator", BELL_QASM2, 1.5), 400, 6001, "whole number"),
    "unknown program": (
        {**sampler_job("aer_simulator"), "program_id": "teleporter"},
        404,
        1008,
        "teleporter",
    ),
    "missing program": ({"backend": "aer_simulator", "params": {}}, 400, 1200, "program_id"),
    "no pubs": (
        {"program_id": "sampler", "backend": "aer_simulator", "params": {"pubs": []}},
        400,
        1200,
        "pubs",
    ),
    "params not an object": (
        {"program_id": "sampler", "backend": "aer_simulator", "params": [1]},
        400,
        1200,
        "params",
    ),
    "decompression bomb": (sampler_job("aer_simulator", bomb()), 413, 1202, "inflate"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_refused_with_clear_error(stack: Stack, nothing_written: None, case: str) -> None:
    body, status, code, words = CASES[case]
    with stack.client() as client:
        response = client.post("/api/v1/jobs", json=body)
    assert response.status_code == status, response.text
    error = response.json()["errors"][0]
    assert error["code"] == code
    assert words in error["message"], error["message"]
    assert "Traceback" not in response.text


def test_invalid_json(stack: Stack, nothing_written: None) -> None:
    with stack.client() as client:
        response = client.post(
            "/api/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 1200


def test_body_over_size_limit(stack: Stack, nothing_written: None) -> None:
    body = json.dumps(sampler_job("aer_simulator", BELL_QASM2 + "// " + "x" * (2 * 1024 * 1024))).encode()
    with stack.client() as client:
        declared = client.post("/api/v1/jobs", content=body, headers={"content-type": "application/json"})

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        streamed = client.post("/api/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["errors"][0]["code"] == 1202
        assert "1048576 bytes" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("path", ["/api/v1/jobs/{}", "/api/v1/jobs/{}/results"])
@pytest.mark.parametrize("job_id", ["0123456789abcdef0123", "x" * 500, "%27%3B--", "a%00b"])
def test_unknown_job_id(stack: Stack, path: str, job_id: str) -> None:
    with stack.client() as client:
        response = client.get(path.format(job_id))
    if "%00" in job_id:  # a control character is refused at the input boundary, whatever the route
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == 1200
        return
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == 3250


def test_cancel_unknown_job(stack: Stack, nothing_written: None) -> None:
    with stack.client() as client:
        response = client.post("/api/v1/jobs/0123456789abcdef0123/cancel")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == 3250


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    program=st.sampled_from(["sampler", "estimator", ""]) | st.text(max_size=8),
    backend=st.sampled_from(["aer_simulator", "fake_manila"]) | st.text(max_size=8),
    params=json_values,
    extra=st.dictionaries(
        st.sampled_from(["session_id", "tags", "cost", "priority", "log_level"]), json_values
    ),
)
def test_no_input_produces_a_server_error(
    stack: Stack, program: str, backend: str, params: object, extra: dict
) -> None:
    with stack.client() as client:
        response = client.post(
            "/api/v1/jobs", json={"program_id": program, "backend": backend, "params": params, **extra}
        )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["errors"][0]["code"] > 0
