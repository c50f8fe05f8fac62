"""The body size limit over real HTTP, against the running api process. Every other refusal of bad
input (codes, messages, nothing written) is tested in-process in tests/endpoints/test_jobs.py."""

import json
from collections.abc import Iterator

import pytest

from tests.stack import BELL_QASM2, Stack, sampler_job


@pytest.fixture
def nothing_written(stack: Stack) -> Iterator[None]:
    before = stack.sql("SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM outbox) AS outbox")[
        0
    ]
    yield
    after = stack.sql("SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM outbox) AS outbox")[
        0
    ]
    assert dict(after) == dict(before)


def test_body_over_size_limit(stack: Stack, nothing_written: None) -> None:
    body = json.dumps(sampler_job("aer_simulator", BELL_QASM2 + "// " + "x" * (2 * 1024 * 1024))).encode()
    with stack.client() as client:
        declared = client.post("/api/v1/jobs", content=body, headers={"content-type": "application/json"})

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        streamed = client.post("/api/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["errors"][0]["code"] == 1202
        assert "1048576 bytes" in response.json()["errors"][0]["message"]
