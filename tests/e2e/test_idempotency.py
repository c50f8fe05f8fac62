"""Idempotency-Key on submissions: a retry of the same request gets the first answer and stores
nothing new; the same key with another body is refused (409, code 3422)."""

import uuid

from tests.stack import BELL_QASM2, Stack, sampler_job


def test_a_job_submission_retried_with_its_key_is_stored_once(stack: Stack) -> None:
    key = f"retry-{uuid.uuid4()}"
    tag = f"idem-{uuid.uuid4().hex[:8]}"
    body = sampler_job("aer_simulator", BELL_QASM2, 100, tags=[tag])
    with stack.client() as client:
        first = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
        again = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        assert stack.sql("SELECT count(*) AS n FROM jobs WHERE tags ? $1", tag)[0]["n"] == 1

        other = client.post(
            "/api/v1/jobs",
            json=sampler_job("aer_simulator", BELL_QASM2, 200, tags=[tag]),
            headers={"Idempotency-Key": key},
        )
        assert other.status_code == 409
        assert other.json()["errors"][0]["code"] == 3422
        assert stack.sql("SELECT count(*) AS n FROM jobs WHERE tags ? $1", tag)[0]["n"] == 1

        # Without a key every submission is a new job.
        assert client.post("/api/v1/jobs", json=body).status_code == 200
        assert stack.sql("SELECT count(*) AS n FROM jobs WHERE tags ? $1", tag)[0]["n"] == 2
        stack.wait_final([first.json()["id"]])


def test_a_session_creation_retried_with_its_key_is_stored_once(stack: Stack) -> None:
    key = f"session-{uuid.uuid4()}"
    body = {"mode": "batch", "backend": "aer_simulator", "max_ttl": 600}
    with stack.client() as client:
        first = client.post("/api/v1/sessions", json=body, headers={"Idempotency-Key": key})
        again = client.post("/api/v1/sessions", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        other = client.post(
            "/api/v1/sessions", json={**body, "max_ttl": 900}, headers={"Idempotency-Key": key}
        )
        assert other.status_code == 409 and other.json()["errors"][0]["code"] == 3422
        assert client.delete(f"/api/v1/sessions/{first.json()['id']}/close").status_code in (200, 204)


def test_a_malformed_key_is_refused(stack: Stack) -> None:
    with stack.client() as client:
        response = client.post(
            "/api/v1/jobs", json=sampler_job("aer_simulator"), headers={"Idempotency-Key": "x" * 300}
        )
        assert response.status_code == 400 and response.json()["errors"][0]["code"] == 1200
