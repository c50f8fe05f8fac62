"""Sessions and batches end to end, on real services with timers of seconds: the lifecycle and details(),
close and cancel, max_ttl and interactive_ttl, a dedicated session owning its backend, fair share,
grouped dispatches and the per-job max execution time."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.stack import BELL_QASM2, Stack, decode_result, layered_qasm, sampler_job, wait_for

INTERACTIVE_TTL = 3
PROTOCOL_FIELDS = {
    "id",
    "backend_name",
    "mode",
    "state",
    "accepting_jobs",
    "interactive_ttl",
    "max_ttl",
    "active_ttl",
    "last_job_started",
    "last_job_completed",
    "started_at",
    "closed_at",
    "activated_at",
    "elapsed_time",
    "timestamps",
}
# Half a second on an idle 2-core machine, several under load; more shots than a grouped job may have,
# so each runs alone.
SLOW = layered_qasm(20, 20)
SLOW_SHOTS = 20_000
GHZ_12 = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[12];\ncreg c[12];\nh q[0];\n'
    + "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(11))
    + "measure q -> c;\n"
)
GHZ_3 = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\ncreg c[3];\n'
    "h q[0];\ncx q[0],q[1];\ncx q[1],q[2];\nmeasure q -> c;\n"
)


OWNERS = ("alice", "bob", "carol", "user-a", "user-b", "holder", "lister")
_STACKS: list[Stack] = []


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """One stack for this module: an executor for aer_simulator only (fake_manila is served by the api
    but has no executor, which the backend-mismatch test needs no more than)."""
    own = Stack(
        backends=["aer_simulator", "fake_manila"],
        settings_env={
            "QRUNTIME_SESSION_INTERACTIVE_TTL": str(INTERACTIVE_TTL),
            "QRUNTIME_BATCH_INTERACTIVE_TTL": "1",
        },
    )
    try:
        own.migrate()
        # The tests' own client is an administrator (it sees and tidies every session); the named
        # owners are users in instances of their own, so fair share tells them apart.
        own.add_accounts(
            [("root", "lab-root", True, True, {})]
            + [(owner, f"lab-{owner}", False, True, {}) for owner in OWNERS]
        )
        _STACKS[:] = [own]
        own.start_scheduler()
        own.start_executor("aer_simulator")
        own.start_api()
        own.wait_for_executors(1)
        yield own
    finally:
        own.destroy()


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client("root") as http:
        yield http
        # A session left open would hold the backend for the next test: cancel it, drain the queue.
        for row in stack.sql("SELECT id FROM sessions WHERE state <> 'closed'"):
            http.delete(f"/api/v1/sessions/{row['id']}/close")
        wait_for(
            lambda: (
                stack.sql("SELECT count(*) AS n FROM jobs WHERE status IN ('QUEUED', 'RUNNING')")[0]["n"] == 0
            ),
            60,
            "the queue to drain",
        )


def create(client: httpx.Client, mode: str = "dedicated", owner: str | None = None, **body: Any) -> str:
    response = client.post(
        "/api/v1/sessions",
        json={"mode": mode, "backend": "aer_simulator", "instance": "crn:v1:local:a/x:y::", **body},
        headers=_owner(owner),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def submit(
    client: httpx.Client,
    session_id: str | None = None,
    owner: str | None = None,
    circuit: str = BELL_QASM2,
    shots: int = 1000,
    **extra: Any,
) -> str:
    if session_id is not None:
        extra["session_id"] = session_id
    response = client.post(
        "/api/v1/jobs", json=sampler_job("aer_simulator", circuit, shots, **extra), headers=_owner(owner)
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _owner(owner: str | None) -> dict[str, str]:
    """Act as this user (in its own instance) instead of the module's administrator."""
    if owner is None:
        return {}
    stack = _STACKS[0]
    return {
        "Authorization": f"Bearer {stack.token(owner)}",
        "Service-CRN": stack.accounts[owner].instance_crn,
    }


def details(client: httpx.Client, session_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/sessions/{session_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def job_view(client: httpx.Client, job_id: str) -> dict[str, Any]:
    return dict(client.get(f"/api/v1/jobs/{job_id}", params={"exclude_params": "true"}).json())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def entered(view: dict[str, Any], state: str) -> datetime:
    """When the session last entered `state`, from its history."""
    return at([t for t in view["timestamps"] if t["status"] == state][-1]["timestamp"])


def test_lifecycle_details_and_interactive_ttl(stack: Stack, client: httpx.Client) -> None:
    session_id = create(client, max_ttl="1h 30s")
    view = details(client, session_id)
    assert set(view) == PROTOCOL_FIELDS
    assert view["backend_name"] == "aer_simulator" and view["mode"] == "dedicated"
    assert (view["state"], view["accepting_jobs"]) == ("open", True)
    assert (view["max_ttl"], view["active_ttl"], view["interactive_ttl"]) == (3630, 3630, INTERACTIVE_TTL)
    assert view["started_at"] is view["activated_at"] is view["last_job_started"] is view["closed_at"] is None
    assert view["elapsed_time"] == 0 and [t["status"] for t in view["timestamps"]] == ["open"]

    # open -> active when the first job starts.
    first = submit(client, session_id)
    stack.wait_final([first])
    job = job_view(client, first)
    assert job["session_id"] == session_id and job["state"]["status"] == "Completed"
    view = details(client, session_id)
    assert (view["state"], view["accepting_jobs"]) == ("active", True)
    assert (
        at(view["started_at"])
        == at(view["activated_at"])
        == at(view["last_job_started"])
        == at(job["started"])
    )
    assert at(view["last_job_completed"]) == at(job["finished"])
    assert view["elapsed_time"] > 0
    assert [t["status"] for t in view["timestamps"]] == ["open", "active"]

    # interactive_ttl lapses with nothing ready: inactive, within a second of the deadline.
    wait_for(lambda: details(client, session_id)["state"] == "inactive", INTERACTIVE_TTL + 5, "inactive")
    view = details(client, session_id)
    lag = entered(view, "inactive") - (at(view["last_job_completed"]) + timedelta(seconds=INTERACTIVE_TTL))
    assert timedelta(0) <= lag < timedelta(seconds=1), lag
    usage_when_idle = view["elapsed_time"]
    assert usage_when_idle >= INTERACTIVE_TTL

    # A later job re-activates it through the normal queue; the max_ttl clock is not reset.
    second = submit(client, session_id)
    stack.wait_final([second])
    view = details(client, session_id)
    assert view["state"] == "active"
    assert at(view["activated_at"]) > entered(view, "inactive")
    assert at(view["started_at"]) == at(job["started"])
    assert [t["status"] for t in view["timestamps"]] == ["open", "active", "inactive", "active"]

    # close() with nothing pending closes at once; closing again and cancelling after are harmless.
    assert client.patch(f"/api/v1/sessions/{session_id}", json={"accepting_jobs": False}).status_code == 204
    view = details(client, session_id)
    assert (view["state"], view["accepting_jobs"]) == ("closed", False)
    assert view["closed_at"] is not None and view["elapsed_time"] >= usage_when_idle
    assert client.patch(f"/api/v1/sessions/{session_id}", json={"accepting_jobs": False}).status_code == 204
    assert client.delete(f"/api/v1/sessions/{session_id}/close").status_code == 204

    # A submission to a closed session gets 4001 and nothing is stored.
    before = stack.sql("SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM outbox) AS outbox")
    refused = client.post("/api/v1/jobs", json=sampler_job("aer_simulator", session_id=session_id))
    assert refused.status_code == 409 and refused.json()["errors"][0]["code"] == 4001
    after = stack.sql("SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM outbox) AS outbox")
    assert dict(after[0]) == dict(before[0])


def test_close_drains_queued_jobs_then_closes(stack: Stack, client: httpx.Client) -> None:
    session_id = create(client)
    jobs = [submit(client, session_id, circuit=SLOW, shots=SLOW_SHOTS) for _ in range(3)]
    assert client.patch(f"/api/v1/sessions/{session_id}", json={"accepting_jobs": False}).status_code == 204
    view = details(client, session_id)
    assert view["accepting_jobs"] is False and view["state"] != "closed"
    refused = client.post("/api/v1/jobs", json=sampler_job("aer_simulator", session_id=session_id))
    assert refused.status_code == 409 and refused.json()["errors"][0]["code"] == 4001

    assert set(stack.wait_final(jobs).values()) == {"DONE"}
    wait_for(lambda: details(client, session_id)["state"] == "closed", 3, "the drained session to close")
    view = details(client, session_id)
    assert at(view["closed_at"]) >= at(view["last_job_completed"])
    assert view["timestamps"][-1]["status"] == "closed"


def test_cancel_cancels_queued_jobs_and_lets_running_ones_finish(stack: Stack, client: httpx.Client) -> None:
    session_id = create(client)
    jobs = [submit(client, session_id, circuit=SLOW, shots=SLOW_SHOTS) for _ in range(4)]
    wait_for(lambda: job_view(client, jobs[0])["state"]["status"] == "Running", 30, "the first job to run")
    assert client.delete(f"/api/v1/sessions/{session_id}/close").status_code == 204
    at_cancel = {
        r["id"]: r["status"]
        for r in stack.sql("SELECT id, status FROM jobs WHERE session_id = $1", session_id)
    }
    assert details(client, session_id)["state"] == "closed"

    final = stack.wait_final(jobs)
    running = [j for j in jobs if at_cancel[j] == "RUNNING"]
    assert running and all(final[j] == "DONE" for j in running)
    cancelled = [j for j in jobs if at_cancel[j] == "CANCELLED"]
    assert len(cancelled) >= 2
    for job_id in cancelled:
        state = job_view(client, job_id)["state"]
        assert state["status"] == "Cancelled" and state["reason_code"] == 4001
        assert "cancelled" in state["reason"]


def test_max_ttl_closes_an_active_session_and_cancels_its_queued_jobs(
    stack: Stack, client: httpx.Client
) -> None:
    session_id = create(client, max_ttl=2)
    jobs = [submit(client, session_id, circuit=SLOW, shots=SLOW_SHOTS) for _ in range(8)]
    wait_for(lambda: details(client, session_id)["state"] == "closed", 20, "max_ttl to close the session")
    view = details(client, session_id)
    deadline = at(view["started_at"]) + timedelta(seconds=2)
    assert timedelta(0) <= at(view["closed_at"]) - deadline < timedelta(seconds=1)
    assert view["accepting_jobs"] is False

    final = stack.wait_final(jobs)
    done = [j for j in jobs if final[j] == "DONE"]
    cancelled = [j for j in jobs if final[j] == "CANCELLED"]
    assert done and cancelled and len(done) + len(cancelled) == len(jobs)
    for job_id in done:  # running jobs finish; none started after the close
        assert at(job_view(client, job_id)["started"]) <= at(view["closed_at"])
    state = job_view(client, cancelled[-1])["state"]
    assert state["reason_code"] == 4001 and "max_ttl of 2 s" in state["reason"]
    refused = client.post("/api/v1/jobs", json=sampler_job("aer_simulator", session_id=session_id))
    assert refused.status_code == 409 and refused.json()["errors"][0]["code"] == 4001


def _queued_undispatched(stack: Stack, job_id: str) -> bool:
    rows = stack.sql("SELECT status, dispatch_id FROM jobs WHERE id = $1", job_id)
    return rows[0]["status"] == "QUEUED" and rows[0]["dispatch_id"] is None


def test_a_dedicated_session_owns_its_backend_until_inactive_or_closed(
    stack: Stack, client: httpx.Client
) -> None:
    # Until it goes inactive.
    session_id = create(client, owner="alice")
    stack.wait_final([submit(client, session_id, owner="alice")])
    other = submit(client, owner="bob")
    stack.wait_outbox_sent()  # the scheduler has heard of it
    assert details(client, session_id)["state"] == "active"
    assert _queued_undispatched(stack, other)
    wait_for(lambda: details(client, session_id)["state"] == "inactive", INTERACTIVE_TTL + 5, "inactive")
    inactive_at = entered(details(client, session_id), "inactive")
    stack.wait_final([other])
    started = at(job_view(client, other)["started"])
    assert inactive_at <= started < inactive_at + timedelta(seconds=1)

    # Until it closes.
    session_id = create(client, owner="carol")
    stack.wait_final([submit(client, session_id, owner="carol")])
    other = submit(client, owner="bob")
    assert details(client, session_id)["state"] == "active"
    assert _queued_undispatched(stack, other)
    assert client.patch(f"/api/v1/sessions/{session_id}", json={"accepting_jobs": False}).status_code == 204
    closed_at = at(details(client, session_id)["closed_at"])
    stack.wait_final([other])
    started = at(job_view(client, other)["started"])
    assert closed_at <= started < closed_at + timedelta(seconds=1)


def test_a_light_user_does_not_wait_for_a_heavy_users_backlog(stack: Stack, client: httpx.Client) -> None:
    a_jobs = [submit(client, owner="user-a", circuit=GHZ_12, shots=SLOW_SHOTS) for _ in range(50)]
    b_jobs = [submit(client, owner="user-b", circuit=GHZ_12, shots=SLOW_SHOTS) for _ in range(5)]
    assert set(stack.wait_final(a_jobs + b_jobs, timeout=180).values()) == {"DONE"}
    started = {
        r["id"]: r["started_at"]
        for r in stack.sql("SELECT id, started_at FROM jobs WHERE id = ANY($1::text[])", a_jobs + b_jobs)
    }
    b_last = max(started[j] for j in b_jobs)
    a_after = sum(1 for j in a_jobs if started[j] > b_last)
    # In submission order all of A's jobs would start before B's first; fair share lets B in early.
    assert a_after >= 20, f"only {a_after} of A's 50 jobs started after B's last"


def hold_backend(stack: Stack, client: httpx.Client) -> str:
    """An active dedicated session of someone else: jobs queue behind it until it closes."""
    holder = create(client, owner="holder")
    stack.wait_final([submit(client, holder, owner="holder")])
    return holder


def test_a_batch_of_small_jobs_shares_dispatches_and_results_split_back(
    stack: Stack, client: httpx.Client
) -> None:
    # The holder runs a long job while the batch is submitted, so that its hold cannot lapse
    # (interactive_ttl) however slowly the submissions go; cancelling that job ends the hold.
    holder = create(client, owner="holder")
    holding = submit(client, holder, owner="holder", circuit=layered_qasm(20, 400), shots=100)
    wait_for(lambda: job_view(client, holding)["state"]["status"] == "Running", 60, "the holder's job to run")
    batch = create(client, mode="batch")
    jobs = []
    for i in range(12):
        body = sampler_job("aer_simulator", session_id=batch)
        body["params"]["pubs"] = [[BELL_QASM2, None, 100 + i], [GHZ_3, None, 200 + i]]
        response = client.post("/api/v1/jobs", json=body)
        assert response.status_code == 200, response.text
        jobs.append(response.json()["id"])
    assert all(_queued_undispatched(stack, j) for j in jobs)
    client.patch(f"/api/v1/sessions/{holder}", json={"accepting_jobs": False})
    assert client.post(f"/api/v1/jobs/{holding}/cancel").status_code == 204

    assert set(stack.wait_final(jobs).values()) == {"DONE"}
    for i, job_id in enumerate(jobs):
        result = decode_result(client.get(f"/api/v1/jobs/{job_id}/results").text)
        assert len(result) == 2
        bell, ghz = result[0].data.c.get_counts(), result[1].data.c.get_counts()
        assert sum(bell.values()) == 100 + i and set(bell) <= {"00", "11"}
        assert sum(ghz.values()) == 200 + i and set(ghz) <= {"000", "111"}
    dispatches = stack.sql(
        "SELECT count(DISTINCT dispatch_id) AS n, max(attempts) AS attempts FROM jobs "
        "WHERE id = ANY($1::text[])",
        jobs,
    )[0]
    assert dispatches["n"] == 2 and dispatches["attempts"] == 1  # two free slots: two groups of six
    view = details(client, batch)
    assert view["mode"] == "batch" and view["interactive_ttl"] == 1
    ran = stack.sql("SELECT sum(execution_seconds) AS s FROM jobs WHERE id = ANY($1::text[])", jobs)[0]["s"]
    assert view["elapsed_time"] == pytest.approx(ran, abs=0.01)


def test_cancelling_one_job_of_a_group_keeps_the_others(stack: Stack, client: httpx.Client) -> None:
    holder = hold_backend(stack, client)
    # Small by shots, so grouped, but each takes about a second.
    jobs = [submit(client, circuit=layered_qasm(20, 20), shots=2000) for _ in range(4)]
    client.patch(f"/api/v1/sessions/{holder}", json={"accepting_jobs": False})
    wait_for(lambda: job_view(client, jobs[1])["state"]["status"] == "Running", 30, "the group to run")
    rows = stack.sql("SELECT id, status, dispatch_id FROM jobs WHERE id = ANY($1::text[])", jobs[:2])
    assert len({r["dispatch_id"] for r in rows}) == 1 and {r["status"] for r in rows} == {"RUNNING"}
    assert client.post(f"/api/v1/jobs/{jobs[1]}/cancel").status_code == 204

    final = stack.wait_final(jobs)
    assert final == {jobs[0]: "DONE", jobs[1]: "CANCELLED", jobs[2]: "DONE", jobs[3]: "DONE"}
    results = {
        r["job_id"] for r in stack.sql("SELECT job_id FROM job_results WHERE job_id = ANY($1::text[])", jobs)
    }
    assert results == {jobs[0], jobs[2], jobs[3]}


def test_a_job_running_past_its_max_execution_time_is_cancelled_with_1305(
    stack: Stack, client: httpx.Client
) -> None:
    job_id = submit(client, circuit=layered_qasm(22, 80), shots=2000, cost=1)  # several seconds
    assert stack.wait_final([job_id]) == {job_id: "CANCELLED"}
    job = job_view(client, job_id)
    assert job["state"]["reason_code"] == 1305
    assert "max execution time of 1 s" in job["state"]["reason"]
    assert at(job["finished"]) - at(job["started"]) < timedelta(seconds=2)
    results = client.get(f"/api/v1/jobs/{job_id}/results")
    assert results.status_code == 200 and "1305" in results.text
