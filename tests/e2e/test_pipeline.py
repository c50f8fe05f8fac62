"""A job travels REST -> outbox -> RabbitMQ -> scheduler -> executor -> PostgreSQL, with every
process separate and real PostgreSQL and RabbitMQ underneath."""

import json

import pytest
from qiskit import QuantumCircuit
from qiskit_ibm_runtime import RuntimeEncoder

from tests.stack import BELL_QASM2, BELL_QASM3, Stack, child_pids, decode_result, sampler_job, wait_for

SHOTS = 1000


def run_to_result(stack: Stack, body: dict) -> tuple[dict, object]:
    with stack.client() as client:
        created = client.post("/api/v1/jobs", json=body)
        assert created.status_code == 200, created.text
        job_id = created.json()["id"]
        assert created.json()["backend"] == body["backend"]
        stack.wait_final([job_id], timeout=90)
        job = client.get(f"/api/v1/jobs/{job_id}", params={"exclude_params": "true"}).json()
        results = client.get(f"/api/v1/jobs/{job_id}/results")
        assert results.status_code == 200, results.text
    return job, decode_result(results.text)


@pytest.mark.parametrize("circuit", [BELL_QASM2, BELL_QASM3], ids=["qasm2", "qasm3"])
def test_bell_on_ideal_simulator(stack: Stack, circuit: str) -> None:
    job, result = run_to_result(stack, sampler_job("aer_simulator", circuit, SHOTS))
    assert job["state"]["status"] == "Completed"
    counts = result[0].data.c.get_counts()
    assert sum(counts.values()) == SHOTS
    assert set(counts) <= {"00", "11"}
    assert min(counts.get("00", 0), counts.get("11", 0)) > SHOTS * 0.35


@pytest.mark.parametrize("circuit", [BELL_QASM2, BELL_QASM3], ids=["qasm2", "qasm3"])
def test_bell_on_noisy_fake_device(stack: Stack, circuit: str) -> None:
    job, result = run_to_result(stack, sampler_job("fake_manila", circuit, SHOTS))
    assert job["state"]["status"] == "Completed"
    counts = result[0].data.c.get_counts()
    assert sum(counts.values()) == SHOTS
    correlated = counts.get("00", 0) + counts.get("11", 0)
    assert correlated > SHOTS * 0.8, counts
    assert correlated < SHOTS, "a noisy device should show some 01/10 outcomes"


def test_client_encoded_qpy_circuit(stack: Stack) -> None:
    """The official client's encoding: a QuantumCircuit as zlib-compressed QPY via RuntimeEncoder."""
    circuit = QuantumCircuit(3, 3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.measure(range(3), range(3))
    body = json.loads(
        json.dumps(
            {
                "program_id": "sampler",
                "backend": "aer_simulator",
                "params": {"pubs": [(circuit, None, 500)], "options": {}, "version": 2},
            },
            cls=RuntimeEncoder,
        )
    )
    _, result = run_to_result(stack, body)
    counts = result[0].data.c.get_counts()
    assert sum(counts.values()) == 500
    assert set(counts) <= {"000", "111"}


def test_job_view_and_events(stack: Stack) -> None:
    job, _ = run_to_result(stack, sampler_job("aer_simulator", tags=["e2e"]))
    assert job["program"] == {"id": "sampler"}
    assert job["tags"] == ["e2e"]
    assert job["session_id"] is None
    assert job["created"] and job["started"] and job["finished"]
    rows = stack.sql("SELECT count(*) AS n FROM job_results WHERE job_id = $1", job["id"])
    assert rows[0]["n"] == 1


def test_cancel_queued_and_running_jobs(stack: Stack) -> None:
    # A wide circuit with many shots keeps the executor busy for about fifteen seconds.
    heavy = QuantumCircuit(22, 22)
    for layer in range(60):
        for qubit in range(22):
            heavy.rx(0.1 * (layer + qubit), qubit)
        for qubit in range(0, 21, 2 if layer % 2 else 3):
            heavy.cx(qubit, qubit + 1)
    heavy.measure(range(22), range(22))
    body = json.loads(
        json.dumps(
            {
                "program_id": "sampler",
                "backend": "aer_simulator",
                "params": {"pubs": [(heavy, None, 100000)]},
            },
            cls=RuntimeEncoder,
        )
    )
    with stack.client() as client:
        running_id = client.post("/api/v1/jobs", json=body).json()["id"]
        queued_id = client.post("/api/v1/jobs", json=body).json()["id"]
        wait_for(
            lambda: client.get(f"/api/v1/jobs/{running_id}").json()["state"]["status"] == "Running",
            60,
            "the heavy job to start",
            poll=0.1,
        )
        executor = stack.processes["executor-aer_simulator"].pid
        running_in = child_pids(executor)
        assert running_in, "the executor's simulator child"
        assert client.post(f"/api/v1/jobs/{queued_id}/cancel").status_code == 204
        assert client.post(f"/api/v1/jobs/{running_id}/cancel").status_code == 204
        assert client.get(f"/api/v1/jobs/{running_id}").json()["state"]["status"] == "Cancelled"
        # Cancelling twice is refused: the job is final.
        again = client.post(f"/api/v1/jobs/{running_id}/cancel")
        assert again.status_code == 409
        assert again.json()["errors"][0]["code"] == 3214
        # The executor really stopped the simulation: the child that ran it is gone, and a small job
        # right after runs in its replacement (a wall-clock bound said this only on an idle machine).
        _, result = run_to_result(stack, sampler_job("aer_simulator"))
        running_now = child_pids(executor)
        assert set(running_in).isdisjoint(running_now) and running_now
        assert sum(result[0].data.c.get_counts().values()) == SHOTS
        statuses = stack.wait_final([running_id, queued_id])
        assert statuses == {running_id: "CANCELLED", queued_id: "CANCELLED"}
        results = client.get(f"/api/v1/jobs/{running_id}/results")
        assert results.status_code == 200
        assert "Cancelled" in results.text
    assert stack.sql("SELECT count(*) AS n FROM job_results WHERE job_id = $1", running_id)[0]["n"] == 0
    executor_log = (stack.log_dir / "executor-aer_simulator.log").read_text()
    assert f"job {running_id} stopped" in executor_log


def test_health_endpoints(stack: Stack) -> None:
    with stack.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz").json()
        assert ready["checks"] == {"database": True, "broker": True, "parsers": True}
