"""Fault scenarios against real processes on a private PostgreSQL and RabbitMQ (see conftest.py).

One fault at a time, no process restarted by hand except the one a scenario kills (as an
orchestrator would restart it). Each scenario states its recovery bound: the seconds from the end of
the fault until every accepted job is final.
"""

import threading
import time

import pytest

from tests.faults.conftest import (
    BACKEND,
    SLACK,
    FaultStack,
    Submission,
    assert_clean,
    audit,
    kill_pid,
    submit,
)
from tests.stack import child_pids, layered_qasm, sampler_job, wait_for

pytestmark = pytest.mark.faults

LONG_CIRCUIT = layered_qasm(20, 28)  # several seconds of simulation on 2 cores


def in_background(stack: FaultStack, label: str, count: int) -> tuple[threading.Thread, Submission]:
    sub = Submission(label)

    def go() -> None:
        done = submit(stack, label, range(count))
        sub.ids.update(done.ids)
        sub.http_codes.update(done.http_codes)
        sub.refused.update(done.refused)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, sub


def accepted_so_far(stack: FaultStack, label: str) -> int:
    return int(stack.sql("SELECT count(*) AS n FROM jobs WHERE tags ? $1", f"fault-{label}")[0]["n"])


def start_long_job(stack: FaultStack) -> str:
    with stack.client() as client:
        response = client.post("/api/v1/jobs", json=sampler_job(BACKEND, circuit=LONG_CIRCUIT, shots=50))
        assert response.status_code == 200, response.text
        job_id = str(response.json()["id"])
    wait_for(
        lambda: stack.sql("SELECT status FROM jobs WHERE id = $1", job_id)[0]["status"] == "RUNNING",
        60 * SLACK,
        "the long job to start",
    )
    return job_id


def long_job_done(stack: FaultStack, job_id: str, timeout: float = 120 * SLACK) -> str:
    statuses = stack.wait_final([job_id], timeout=timeout)
    return statuses[job_id]


def executor_pid(stack: FaultStack) -> int:
    return stack.processes[f"executor-{BACKEND}"].pid


def test_broker_killed_and_restarted_mid_load(fstack: FaultStack) -> None:
    """kill -9 of the RabbitMQ node, back 8 s later, during a 600-job load."""
    thread, sub = in_background(fstack, "broker-kill", 600)
    wait_for(lambda: accepted_so_far(fstack, "broker-kill") >= 150, 60 * SLACK, "150 jobs accepted")
    fstack.rabbit.kill9()
    time.sleep(8)
    fstack.rabbit.start()
    restored = time.monotonic()
    thread.join(timeout=120 * SLACK)
    assert not thread.is_alive(), "the clients did not finish submitting"
    fig = audit(fstack, "RabbitMQ kill -9, back after 8 s (600 jobs)", [sub], restored, bound=60)
    assert_clean(fig, [sub])
    wait_for(lambda: fstack.health("scheduler", "/readyz") == 200, 30 * SLACK, "scheduler ready again")
    wait_for(
        lambda: fstack.health(f"executor-{BACKEND}", "/readyz") == 200, 30 * SLACK, "executor ready again"
    )


def test_broker_stop_app_start_app(fstack: FaultStack) -> None:
    thread, sub = in_background(fstack, "stop-app", 300)
    wait_for(lambda: accepted_so_far(fstack, "stop-app") >= 80, 60 * SLACK, "80 jobs accepted")
    fstack.rabbit.ctl("stop_app")
    time.sleep(4)
    fstack.rabbit.ctl("start_app")
    fstack.rabbit.wait_app()
    restored = time.monotonic()
    thread.join(timeout=120 * SLACK)
    assert not thread.is_alive(), "the clients did not finish submitting"
    fig = audit(fstack, "RabbitMQ stop_app, start_app 4 s later (300 jobs)", [sub], restored, bound=60)
    assert_clean(fig, [sub])


def test_postgres_restart_during_long_simulation_then_300_jobs(fstack: FaultStack) -> None:
    long_job = start_long_job(fstack)
    fstack.pg.stop("immediate")
    time.sleep(2)
    fstack.pg.start()
    restored = time.monotonic()
    sub = submit(fstack, "pg-long", range(300))
    fig = audit(
        fstack, "PostgreSQL immediate restart during a long simulation, then 300 jobs", [sub], restored, 90
    )
    assert_clean(fig, [sub])
    assert long_job_done(fstack, long_job) == "DONE"


def test_postgres_restart_during_burst(fstack: FaultStack) -> None:
    """Clients see 503 with Retry-After while the database is away, never 500; retries with the same
    Idempotency-Key store each job once."""
    thread, sub = in_background(fstack, "pg-burst", 300)
    wait_for(lambda: accepted_so_far(fstack, "pg-burst") >= 80, 60 * SLACK, "80 jobs accepted")
    fstack.pg.stop("immediate")
    time.sleep(3)
    fstack.pg.start()
    restored = time.monotonic()
    thread.join(timeout=120 * SLACK)
    assert not thread.is_alive(), "the clients did not finish submitting"
    fig = audit(fstack, "PostgreSQL immediate restart (3 s down) during a 300-job burst", [sub], restored, 60)
    assert_clean(fig, [sub])
    assert sub.http_codes[503] > 0, f"the outage was not seen by any client: {dict(sub.http_codes)}"


def test_simulator_child_killed_while_idle(fstack: FaultStack) -> None:
    parent = executor_pid(fstack)
    wait_for(lambda: len(child_pids(parent)) == 1, 30 * SLACK, "one simulator child")
    (old,) = child_pids(parent)
    kill_pid(old)
    killed = time.monotonic()
    sub = submit(fstack, "child-idle", range(60))
    fig = audit(fstack, "simulator child killed while idle (60 jobs)", [sub], killed, bound=60)
    assert_clean(fig, [sub])
    assert child_pids(parent) and old not in child_pids(parent)
    # The executor refreshes its simulator's readiness every 0.5 s: ready again within a few.
    wait_for(
        lambda: fstack.health(f"executor-{BACKEND}", "/readyz") == 200, 10 * SLACK, "executor ready again"
    )


def test_simulator_child_killed_while_busy_twice(fstack: FaultStack) -> None:
    """Killed during a long simulation, and its replacement killed again while it starts."""
    parent = executor_pid(fstack)
    long_job = start_long_job(fstack)
    thread, sub = in_background(fstack, "child-busy", 60)
    (busy,) = child_pids(parent)
    kill_pid(busy)
    wait_for(lambda: [p for p in child_pids(parent) if p != busy], 30 * SLACK, "a replacement child")
    for pid in child_pids(parent):
        if pid != busy:
            kill_pid(pid)  # the replacement, while it starts
    killed = time.monotonic()
    thread.join(timeout=120 * SLACK)
    assert not thread.is_alive(), "the clients did not finish submitting"
    fig = audit(fstack, "simulator child killed while busy, then again while restarting", [sub], killed, 90)
    assert_clean(fig, [sub])
    assert long_job_done(fstack, long_job) == "DONE"


@pytest.mark.parametrize("role", ["executor", "scheduler", "api"])
def test_process_sigkill_mid_load(fstack: FaultStack, role: str) -> None:
    label = f"kill-{role}"
    thread, sub = in_background(fstack, label, 200)
    wait_for(lambda: accepted_so_far(fstack, label) >= 60, 60 * SLACK, "60 jobs accepted")
    if role == "executor":
        fstack.kill(f"executor-{BACKEND}")
        fstack.start_executor(BACKEND)
    elif role == "scheduler":
        fstack.kill("scheduler")
        fstack.start_scheduler()
    else:
        fstack.kill("api")
        fstack.start_api()
    restored = time.monotonic()
    thread.join(timeout=120 * SLACK)
    assert not thread.is_alive(), "the clients did not finish submitting"
    fig = audit(fstack, f"{role} SIGKILL mid-load, restarted (200 jobs)", [sub], restored, bound=60)
    assert_clean(fig, [sub])
