"""A property-based fuzz of every operation in the api's OpenAPI schema (schemathesis strategies,
valid and invalid requests alike), each request sent with an ordinary user's key and with an
administrator's: no answer may be a 5xx. `make test` runs a few examples per operation; the
README's command runs hundreds:

    QRUNTIME_FUZZ_EXAMPLES=300 .venv/bin/pytest tests/security/test_schema_fuzz.py
"""

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from services.api.app import create_app
from shared.kit.settings import Settings
from tests.stack import Stack

EXAMPLES = int(os.environ.get("QRUNTIME_FUZZ_EXAMPLES", "4"))

# The schema the app publishes at /openapi.json (built without starting it).
SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings(_env_file=None, jwt_secret="x" * 32, secrets_key="y" * 32)).openapi()
)
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}


def headers_of(stack: Stack, user: str) -> dict[str, str]:
    account = stack.accounts[user]
    # An address of its own, so that the fuzz never meets the attack tests' throttles.
    return {
        "Authorization": f"apikey {account.api_key}",
        "Service-CRN": account.instance_crn,
        "X-Forwarded-For": "192.0.2.77",
    }


def requests_for(label: str) -> st.SearchStrategy[Any]:
    operation = OPERATIONS[label]
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    try:
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    except Exception:  # an operation with nothing to make invalid
        pass
    return st.one_of(strategies)


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_operation_answers_a_server_error(hostile: Stack, label: str) -> None:
    users = {user: headers_of(hostile, user) for user in ("alice", "root")}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=requests_for(label))
    def check(case: Any) -> None:
        for user, auth in users.items():
            response = case.call(base_url=hostile.url, headers={**(case.headers or {}), **auth}, timeout=30)
            assert response.status_code < 500, (user, case.method, case.formatted_path, response.text[:300])

    check()
