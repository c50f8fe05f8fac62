"""`qruntime up` as `make run` starts it: "ready" only once everything answers, a failure to bind
reported as a failure, and logs a person can follow (a line per request and per job state change,
never a key)."""

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.stack import ROOT, Stack, sampler_job

READY = "qruntime is ready on"


class Up:
    """A `qruntime up` process whose merged output is collected line by line."""

    def __init__(self, stack: Stack) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up"],
            cwd=ROOT,
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in list(self.lines) if text in line]
            if found:
                return found[0]
            if self.process.poll() is not None and not [line for line in self.lines if text in line]:
                time.sleep(0.5)  # let the reader drain the pipe
                found = [line for line in list(self.lines) if text in line]
                if found:
                    return found[0]
                raise AssertionError(f"up exited before {text!r}:\n{''.join(self.lines)[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} within {timeout} s:\n{''.join(self.lines)[-3000:]}")

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def fresh_stack() -> Iterator[Stack]:
    stack = Stack(backends=["aer_simulator"])
    try:
        stack.migrate()
        stack.add_account("alice", "lab-a")
        yield stack
    finally:
        stack.destroy()


def test_a_port_that_cannot_be_bound_is_a_failure(fresh_stack: Stack) -> None:
    stack = fresh_stack
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", stack.api_port))
        taken.listen()
        up = Up(stack)
        try:
            code = up.process.wait(timeout=120)
        finally:
            up.stop()
    assert code == 1, up.output[-3000:]
    assert "qruntime failed to start: api exited" in up.output
    assert READY not in up.output


def test_ready_only_when_everything_answers_and_logs_are_followable(fresh_stack: Stack) -> None:
    stack = fresh_stack
    up = Up(stack)
    try:
        up.wait_for(READY, timeout=240)
        # At the moment "ready" is printed, the api answers and an executor and a leader are there.
        assert httpx.get(stack.url + "/readyz", timeout=5).status_code == 200
        live = stack.sql("SELECT count(*) AS n FROM executors WHERE stopped_at IS NULL")[0]["n"]
        assert live >= 1
        assert "scheduler is the leader" in up.output

        key = stack.accounts["alice"].api_key
        user_id = stack.sql("SELECT id FROM users WHERE name = 'alice'")[0]["id"]
        with httpx.Client(
            base_url=stack.url, headers={"Authorization": f"apikey {key}"}, timeout=30
        ) as client:
            job_id = client.post("/api/v1/jobs", json=sampler_job("aer_simulator", shots=100)).json()["id"]
            assert client.get("/api/v1/jobs/nope").status_code == 404
            for _ in range(300):
                if client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "Completed":
                    break
                time.sleep(0.1)

        # One access line per request: method, path, status, milliseconds, user id.
        submitted = up.wait_for("POST /api/v1/jobs 200", timeout=10)
        assert f"user={user_id}" in submitted and " ms " in submitted
        assert f"user={user_id}" in up.wait_for("GET /api/v1/jobs/nope 404", timeout=10)
        # One line per state change of the job, from the process that made it.
        for status in ("Queued", "Running", "Completed"):
            up.wait_for(f"job {job_id} {status} on aer_simulator", timeout=30)
        # Never a key (nor its secret part) in the logs.
        assert key.rsplit("_", 1)[-1] not in up.output
    finally:
        assert up.stop() == 0, up.output[-3000:]
