"""The rest of the jobs and backends API the official client relies on (REST level)."""

import time

from tests.stack import BELL_QASM2, Stack, sampler_job


def test_backends_list_configuration_properties_status(stack: Stack) -> None:
    with stack.client() as client:
        devices = {
            d["name"]: d
            for d in client.get("/api/v1/backends", params={"include_mocks": "True"}).json()["devices"]
        }
        # Mocks (dry runs) are listed only when asked for, marked as such.
        assert set(devices) == {"aer_simulator", "fake_manila", "mock_manila"}
        assert devices["mock_manila"]["class"] == "mock" and devices["fake_manila"]["class"] == "device"
        listed = client.get("/api/v1/backends").json()["devices"]
        assert {d["name"] for d in listed} == {"aer_simulator", "fake_manila"}
        assert devices["fake_manila"]["qubits"] == 5
        assert devices["fake_manila"]["status"]["name"] == "online"

        conf = client.get("/api/v1/backends/fake_manila/configuration").json()
        assert conf["backend_name"] == "fake_manila"
        assert conf["simulator"] is False and conf["n_qubits"] == 5 and conf["online_date"]
        assert any(g.get("coupling_map") for g in conf["gates"])
        props = client.get("/api/v1/backends/fake_manila/properties").json()
        assert props["backend_name"] == "fake_manila" and len(props["qubits"]) == 5
        aer = client.get("/api/v1/backends/aer_simulator/configuration").json()
        assert aer["simulator"] is True and aer["online_date"]

        status = client.get("/api/v1/backends/fake_manila/status").json()
        assert status["state"] is True and status["status"] == "active"
        assert isinstance(status["length_queue"], int)

        missing = client.get("/api/v1/backends/ibm_nowhere/status")
        assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == 1007


def test_list_jobs_filters_and_counts(stack: Stack) -> None:
    tag = f"list-{time.monotonic_ns()}"
    with stack.client() as client:
        ids = [
            client.post(
                "/api/v1/jobs", json=sampler_job("aer_simulator", BELL_QASM2, 10, tags=[tag, "x"])
            ).json()["id"]
            for _ in range(5)
        ]
        stack.wait_final(ids)
        page = client.get(
            "/api/v1/jobs", params={"tags": [tag, "x"], "limit": 2, "exclude_params": "true"}
        ).json()
        assert page["count"] == 5
        assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]  # newest first
        second = client.get("/api/v1/jobs", params={"tags": tag, "limit": 2, "offset": 2}).json()
        assert [j["id"] for j in second["jobs"]] == ids[::-1][2:4]
        ascending = client.get("/api/v1/jobs", params={"tags": tag, "sort": "ASC", "limit": 10}).json()
        assert [j["id"] for j in ascending["jobs"]] == ids
        assert client.get("/api/v1/jobs", params={"tags": [tag, "absent"]}).json()["count"] == 0
        assert client.get("/api/v1/jobs", params={"tags": tag, "pending": "true"}).json()["count"] == 0
        assert client.get("/api/v1/jobs", params={"tags": tag, "backend": "fake_manila"}).json()["count"] == 0
        assert client.get("/api/v1/jobs", params={"tags": tag, "program": "sampler"}).json()["count"] == 5
        assert client.get("/api/v1/jobs", params={"limit": 0}).status_code == 400


def test_tags_metrics_logs_and_delete(stack: Stack) -> None:
    with stack.client() as client:
        job_id = client.post("/api/v1/jobs", json=sampler_job("aer_simulator", BELL_QASM2, 10)).json()["id"]
        stack.wait_final([job_id])
        assert client.put(f"/api/v1/jobs/{job_id}/tags", json={"tags": ["a", "b"]}).status_code == 204
        assert client.get(f"/api/v1/jobs/{job_id}").json()["tags"] == ["a", "b"]
        metrics = client.get(f"/api/v1/jobs/{job_id}/metrics").json()
        assert metrics["usage"]["status"] == "done" and metrics["usage"]["quantum_seconds"] > 0
        assert metrics["timestamps"]["running"] and metrics["num_circuits"] == 1
        assert "queued on aer_simulator" in client.get(f"/api/v1/jobs/{job_id}/logs").text
        params = client.get(f"/api/v1/jobs/{job_id}").json()["params"]
        assert params["pubs"][0][0]["__type__"] == "QuantumCircuit"
        assert client.delete(f"/api/v1/jobs/{job_id}").status_code == 204
        assert client.get(f"/api/v1/jobs/{job_id}").status_code == 404
        assert client.delete(f"/api/v1/jobs/{job_id}").status_code == 404
