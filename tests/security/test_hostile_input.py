"""Issue 12's attacks, as a user with an ordinary API key would make them, against a stack of its
own: each was answered wrongly before (exhaustion, file read, 500, leak) and is refused well now."""

import base64
import io
import json
import re
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from qiskit import QuantumCircuit, qpy

from tests.security.conftest import METRICS_TOKEN
from tests.stack import BELL_QASM2, TEST_JWT_SECRET, Stack, iter_lines, sampler_job

API = "/api/v1"
NO_QUBITS = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
NO_REGISTER = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0];\n'
# The constant development secret qruntime used to ship (documented in its README).
OLD_DEVELOPMENT_SECRET = "qruntime-development-only-secret-do-not-use-in-production"
_addresses = iter(range(1, 250))


def new_address() -> str:
    """A distinct client address (the api trusts X-Forwarded-For from loopback, as behind a proxy)."""
    return f"198.51.100.{next(_addresses)}"


@pytest.fixture
def alice(hostile: Stack) -> Iterator[httpx.Client]:
    with _client(hostile, "alice") as client:
        yield client


@pytest.fixture
def root(hostile: Stack) -> Iterator[httpx.Client]:
    with _client(hostile, "root") as client:
        yield client


def _client(stack: Stack, user: str) -> httpx.Client:
    account = stack.accounts[user]
    headers = {
        "Authorization": f"apikey {account.api_key}",
        "Service-CRN": account.instance_crn,
        "X-Forwarded-For": new_address(),
    }
    return httpx.Client(base_url=stack.url, timeout=60, headers=headers)


def refused(response: httpx.Response, status: int, code: int, *words: str) -> str:
    assert response.status_code == status, response.text
    (error,) = response.json()["errors"]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error
    return str(error["message"])


def qpy_value(circuit: QuantumCircuit, patch: dict[int, bytes] | None = None) -> dict[str, str]:
    buffer = io.BytesIO()
    qpy.dump(circuit, buffer)
    data = bytearray(buffer.getvalue())
    for offset, value in (patch or {}).items():
        data[offset : offset + len(value)] = value
    return {
        "__type__": "QuantumCircuit",
        "__value__": base64.standard_b64encode(zlib.compress(bytes(data))).decode(),
    }


# --- 1. a 150-byte request must not exhaust the api -----------------------------------------


HUGE = {
    "qasm2 qreg": ("OPENQASM 2.0;\nqreg q[100000000];\n", 1002, "100000000 qubits"),
    "qasm2 creg": (
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[100000];\n',
        1002,
        "classical bits",
    ),
    "qasm3 qubit": ("OPENQASM 3.0;\nqubit[1000000] q;\n", 1002, "1000000 qubits"),
    "qasm3 bit": ("OPENQASM 3.0;\nqubit[2] q;\nbit[50000000] c;\n", 1002, "classical bits"),
    "qasm3 physical": ('OPENQASM 3.0;\ninclude "stdgates.inc";\nh $99999999;\n', 1002, "qubits"),
    "qasm3 const width": ("OPENQASM 3.0;\nconst uint n = 100000000;\nqubit[n] q;\n", 1201, "literal"),
    "spaced": ("OPENQASM 2.0;\nqreg  q [ 100000000 ] ;\n", 1002, "qubits"),
    "commented": ("OPENQASM 3.0;\nqreg /* x */ q [ 100000000 ] ;\n", 1002, "qubits"),
}


@pytest.mark.parametrize("case", list(HUGE))
def test_declared_widths_are_checked_before_anything_is_built(alice: httpx.Client, case: str) -> None:
    circuit, code, words = HUGE[case]
    started = time.monotonic()
    response = alice.post(f"{API}/jobs", json=sampler_job("aer_simulator", circuit))
    assert time.monotonic() - started < 10
    refused(response, 400, code, words)


def test_a_qpy_header_declaring_a_billion_qubits_is_refused_unloaded(alice: httpx.Client) -> None:
    bell = QuantumCircuit(2, 2)
    bell.h(0)
    bell.measure([0, 1], [0, 1])
    buffer = io.BytesIO()
    qpy.dump(bell, buffer)
    data = buffer.getvalue()
    # The circuit header follows the file header, the type key and the one-entry program table:
    # name_size (2), phase type (1), phase size (2), then num_qubits (4) and num_clbits (4).
    header = 19 + 1 + 8
    assert int.from_bytes(data[header + 5 : header + 9], "big") == 2
    value = qpy_value(bell, {header + 5: (10**9).to_bytes(4, "big")})
    response = alice.post(f"{API}/jobs", json=sampler_job("aer_simulator", value))
    refused(response, 400, 1002, "1000000000 qubits", "this server")
    value = qpy_value(bell, {header + 9: (10**8).to_bytes(4, "big")})
    refused(alice.post(f"{API}/jobs", json=sampler_job("aer_simulator", value)), 400, 1002, "classical bits")


def test_deployments_are_held_to_the_server_wide_cap(alice: httpx.Client) -> None:
    for language, text in (
        ("QASM2", "OPENQASM 2.0;\nqreg q[100000000];\n"),
        ("QASM3", "OPENQASM 3.0;\nqubit[1000000] q;\n"),
    ):
        body = {"name": "huge", "programs": [{"assembler_language": language, "quantum_circuit": text}]}
        refused(alice.post(f"{API}/deployments", json=body), 400, 1002, "at most 1024")


def test_a_flood_of_huge_registers_leaves_other_requests_answered(
    hostile: Stack, alice: httpx.Client
) -> None:
    body = json.dumps(sampler_job("aer_simulator", "OPENQASM 2.0;\nqreg q[100000000];\n"))
    statuses: list[int] = []

    def attack() -> None:
        with _client(hostile, "mallory") as client:
            for _ in range(3):
                statuses.append(
                    client.post(
                        f"{API}/jobs", content=body, headers={"content-type": "application/json"}
                    ).status_code
                )

    attackers = [threading.Thread(target=attack) for _ in range(20)]
    for thread in attackers:
        thread.start()
    latencies = []
    while any(thread.is_alive() for thread in attackers):
        started = time.monotonic()
        assert alice.get(f"{API}/jobs").status_code == 200
        assert httpx.get(hostile.url + "/healthz", timeout=10).status_code == 200
        latencies.append(time.monotonic() - started)
    for thread in attackers:
        thread.join()
    assert statuses == [400] * 60
    assert max(latencies, default=0) < 5


# --- 2. no file access from circuits --------------------------------------------------------


INCLUDES = ["/etc/passwd", "/proc/self/environ", "pyproject.toml", "../../../../etc/hostname", "nowhere.inc"]


def include_answers(client: httpx.Client, path: str) -> list[str]:
    answers = []
    for text in (
        f'OPENQASM 2.0;\ninclude "{path}";\nqreg q[1];\n',
        f'OPENQASM 2.0;\ninclude"{path}";qreg q[1];\n',
        f'OPENQASM 3.0;\ninclude "{path}";\nqubit[1] q;\n',
    ):
        response = client.post(f"{API}/jobs", json=sampler_job("aer_simulator", text))
        answers.append(refused(response, 400, 1201, "may include only"))
        language = "QASM3" if text.startswith("OPENQASM 3") else "QASM2"
        body = {"name": "inc", "programs": [{"assembler_language": language, "quantum_circuit": text}]}
        answers.append(refused(client.post(f"{API}/deployments", json=body), 400, 1201, "may include only"))
    return answers


@pytest.mark.parametrize("path", INCLUDES)
def test_include_reads_no_file(alice: httpx.Client, path: str) -> None:
    answers = include_answers(alice, path)
    for message in answers:
        assert "root" not in message and path not in message and "unable to find" not in message
    # A missing file and an existing one answer alike: nothing to probe.
    assert answers == include_answers(alice, "missing-file.inc")


def test_the_standard_includes_still_work(alice: httpx.Client) -> None:
    response = alice.post(f"{API}/jobs", json=sampler_job("aer_simulator", BELL_QASM2))
    assert response.status_code == 200, response.text


# --- 3. 500s from input ---------------------------------------------------------------------


def test_nul_and_control_characters_are_refused_where_they_would_be_stored(
    hostile: Stack, alice: httpx.Client, root: httpx.Client
) -> None:
    queries = [
        f"{API}/jobs?backend=a%00b",
        f"{API}/jobs?tags=x%00",
        f"{API}/jobs?session_id=%00",
        f"{API}/sessions?backend=%00",
        f"{API}/deployments?name=%00",
        f"{API}/jobs/abc%00def",
        f"{API}/deployments/%00",
        f"{API}/devices?provider=%0d%0a",
    ]
    for url in queries:
        refused(alice.get(url), 400, 1200, "control characters")
        assert alice.get(f"{API}/jobs?limit=1").status_code == 200  # the connection is still good
    bodies: list[tuple[httpx.Client, str, str, Any]] = [
        (alice, "POST", f"{API}/jobs", {**sampler_job("aer_simulator"), "tags": ["a\u0000b"]}),
        (alice, "POST", f"{API}/jobs", sampler_job("aer_simulator\u0000")),
        (alice, "POST", f"{API}/sessions", {"mode": "batch", "backend": "aer\u0000"}),
        (
            alice,
            "POST",
            f"{API}/deployments",
            {"name": "x\u0000", "programs": [{"assembler_language": "QASM2", "quantum_circuit": BELL_QASM2}]},
        ),
        (root, "POST", f"{API}/admin/users", {"name": "eve\u0000"}),
        (root, "POST", f"{API}/admin/instances", {"name": "lab\u0000"}),
        (alice, "PUT", f"{API}/providers/ibm/credentials", {"token": "t\u0000"}),
    ]
    for client, method, url, body in bodies:
        refused(client.request(method, url, json=body), 400, 1200)
    refused(
        httpx.post(
            hostile.url + "/identity/token",
            data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": "qrt_ab\x00cd_ef"},
            headers={"X-Forwarded-For": new_address()},
        ),
        400,
        1200,
        "control characters",
    )


def test_integers_beyond_their_column_types_are_refused(alice: httpx.Client, root: httpx.Client) -> None:
    for url in (
        f"{API}/jobs?offset=9223372036854775808",
        f"{API}/jobs?offset=2147483648",
        f"{API}/sessions?offset=9223372036854775808",
        f"{API}/deployments?offset=99999999999999999999",
        f"{API}/devices?min_qubits=9223372036854775808",
    ):
        refused(alice.get(url), 400, 1200)
    refused(
        root.post(f"{API}/admin/instances", json={"name": "big", "max_concurrent_jobs": 2**40}), 400, 1200
    )
    refused(root.patch(f"{API}/admin/instances/lab-a", json={"max_concurrent_jobs": 2**40}), 400, 1200)
    job = {**sampler_job("aer_simulator"), "cost": 2**63}
    refused(alice.post(f"{API}/jobs", json=job), 400, 1200)


def test_deep_nesting_long_numbers_and_non_numbers_are_refused_before_decoding(
    alice: httpx.Client, root: httpx.Client
) -> None:
    deep = "[" * 5000 + "]" * 5000
    for url in (f"{API}/jobs", f"{API}/sessions", f"{API}/deployments", f"{API}/admin/instances"):
        client = root if "admin" in url else alice
        response = client.post(url, content=deep, headers={"content-type": "application/json"})
        refused(response, 400, 1200, "5000 deep")
    job = json.dumps(sampler_job("aer_simulator")).replace('"params"', '"deep": ' + deep + ', "params"')
    refused(
        alice.post(f"{API}/jobs", content=job, headers={"content-type": "application/json"}),
        400,
        1200,
        "deep",
    )
    digits = "9" * 5000
    for body in (
        '{"mode": "batch", "backend": "aer_simulator", "max_ttl": ' + digits + "}",
        '{"mode": "batch", "backend": "aer_simulator", "max_ttl": "' + digits + '"}',
    ):
        response = alice.post(f"{API}/sessions", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
    shots = json.dumps(sampler_job("aer_simulator")).replace("1000]]", "1" + "0" * 400 + "]]")
    refused(alice.post(f"{API}/jobs", content=shots, headers={"content-type": "application/json"}), 400, 1200)
    precision = {
        "program_id": "estimator",
        "backend": "aer_simulator",
        "params": {"pubs": [[BELL_QASM2, "ZZ", None, 10**400]]},
    }
    assert alice.post(f"{API}/jobs", json=precision).status_code == 400
    for literal in ("Infinity", "-Infinity", "NaN"):
        body = '{"name": "inf", "usage_allocation_seconds": ' + literal + "}"
        response = root.post(
            f"{API}/admin/instances", content=body, headers={"content-type": "application/json"}
        )
        refused(response, 400, 1200, "NaN and Infinity")
    for text in ("Infinity", "inf", "NaN"):
        response = root.post(f"{API}/admin/instances", json={"name": "inf", "usage_allocation_seconds": text})
        refused(response, 400, 1200)
    assert alice.get(f"{API}/jobs?limit=1").status_code == 200


# --- 4. metrics are not public and cost no query per scrape ------------------------------------


def test_metrics_are_off_the_api_port_and_cached(hostile: Stack) -> None:
    assert httpx.get(hostile.url + "/metrics").status_code == 401
    assert httpx.get(hostile.url + "/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with_token = httpx.get(hostile.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert with_token.status_code == 200 and "qruntime_http_requests_total" in with_token.text

    def transactions() -> int:
        rows = hostile.sql(
            "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1",
            hostile.database,
        )
        return int(rows[0]["n"])

    before = transactions()
    with httpx.Client() as client:
        for _ in range(300):
            assert client.get(hostile.metrics_url).status_code == 200
    # Only the api's own background work (the gauges' timer, the relay) ran meanwhile.
    assert transactions() - before < 100


def test_the_shared_stack_serves_no_metrics_on_its_api_port(stack: Stack) -> None:
    assert httpx.get(stack.url + "/metrics").status_code == 404
    assert "qruntime_http_requests_total" in httpx.get(stack.metrics_url).text


# --- 5. event streams are bounded ---------------------------------------------------------


def test_event_streams_are_capped_per_user_and_end_when_idle(hostile: Stack, alice: httpx.Client) -> None:
    job = alice.post(f"{API}/jobs", json=sampler_job("aer_simulator")).json()["id"]
    url = f"{API}/jobs/{job}/events"
    streams = []
    try:
        for _ in range(3):
            stream = alice.stream("GET", url)
            response = stream.__enter__()
            assert response.status_code == 200
            streams.append(stream)
        refused(alice.get(url), 429, 1013, "QRUNTIME_SSE_MAX_STREAMS_PER_USER")
        with _client(hostile, "mallory") as other:  # another user's cap is their own (404: not theirs)
            assert other.get(url).status_code == 404
    finally:
        for stream in streams:
            stream.__exit__(None, None, None)
    # Closed streams free their slots; a quiet stream ends by itself after the idle timeout (2 s).
    deadline = time.monotonic() + 30
    while True:
        started = time.monotonic()
        with alice.stream("GET", url) as response:
            if response.status_code == 200:
                text = "".join(response.iter_text())
                break
        assert time.monotonic() < deadline, "slots were not freed"
        time.sleep(0.2)
    assert "idle" in text and time.monotonic() - started < 20


# --- 6. development secrets are random ----------------------------------------------------


def test_no_constant_development_secret_is_accepted(hostile: Stack) -> None:
    user_id = hostile.sql("SELECT id FROM users WHERE name = 'root'")[0]["id"]
    key_id = hostile.sql("SELECT id FROM api_keys WHERE user_id = $1", user_id)[0]["id"]
    now = int(time.time())
    for secret in (OLD_DEVELOPMENT_SECRET, TEST_JWT_SECRET):
        forged = jwt.encode(
            {"sub": user_id, "kid": key_id, "iat": now, "exp": now + 600, "iss": "qruntime"},
            secret,
            algorithm="HS256",
        )
        response = httpx.get(
            hostile.url + f"{API}/admin/users",
            headers={"Authorization": f"Bearer {forged}", "X-Forwarded-For": new_address()},
        )
        refused(response, 401, 3200)
    # The api made its own secret: a token it issued works.
    assert (
        httpx.get(
            hostile.url + f"{API}/admin/users", headers={"Authorization": f"Bearer {hostile.token('root')}"}
        ).status_code
        == 200
    )


def test_bootstrap_keeps_random_secrets_in_the_development_env_file(
    hostile: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.cli.admin import keep_development_secrets
    from shared.kit.settings import Settings

    env = {k: v for k, v in hostile.env.items() if k not in ("QRUNTIME_JWT_SECRET", "QRUNTIME_SECRETS_KEY")}
    for _ in range(2):  # `make run` twice: the second run keeps what the first generated
        subprocess.run(
            [sys.executable, "-m", "services.cli", "admin", "bootstrap"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    text = (tmp_path / ".qruntime-dev.env").read_text()
    values = dict(line.split("=", 1) for line in text.splitlines())
    assert len(values["QRUNTIME_JWT_SECRET"]) >= 32 and len(values["QRUNTIME_SECRETS_KEY"]) >= 32
    assert text.count("QRUNTIME_JWT_SECRET=") == 1  # users exist here: only the secrets are written
    assert (tmp_path / ".qruntime-dev.env").stat().st_mode & 0o077 == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    keep_development_secrets(Settings(_env_file=None, jwt_secret=None, secrets_key=None))
    other = dict(line.split("=", 1) for line in (elsewhere / ".qruntime-dev.env").read_text().splitlines())
    assert other["QRUNTIME_JWT_SECRET"] != values["QRUNTIME_JWT_SECRET"]


# --- 7. authentication failures, headers, values accepted but wrong ------------------------


def test_failed_authentication_is_logged_and_throttled_per_address_and_key(hostile: Stack) -> None:
    key = hostile.accounts["alice"].api_key
    key_id = key.split("_")[1]
    attacker = new_address()
    wrong = f"qrt_{key_id}_{'0' * 64}"
    answers = []
    for _ in range(6):
        response = httpx.get(
            hostile.url + f"{API}/jobs",
            headers={"Authorization": f"apikey {wrong}", "X-Forwarded-For": attacker},
        )
        answers.append(response.status_code)
    assert answers[:4] == [401] * 4 and answers[4:] == [429, 429]
    assert int(response.headers["Retry-After"]) > 0
    refused(response, 429, 3202)
    # The owner, elsewhere, is not locked out; the attacker's address is, even with the right key.
    owner = httpx.get(
        hostile.url + f"{API}/jobs",
        headers={"Authorization": f"apikey {key}", "X-Forwarded-For": new_address()},
    )
    assert owner.status_code == 200
    blocked = httpx.get(
        hostile.url + f"{API}/jobs", headers={"Authorization": f"apikey {key}", "X-Forwarded-For": attacker}
    )
    assert blocked.status_code == 429
    # Per address, whatever the key ids: the token endpoint counts too.
    sprayer = new_address()
    codes = [
        httpx.post(
            hostile.url + "/identity/token",
            data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": f"qrt_guess{n}_{n:064d}"},
            headers={"X-Forwarded-For": sprayer},
        ).status_code
        for n in range(10)
    ]
    assert codes == [401] * 8 + [429, 429]
    lines = [line for line in iter_lines(hostile.log_dir / "api.log") if "authentication failed" in line]
    assert any(f"key_id={key_id}" in line and f"source={attacker}" in line for line in lines)
    assert any("key_id=guess3" in line and f"source={sprayer}" in line for line in lines)
    assert not any("0" * 64 in line or key.split("_")[2] in line for line in lines)


def test_security_headers(hostile: Stack, alice: httpx.Client) -> None:
    token = httpx.post(
        hostile.url + "/identity/token",
        data={
            "grant_type": "urn:ibm:params:oauth:grant-type:apikey",
            "apikey": hostile.accounts["alice"].api_key,
        },
    )
    assert token.status_code == 200
    assert token.headers["cache-control"] == "no-store"
    for response in (
        token,
        alice.get(f"{API}/jobs"),
        alice.get(f"{API}/jobs/nope"),
        httpx.get(hostile.url + "/healthz"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "server" not in response.headers
    key = alice.post(f"{API}/admin/users/alice/keys")
    assert key.status_code == 403 and key.headers["cache-control"] == "no-store"


def test_values_once_accepted_but_wrong_are_refused(alice: httpx.Client, root: httpx.Client) -> None:
    for tags in (["a\r\nb"], ["x" * 257], [f"t{n}" for n in range(51)], [""]):
        refused(alice.post(f"{API}/jobs", json={**sampler_job("aer_simulator"), "tags": tags}), 400, 1200)
    big_tag = alice.post(f"{API}/jobs", json={**sampler_job("aer_simulator"), "tags": ["x" * (1 << 20)]})
    assert big_tag.status_code in (400, 413)
    job = alice.post(f"{API}/jobs", json=sampler_job("aer_simulator")).json()["id"]
    refused(alice.put(f"{API}/jobs/{job}/tags", json={"tags": ["line\nbreak"]}), 400, 1200)
    assert alice.put(f"{API}/jobs/{job}/tags", json={"tags": ["fine tag"]}).status_code == 204
    refused(alice.get(f"{API}/jobs", params={"tags": "x" * 300}), 400, 1200)
    refused(alice.post(f"{API}/jobs", json=sampler_job("aer_simulator", NO_QUBITS)), 400, 1201, "no qubits")
    refused(
        alice.post(f"{API}/jobs", json=sampler_job("aer_simulator", NO_REGISTER)),
        400,
        1201,
        "no classical register",
    )
    estimator = {
        "program_id": "estimator",
        "backend": "aer_simulator",
        "params": {"pubs": [[NO_QUBITS, "Z"]]},
    }
    refused(alice.post(f"{API}/jobs", json=estimator), 400, 1201, "no qubits")
    deployment = alice.post(
        f"{API}/deployments",
        json={"name": "bell", "programs": [{"assembler_language": "QASM2", "quantum_circuit": BELL_QASM2}]},
    ).json()["id"]
    for shots in (-7, 0, 10**400):
        response = alice.post(
            f"{API}/deployments/{deployment}/jobs",
            content='{"device": "aer_simulator", "type": "ESTIMATOR", "observables": "ZZ", "shots": '
            + str(shots)
            + "}",
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400, response.text
    empty = {"name": "empty", "programs": [{"assembler_language": "QASM2", "quantum_circuit": NO_QUBITS}]}
    refused(alice.post(f"{API}/deployments", json=empty), 400, 1201, "no qubits")
    for name in ("bob\n", "bob\r", "\nbob", "bo b"):
        refused(root.post(f"{API}/admin/users", json={"name": name}), 400, 1200)
    assert root.post(f"{API}/admin/users", json={"name": "bob"}).status_code == 201


def test_no_response_or_log_line_holds_file_content_secrets_or_tracebacks(hostile: Stack) -> None:
    """Runs after the attacks above (module order)."""
    log = list(iter_lines(hostile.log_dir / "api.log"))
    passwd_line = re.compile(r"root:.*:0:0:")
    secrets = [account.api_key.split("_")[2] for account in hostile.accounts.values()] + [METRICS_TOKEN]
    for line in log:
        assert not passwd_line.search(line), line
        assert not any(secret in line for secret in secrets), line
        assert "OPENQASM" not in line, line  # no circuit in the api's log
    assert not any("Traceback" in line for line in log), "an input reached the generic handler"
