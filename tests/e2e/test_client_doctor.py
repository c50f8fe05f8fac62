"""`qruntime client-env` and `qruntime doctor` against a real stack, with the official client.

Each misconfiguration of the README's troubleshooting table is set up the way a user gets it wrong
(a variable missing, a wrong key, a URL without "experimental"), then `qruntime doctor` runs the
client's account resolution, token handshake and backend discovery and must name that cause.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.cli.client import client_variables, diagnose
from tests.stack import ROOT, Stack, free_port


def qruntime(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def client_env(stack: Stack, home: Path) -> dict[str, str]:
    """What `qruntime client-env` prints, parsed, on top of a clean environment."""
    account = stack.accounts["alice"]
    done = qruntime(
        "client-env",
        "--key",
        account.api_key,
        "--instance",
        account.instance_crn,
        "--url",
        stack.url,
        env=stack.env,
    )
    assert done.returncode == 0, done.stderr
    variables = {}
    for line in done.stdout.splitlines():
        assert line.startswith("export ")
        name, _, value = line.removeprefix("export ").partition("=")
        variables[name] = value
    assert set(variables) == {
        "IAM_URL",
        "QISKIT_FUNCTIONS_EXPERIMENTAL",
        "QISKIT_IBM_URL",
        "QISKIT_IBM_TOKEN",
        "QISKIT_IBM_INSTANCE",
    }
    assert variables == client_variables(stack.url, account.api_key, account.instance_crn)
    return clean_env(stack, home, variables)


def clean_env(stack: Stack, home: Path, variables: dict[str, str]) -> dict[str, str]:
    # HOME without a saved account: only the variables configure the client.
    base = {k: v for k, v in stack.env.items() if not k.startswith(("QISKIT_", "IAM_"))}
    return {**base, "HOME": str(home), **variables}


def doctor(env: dict[str, str]) -> dict[str, Any]:
    done = qruntime("doctor", "--json", env=env)
    verdict: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == (0 if verdict["ok"] else 1), done.stderr
    return verdict


def test_client_env_is_enough_for_the_client(stack: Stack, tmp_path: Path) -> None:
    verdict = doctor(client_env(stack, tmp_path))
    assert verdict["ok"], verdict
    assert "aer_simulator, fake_manila" in verdict["message"]


def _without(env: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != name}


MISCONFIGURATIONS = {
    # trap 1: IAM_URL forgotten (the client would ask IBM Cloud for a token and stall)
    "iam_url_missing": lambda env, stack: _without(env, "IAM_URL"),
    # trap 2: a wrong key (the client would wait 62 s and list no backend)
    "invalid_key": lambda env, stack: {**env, "QISKIT_IBM_TOKEN": "qrt_0123456789abcdef_" + "x" * 43},
    # trap 2: QISKIT_FUNCTIONS_EXPERIMENTAL forgotten (the client calls the valid token invalid)
    "functions_experimental_missing": lambda env, stack: _without(env, "QISKIT_FUNCTIONS_EXPERIMENTAL"),
    # trap 2: a URL without "experimental" (the client rewrites it; "No backend matches")
    "url_not_experimental": lambda env, stack: {**env, "QISKIT_IBM_URL": stack.url + "/api/v1"},
    # related: nothing listening where IAM_URL points, an instance the user is not in, no account
    "iam_url_unreachable": lambda env, stack: {**env, "IAM_URL": f"http://127.0.0.1:{free_port()}"},
    "instance_not_allowed": lambda env, stack: {
        **env,
        "QISKIT_IBM_INSTANCE": "crn:v1:qruntime:public:quantum-computing:local:a/qruntime:nope::",
    },
    "no_account": lambda env, stack: _without(env, "QISKIT_IBM_TOKEN"),
}


@pytest.mark.parametrize("cause", list(MISCONFIGURATIONS))
def test_doctor_names_the_cause(
    stack: Stack, tmp_path: Path, cause: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In this process (the client reads os.environ), so that each case costs no interpreter start.
    account = stack.accounts["alice"]
    configured = clean_env(
        stack, tmp_path, client_variables(stack.url, account.api_key, account.instance_crn)
    )
    env = MISCONFIGURATIONS[cause](configured, stack)
    for name in [n for n in os.environ if n.startswith(("QISKIT_", "IAM_"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    diagnosis = diagnose()
    assert not diagnosis.ok
    assert diagnosis.cause == cause, diagnosis
    message = diagnosis.message
    assert message.count(". ") == 0 and len(message) < 400  # one sentence
    # The sentence never repeats a secret.
    for key in (stack.accounts["alice"].api_key, env.get("QISKIT_IBM_TOKEN")):
        if key:
            assert key.rsplit("_", 1)[-1] not in message


def test_client_env_file_is_private_and_sourceable(stack: Stack, tmp_path: Path) -> None:
    account = stack.accounts["alice"]
    target = tmp_path / "client.env"
    done = qruntime(
        "client-env",
        "--key",
        account.api_key,
        "--instance",
        account.instance_crn,
        "--url",
        stack.url,
        "--output",
        str(target),
        env=stack.env,
    )
    assert done.returncode == 0, done.stderr
    assert account.api_key not in done.stdout
    assert oct(os.stat(target).st_mode & 0o777) == "0o600"
    shown = subprocess.run(
        ["bash", "-c", f"source {target} && echo $QISKIT_IBM_URL $QISKIT_IBM_INSTANCE"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shown == [stack.url + "/experimental/api/v1", account.instance_crn]


def test_client_env_without_credentials_says_what_to_give(stack: Stack, tmp_path: Path) -> None:
    done = qruntime("client-env", env=stack.env, cwd=tmp_path)
    assert done.returncode == 2
    assert "--key and --instance" in done.stderr
