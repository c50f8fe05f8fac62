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
