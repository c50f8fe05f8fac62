"""Deployments, providers and devices (qunicorn's model) against the real services."""

import base64
import io

import pytest
from qiskit import QuantumCircuit, qpy

from tests.stack import BELL_QASM2, Stack

TWO_REGISTERS_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit[1] a;
bit[2] b;
x q[0];
h q[1];
cx q[1], q[2];
a[0] = measure q[0];
b[0] = measure q[1];
b[1] = measure q[2];
"""


def deployment_body(name: str = "bench-suite") -> dict:
    return {
        "name": name,
        "programs": [
            {"quantum_circuit": BELL_QASM2, "assembler_language": "QASM2"},
            {"quantum_circuit": TWO_REGISTERS_QASM3, "assembler_language": "QASM3"},
        ],
    }


@pytest.fixture(scope="module")
def owners(stack: Stack) -> Stack:
    if "mallory" not in stack.accounts:
        stack.add_account("mallory", "lab-m")
    return stack


@pytest.mark.parametrize("device", ["aer_simulator", "fake_manila"])
def test_runner_job_of_a_deployment(stack: Stack, device: str) -> None:
    shots = 1000
    with stack.client() as client:
        created = client.post("/api/v1/deployments", json=deployment_body())
        assert created.status_code == 201, created.text
        deployment = created.json()
        assert [p["registers"] for p in deployment["programs"]] == [
            [{"name": "c", "size": 2}],
            [{"name": "a", "size": 1}, {"name": "b", "size": 2}],
        ]
        run = client.post(
            f"/api/v1/deployments/{deployment['id']}/jobs",
            json={"device": device, "shots": shots, "type": "RUNNER"},
        )
        assert run.status_code == 201, run.text
        job_id = run.json()["id"]
        stack.wait_final([job_id])
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        assert job["state"]["status"] == "Completed"
        assert job["progress"] == 1.0 and job["finished_at"] and job["started_at"]
        assert job["type"] == "RUNNER" and job["deployment_id"] == deployment["id"]
        assert job["executed_on"] == device and job["executed_by"]
        results = client.get(f"/api/v1/jobs/{job_id}/results").json()["results"]

    assert [(r["program_index"], r["result_type"]) for r in results] == [
        (0, "COUNTS"),
        (0, "PROBABILITIES"),
        (1, "COUNTS"),
        (1, "PROBABILITIES"),
    ]
    for result in results:
        assert result["metadata"]["format"] == "hex" and result["metadata"]["shots"] == shots
        assert all(key.startswith("0x") for key in result["data"])
    bell_counts, two_counts = results[0]["data"], results[2]["data"]
    assert sum(bell_counts.values()) == shots and sum(two_counts.values()) == shots
    assert sum(results[1]["data"].values()) == pytest.approx(1.0)
    assert sum(results[3]["data"].values()) == pytest.approx(1.0)
    assert results[2]["metadata"]["registers"] == [{"name": "a", "size": 1}, {"name": "b", "size": 2}]
    assert all(len(key.split(" ")) == 2 for key in two_counts)
    if device == "aer_simulator":
        assert set(bell_counts) <= {"0x0", "0x3"}
        assert set(two_counts) <= {"0x1 0x0", "0x1 0x3"}
    else:
        assert bell_counts.get("0x0", 0) + bell_counts.get("0x3", 0) > shots * 0.8


def test_sampler_and_estimator_jobs_of_a_deployment(stack: Stack) -> None:
    from tests.stack import decode_result

    with stack.client() as client:
        deployment = client.post(
            "/api/v1/deployments",
            json={
                "name": "bell",
                "programs": [{"quantum_circuit": BELL_QASM2, "assembler_language": "QASM2"}],
            },
        ).json()
        sampler = client.post(
            f"/api/v1/deployments/{deployment['id']}/jobs",
            json={"device": "aer_simulator", "shots": 300, "type": "SAMPLER"},
        ).json()["id"]
        # The Bell circuit measures at the end; ZZ of the pre-measurement state is +1.
        unmeasured = BELL_QASM2.replace("measure q -> c;\n", "")
        estimator_deployment = client.post(
            "/api/v1/deployments",
            json={
                "name": "bell-state",
                "programs": [{"quantum_circuit": unmeasured, "assembler_language": "QASM2"}],
            },
        ).json()
        estimator = client.post(
            f"/api/v1/deployments/{estimator_deployment['id']}/jobs",
            json={"device": "aer_simulator", "shots": 10000, "type": "ESTIMATOR", "observables": {"ZZ": 1.0}},
        ).json()["id"]
        stack.wait_final([sampler, estimator])
        sampled = decode_result(client.get(f"/api/v1/jobs/{sampler}/results").text)
        estimated = decode_result(client.get(f"/api/v1/jobs/{estimator}/results").text)
    assert sum(sampled[0].data.c.get_counts().values()) == 300
    assert float(estimated[0].data.evs) == pytest.approx(1.0, abs=0.05)


def test_rerun_list_and_delete(stack: Stack) -> None:
    with stack.client() as client:
        deployment = client.post("/api/v1/deployments", json=deployment_body("rerun-me")).json()
        first = client.post(
            f"/api/v1/deployments/{deployment['id']}/jobs", json={"device": "aer_simulator", "shots": 50}
        ).json()["id"]
        stack.wait_final([first])
        again = client.post(f"/api/v1/jobs/{first}/rerun")
        assert again.status_code == 201
        second = again.json()["id"]
        assert second != first
        stack.wait_final([second])
        listed = client.get("/api/v1/jobs", params={"deployment": deployment["id"], "type": "RUNNER"}).json()
        assert listed["count"] == 2 and [j["id"] for j in listed["jobs"]] == [second, first]
        done = client.get(
            "/api/v1/jobs", params={"deployment": deployment["id"], "state": "Completed,FINISHED"}
        )
        assert done.json()["count"] == 2
        bad_state = client.get("/api/v1/jobs", params={"state": "SLEEPING"})
        assert bad_state.status_code == 400
        by_name = client.get("/api/v1/deployments", params={"name": "rerun-me"}).json()
        assert by_name["count"] >= 1 and by_name["deployments"][0]["id"] == deployment["id"]

        refused = client.delete(f"/api/v1/deployments/{deployment['id']}")
        assert refused.status_code == 409 and refused.json()["errors"][0]["code"] == 3410
        for job_id in (first, second):
            assert client.delete(f"/api/v1/jobs/{job_id}").status_code == 204
        assert client.delete(f"/api/v1/deployments/{deployment['id']}").status_code == 204
        assert client.get(f"/api/v1/deployments/{deployment['id']}").status_code == 404


def test_replace_deployment(stack: Stack) -> None:
    with stack.client() as client:
        deployment = client.post("/api/v1/deployments", json=deployment_body("v1")).json()
        replaced = client.put(
            f"/api/v1/deployments/{deployment['id']}",
            json={"name": "v2", "programs": [{"quantum_circuit": BELL_QASM2, "assembler_language": "QASM2"}]},
        ).json()
    assert replaced["name"] == "v2" and len(replaced["programs"]) == 1
    assert replaced["programs"][0]["id"] not in {p["id"] for p in deployment["programs"]}


def qpy_text(circuit: QuantumCircuit) -> str:
    buffer = io.BytesIO()
    qpy.dump(circuit, buffer)
    return base64.b64encode(buffer.getvalue()).decode()


def test_qpy_programs_are_accepted(stack: Stack) -> None:
    circuit = QuantumCircuit(2, 2)
    circuit.x(1)
    circuit.measure([0, 1], [0, 1])
    with stack.client() as client:
        created = client.post(
            "/api/v1/deployments",
            json={
                "name": "qpy",
                "programs": [{"quantum_circuit": qpy_text(circuit), "assembler_language": "QPY"}],
            },
        )
        assert created.status_code == 201, created.text
        job_id = client.post(
            f"/api/v1/deployments/{created.json()['id']}/jobs", json={"device": "aer_simulator", "shots": 20}
        ).json()["id"]
        stack.wait_final([job_id])
        counts = client.get(f"/api/v1/jobs/{job_id}/results").json()["results"][0]["data"]
    assert counts == {"0x2": 20}


@pytest.mark.parametrize(
    ("program", "words"),
    [
        (
            {"quantum_circuit": "OPENQASM 2.0;\nqreg q[1];\nfoo q[0];\n", "assembler_language": "QASM2"},
            "OpenQASM 2",
        ),
        (
            {"quantum_circuit": "OPENQASM 3.0;\nqubit q;\nh q[;\n", "assembler_language": "QASM3"},
            "OpenQASM 3",
        ),
        ({"quantum_circuit": BELL_QASM2, "assembler_language": "QASM3"}, "must start with 'OPENQASM 3'"),
        ({"quantum_circuit": "bm90IHFweQ==", "assembler_language": "QPY"}, "QPY data does not load"),
        ({"quantum_circuit": "%%%", "assembler_language": "QPY"}, "base64"),
        ({"quantum_circuit": "import os", "assembler_language": "QISKIT-PYTHON"}, "never executes"),
        ({"quantum_circuit": BELL_QASM2, "assembler_language": "QUIL"}, "QASM2, QASM3, QPY"),
    ],
)
def test_bad_programs_are_refused_at_creation(stack: Stack, program: dict, words: str) -> None:
    before = stack.sql("SELECT count(*) AS n FROM deployments")[0]["n"]
    with stack.client() as client:
        response = client.post(
            "/api/v1/deployments",
            json={
                "name": "bad",
                "programs": [{"quantum_circuit": BELL_QASM2, "assembler_language": "QASM2"}, program],
            },
        )
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["code"] == 1201
    assert error["message"].startswith("program 1:") and words in error["message"], error["message"]
    assert stack.sql("SELECT count(*) AS n FROM deployments")[0]["n"] == before


def test_bad_runs_are_4xx(stack: Stack) -> None:
    wide = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[6];\ncreg c[6];\nmeasure q -> c;\n'
    with stack.client() as client:
        deployment = client.post(
            "/api/v1/deployments",
            json={"name": "wide", "programs": [{"quantum_circuit": wide, "assembler_language": "QASM2"}]},
        ).json()
        url = f"/api/v1/deployments/{deployment['id']}/jobs"
        cases = [
            ({"device": "ibm_nowhere", "shots": 10}, 400, 1007),
            ({"device": "aer_simulator", "shots": 0}, 400, 6001),
            ({"device": "aer_simulator", "shots": -3}, 400, 6001),
            ({"device": "fake_manila", "shots": 10}, 400, 1002),
            ({"device": "aer_simulator", "shots": 10, "type": "ESTIMATOR"}, 400, 1200),
            ({"device": "aer_simulator", "shots": 10, "type": "TELEPORT"}, 400, 1200),
        ]
        for body, status, code in cases:
            response = client.post(url, json=body)
            assert response.status_code == status, (body, response.text)
            assert response.json()["errors"][0]["code"] == code, body
        assert (
            client.post("/api/v1/deployments/nope/jobs", json={"device": "aer_simulator"}).status_code == 404
        )


def test_other_users_deployments_are_invisible(owners: Stack) -> None:
    stack = owners
    with stack.client("alice") as client:
        deployment = client.post("/api/v1/deployments", json=deployment_body("private")).json()
    with stack.client("mallory") as client:
        for response in (
            client.get(f"/api/v1/deployments/{deployment['id']}"),
            client.post(f"/api/v1/deployments/{deployment['id']}/jobs", json={"device": "aer_simulator"}),
            client.put(f"/api/v1/deployments/{deployment['id']}", json=deployment_body("stolen")),
            client.delete(f"/api/v1/deployments/{deployment['id']}"),
        ):
            assert response.status_code == 404
        assert deployment["id"] not in {
            d["id"] for d in client.get("/api/v1/deployments").json()["deployments"]
        }


def test_providers_and_devices(stack: Stack) -> None:
    with stack.client() as client:
        providers = {p["name"]: p for p in client.get("/api/v1/providers").json()}
        assert providers["IBM"]["devices"] == ["aer_simulator", "fake_manila"]
        assert "QASM3" in providers["IBM"]["supported_languages"]
        devices = client.get("/api/v1/devices", params={"min_qubits": 6}).json()
        assert [d["name"] for d in devices["devices"]] == ["aer_simulator"] and devices["count"] == 1
        assert client.get("/api/v1/devices", params={"provider": "AWS"}).json()["count"] == 0
        manila = client.get("/api/v1/devices/fake_manila").json()
        assert manila["num_qubits"] == 5 and manila["status"] == "online" and manila["noise"] == "fake_manila"
        assert client.get("/api/v1/devices/nope").status_code == 404


def test_provider_credentials_are_encrypted_and_never_returned(stack: Stack) -> None:
    token = "ibm-cloud-api-key-0123456789"
    with stack.client() as client:
        assert client.put("/api/v1/providers/IBM/credentials", json={"token": token}).status_code == 204
        status = client.get("/api/v1/providers/IBM/credentials")
        assert status.json()["configured"] is True and token not in status.text
    stored = stack.sql("SELECT token_encrypted FROM provider_credentials")
    assert stored and all(token not in row["token_encrypted"] for row in stored)
    with stack.client() as client:
        assert client.delete("/api/v1/providers/IBM/credentials").status_code == 204
        assert client.get("/api/v1/providers/IBM/credentials").json()["configured"] is False
