from collections.abc import Iterator

import httpx
import pytest

from tests.stack import Account, Stack

METRICS_TOKEN = "metrics-token-of-the-hostile-stack-0123456789"


@pytest.fixture(scope="session")
def hostile() -> Iterator[Stack]:
    """A stack of its own for attacks (tight stream and authentication limits, development mode
    with no configured secret): an api only, so submitted jobs stay queued."""
    stack = Stack(
        backends=["aer_simulator", "fake_manila"],
        settings_env={
            "QRUNTIME_JWT_SECRET": "",  # development mode without a configured secret
            "QRUNTIME_METRICS_TOKEN": METRICS_TOKEN,
            "QRUNTIME_SSE_MAX_STREAMS_PER_USER": "3",
            "QRUNTIME_SSE_IDLE_TIMEOUT_SECONDS": "2",
            "QRUNTIME_AUTH_FAILURES_PER_ADDRESS": "8",
            "QRUNTIME_AUTH_FAILURES_PER_KEY": "4",
            "QRUNTIME_AUTH_FAILURE_WINDOW_SECONDS": "600",
        },
    )
    try:
        stack.migrate()
        stack.add_account("root", "ops", admin=True)
        stack.start_api()
        for user, instance in (("alice", "lab-a"), ("mallory", "lab-m")):
            add_account_by_api(stack, user, instance)
        yield stack
    finally:
        stack.destroy()


def add_account_by_api(stack: Stack, user: str, instance: str) -> Account:
    """Like Stack.add_account, through the admin API (faster than four `qruntime admin` runs)."""
    admin = stack.accounts["root"]
    with httpx.Client(
        base_url=stack.url + "/api/v1/admin",
        headers={"Authorization": f"apikey {admin.api_key}", "Service-CRN": admin.instance_crn},
        timeout=30,
    ) as client:
        assert client.post("/users", json={"name": user}).status_code == 201
        created = client.post("/instances", json={"name": instance})
        assert created.status_code == 201, created.text
        assert client.post(f"/instances/{instance}/members", json={"user": user}).status_code == 204
        key = client.post(f"/users/{user}/keys")
        assert key.status_code == 201, key.text
    account = Account(name=user, api_key=key.json()["api_key"], instance_crn=created.json()["crn"])
    stack.accounts[user] = account
    return account
