"""Identity and tenancy against the real services: tokens, keys, instances, ownership and limits."""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from ibm_cloud_sdk_core.token_managers.iam_token_manager import IAMTokenManager
from qiskit import QuantumCircuit

from tests.stack import BELL_QASM2, TEST_JWT_SECRET, Stack, sampler_job

AUTH_CACHE_SECONDS = 5.0  # the default of QRUNTIME_AUTH_CACHE_SECONDS


@pytest.fixture(scope="module")
def tenants(stack: Stack) -> Iterator[Stack]:
    """alice (lab-a, from the shared stack), bob in his own instance, carol also in lab-a, and an admin."""
    if "bob" not in stack.accounts:
        stack.add_accounts(
            [
                ("bob", "lab-b", False, True, {}),
                ("carol", "lab-a", False, False, {}),
                ("root", "ops", True, True, {}),
            ]
        )
    yield stack


def submit(stack: Stack, user: str, body: dict | None = None) -> str:
    with stack.client(user) as client:
        response = client.post("/api/v1/jobs", json=body or sampler_job("aer_simulator", BELL_QASM2, 100))
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def test_expired_token_says_so(stack: Stack) -> None:
    token = jwt.encode({"sub": "u", "kid": "k", "iat": 1, "exp": 2, "iss": "qruntime"}, TEST_JWT_SECRET)
    with stack.client(None) as client:
        response = client.get("/api/v1/instances/usage", headers={"Authorization": f"Bearer {token}"})
    assert "expired" in response.json()["errors"][0]["message"]


def test_the_official_token_manager_gets_a_decodable_jwt(stack: Stack) -> None:
    """ibm-cloud-sdk-core's IAMTokenManager is what qiskit-ibm-runtime uses: form body, no auth header."""
    manager = IAMTokenManager(apikey=stack.accounts["alice"].api_key, url=stack.url)
    token = manager.get_token()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)
    assert claims["exp"] > time.time()
    with stack.client(None) as client:
        headers = {"Authorization": f"Bearer {token}", "Service-CRN": stack.accounts["alice"].instance_crn}
        assert client.get("/api/v1/instances/usage", headers=headers).status_code == 200


def test_revoked_key_cannot_get_a_token_and_its_tokens_stop_working(tenants: Stack) -> None:
    stack = tenants
    stack.admin("create-user", "dave")
    stack.admin("add-member", "lab-b", "dave")
    key = stack.admin("create-key", "dave")
    key_id = key.split("_")[1]
    grant = {"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": key}
    with stack.client(None) as client:
        token = client.post("/identity/token", data=grant).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        by_key = {"Authorization": f"apikey {key}"}
        assert client.get("/api/v1/instances/usage", headers=headers).status_code == 200
        assert client.get("/api/v1/instances/usage", headers=by_key).status_code == 200
        stack.admin("revoke-key", key_id)
        revoked_at = time.monotonic()
        refused = client.post("/identity/token", data=grant)
        assert refused.status_code == 401
        assert "revoked" in refused.json()["errors"][0]["message"]
        # The api remembers a successful authentication for QRUNTIME_AUTH_CACHE_SECONDS (5 s by
        # default): the revocation takes effect within that bound, for the token and for the key.
        for credentials in (headers, by_key):
            while client.get("/api/v1/instances/usage", headers=credentials).status_code != 401:
                assert time.monotonic() - revoked_at < AUTH_CACHE_SECONDS + 1.0
                time.sleep(0.1)


def test_other_users_objects_are_invisible(tenants: Stack) -> None:
    stack = tenants
    job_id = submit(stack, "alice")
    stack.wait_final([job_id])
    for intruder in ("bob", "carol"):
        with stack.client(intruder) as client:
            for response in (
                client.get(f"/api/v1/jobs/{job_id}"),
                client.get(f"/api/v1/jobs/{job_id}/results"),
                client.post(f"/api/v1/jobs/{job_id}/cancel"),
            ):
                assert response.status_code == 404, (intruder, response.request.url)
                assert response.json()["errors"][0]["message"] == f"Job {job_id} was not found."
    with stack.client("alice") as client:
        assert client.get(f"/api/v1/jobs/{job_id}/results").status_code == 200
        session_id = client.post(
            "/api/v1/sessions", json={"mode": "batch", "backend": "aer_simulator"}
        ).json()["id"]
    with stack.client("bob") as client:
        for response in (
            client.get(f"/api/v1/sessions/{session_id}"),
            client.patch(f"/api/v1/sessions/{session_id}", json={"accepting_jobs": False}),
            client.delete(f"/api/v1/sessions/{session_id}/close"),
        ):
            assert response.status_code == 404, response.request.url
        joined = client.post("/api/v1/jobs", json=sampler_job("aer_simulator", session_id=session_id))
        assert joined.status_code == 400 and joined.json()["errors"][0]["code"] == 4002
        assert session_id not in {s["id"] for s in client.get("/api/v1/sessions").json()["sessions"]}
    with stack.client("root") as client:
        assert client.get(f"/api/v1/sessions/{session_id}").status_code == 200
    with stack.client("alice") as client:
        assert client.delete(f"/api/v1/sessions/{session_id}/close").status_code == 204


def test_admin_sees_every_tenant(tenants: Stack) -> None:
    stack = tenants
    alice_job, bob_job = submit(stack, "alice"), submit(stack, "bob")
    stack.wait_final([alice_job, bob_job])
    with stack.client("root") as client:
        for job_id in (alice_job, bob_job):
            assert client.get(f"/api/v1/jobs/{job_id}").json()["state"]["status"] == "Completed"
            assert client.get(f"/api/v1/jobs/{job_id}/results").status_code == 200
    owners = stack.sql(
        "SELECT id, user_id, instance_id FROM jobs WHERE id = ANY($1::text[])", [alice_job, bob_job]
    )
    assert len({(r["user_id"], r["instance_id"]) for r in owners}) == 2


def test_user_outside_an_instance_is_refused(tenants: Stack) -> None:
    stack = tenants
    with stack.client("bob") as client:
        response = client.post(
            "/api/v1/jobs",
            json=sampler_job("aer_simulator"),
            headers={"Service-CRN": stack.accounts["alice"].instance_crn},
        )
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == 3207
    with stack.client("bob") as client:
        unknown = client.get("/api/v1/instances/usage", headers={"Service-CRN": "crn:v1:nowhere"})
    assert unknown.status_code == 403


def slow_circuit() -> dict:
    import json

    from qiskit_ibm_runtime import RuntimeEncoder

    circuit = QuantumCircuit(20, 20)
    for layer in range(20):
        for qubit in range(20):
            circuit.rx(0.1 * (layer + qubit), qubit)
        for qubit in range(0, 19, 2):
            circuit.cx(qubit, qubit + 1)
    circuit.measure(range(20), range(20))
    body = {"program_id": "sampler", "backend": "aer_simulator", "params": {"pubs": [(circuit, None, 20000)]}}
    return dict(json.loads(json.dumps(body, cls=RuntimeEncoder)))


def test_concurrent_job_limit(stack: Stack) -> None:
    stack.add_account("frank", "lab-f", max_concurrent_jobs="1")
    first = submit(stack, "frank", slow_circuit())
    with stack.client("frank") as client:
        refused = client.post("/api/v1/jobs", json=sampler_job("aer_simulator"))
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["code"] == 1012
    assert (
        stack.sql(
            "SELECT count(*) AS n FROM jobs WHERE user_id = (SELECT id FROM users WHERE name = 'frank')"
        )[0]["n"]
        == 1
    )
    stack.wait_final([first])
    second = submit(stack, "frank")
    assert stack.wait_final([second]) == {second: "DONE"}


def test_used_up_allocation_makes_jobs_wait_not_vanish(stack: Stack) -> None:
    stack.add_account("gina", "lab-g", allocation_seconds="0.000001")
    first = submit(stack, "gina")
    assert stack.wait_final([first]) == {first: "DONE"}
    with stack.client("gina") as client:
        usage = client.get("/api/v1/instances/usage").json()
    assert usage["usage_limit_reached"] is True
    assert usage["usage_consumed_seconds"] > 0
    waiting = submit(stack, "gina")
    # A job submitted after it by another instance runs to the end: the scheduler passed gina's by.
    later = submit(stack, "alice")
    assert stack.wait_final([later]) == {later: "DONE"}
    assert stack.sql("SELECT status FROM jobs WHERE id = $1", waiting)[0]["status"] == "QUEUED"
    stack.admin("set-limits", "lab-g", "--unlimited")
    assert stack.wait_final([waiting]) == {waiting: "DONE"}


def test_no_secret_reaches_the_logs(tenants: Stack) -> None:
    # An API key's secret part (after `qrt_<id>_`) and an access token's signature (after its last
    # `.`). A JWT may hold `_` itself: cut there, a token once left a one-letter "secret" to look for.
    secrets = [a.api_key.split("_", 2)[2] for a in tenants.accounts.values()] + [
        a.token.rsplit(".", 1)[1] for a in tenants.accounts.values() if a.token
    ]
    for log in tenants.log_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, log.name


def test_admin_commands_on_a_fresh_database(make_stack: type[Stack]) -> None:
    stack = make_stack(backends=["aer_simulator"])
    stack.migrate()
    user_id = stack.admin("create-user", "zoe", "--admin")
    crn = stack.admin("create-instance", "zoo", "--max-concurrent-jobs", "5")
    assert crn.startswith("crn:v1:qruntime:public:quantum-computing:local:a/qruntime:") and crn.endswith("::")
    stack.admin("add-member", "zoo", "zoe")
    key = stack.admin("create-key", "zoe")
    assert key.startswith("qrt_")
    stored = stack.sql("SELECT user_id, secret_hash FROM api_keys")
    assert [r["user_id"] for r in stored] == [user_id]
    assert key.split("_")[-1] not in stored[0]["secret_hash"]
    listing = stack.admin("list-users")
    assert "zoe" in listing and "admin" in listing


def test_development_bootstrap(make_stack: type[Stack], tmp_path: Path) -> None:
    stack = make_stack(backends=["aer_simulator"])
    stack.migrate()
    command = [sys.executable, "-m", "services.cli", "admin", "bootstrap"]
    first = subprocess.run(
        command, cwd=tmp_path, env=stack.env, capture_output=True, text=True, check=True
    ).stdout
    again = subprocess.run(
        command, cwd=tmp_path, env=stack.env, capture_output=True, text=True, check=True
    ).stdout
    key = next(line.split()[-1] for line in first.splitlines() if "API key:" in line)
    assert key.startswith("qrt_") and key in again  # a second `make run` shows the same credentials
    assert "QISKIT_IBM_INSTANCE=crn:v1:qruntime:" in first
    assert (tmp_path / ".qruntime-dev.env").stat().st_mode & 0o077 == 0
    assert [r["name"] for r in stack.sql("SELECT name FROM users")] == ["admin"]
    production = subprocess.run(
        command,
        cwd=tmp_path,
        env={**stack.env, "QRUNTIME_ENVIRONMENT": "production"},
        capture_output=True,
        text=True,
    )
    assert production.returncode == 1
    assert "development" in production.stderr
