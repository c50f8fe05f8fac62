"""Refusals of authentication point at the right form, and no secret is ever echoed back."""

import subprocess
import sys

import httpx

from tests.stack import ROOT, Stack


def test_missing_credentials_name_both_forms(stack: Stack) -> None:
    errors = httpx.get(stack.url + "/api/v1/jobs", timeout=10).json()["errors"]
    assert errors[0]["code"] == 3200
    assert "apikey <API key>" in errors[0]["message"] and "Bearer" in errors[0]["message"]


def test_an_api_key_sent_as_bearer_is_recognised(stack: Stack) -> None:
    key = stack.accounts["alice"].api_key
    response = httpx.get(stack.url + "/api/v1/jobs", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code == 401
    message = response.json()["errors"][0]["message"]
    assert "This is an API key, not an access token" in message
    assert key.rsplit("_", 1)[-1] not in response.text


def test_a_wrong_key_is_3201_on_the_api_and_on_the_token_exchange(stack: Stack) -> None:
    wrong = "qrt_0123456789abcdef_" + "y" * 43
    api = httpx.get(stack.url + "/api/v1/jobs", headers={"Authorization": f"apikey {wrong}"}, timeout=10)
    token = httpx.post(
        stack.url + "/identity/token",
        data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": wrong},
        timeout=10,
    )
    assert api.status_code == token.status_code == 401
    assert api.json()["errors"][0]["code"] == token.json()["errors"][0]["code"] == 3201
    assert "y" * 43 not in api.text + token.text


def test_revoke_key_given_a_whole_key_never_prints_its_secret(stack: Stack) -> None:
    secret = "z" * 43
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "admin", "revoke-key", f"qrt_00000000deadbeef_{secret}"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "00000000deadbeef does not exist" in done.stderr
    assert secret not in done.stdout + done.stderr
