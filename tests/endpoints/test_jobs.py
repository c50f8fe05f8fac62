"""/api/v1/jobs in-process: submission, reading, cancelling, tags, results, and every refusal."""

import base64
import json
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.api.app import build_context
from shared.db.models import Job, JobResult, OutboxMessage
from shared.jobs.placement import INLINE_INPUTS_BYTES
from shared.jobs.states import JobStatus
from shared.sessions.states import SessionState
from tests.endpoints.conftest import MAX_REQUEST_BYTES, written
from tests.endpoints.conftest import refusal as refused
from tests.inprocess import add_instance, add_job, add_session, ago
from tests.stack import BELL_QASM2, layered_qasm, sampler_job

SIX_QUBITS = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[6];\ncreg c[6];\nh q[0];\nmeasure q -> c;\n'
UNKNOWN_ID = "0123456789abcdef0123"


def bomb() -> dict[str, str]:
    # 300 MB of zeros compress to ~300 KB: a valid-looking QPY payload that must not be inflated.
    compressor = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    data = b"".join(compressor.compress(chunk) for _ in range(300)) + compressor.flush()
    return {"__type__": "QuantumCircuit", "__value__": base64.standard_b64encode(data).decode()}


CASES = {
    "malformed qasm2": (
        sampler_job("aer_simulator", "OPENQASM 2.0;\nqreg q[2];\nfoo q[0];\n"),
        400,
        1201,
        "OpenQASM 2",
    ),
    "malformed qasm3": (
        sampler_job("aer_simulator", "OPENQASM 3.0;\nqubit[2] q;\nh q[5;\n"),
        400,
        1201,
        "OpenQASM 3",
    ),
    "not a circuit": (sampler_job("aer_simulator", "hello"), 400, 1201, "OPENQASM"),
    "circuit of wrong type": (sampler_job("aer_simulator", 42), 400, 1201, "circuit"),
    "bad qpy": (
        sampler_job("aer_simulator", {"__type__": "QuantumCircuit", "__value__": "bm90IHFweQ=="}),
        400,
        1201,
        "QuantumCircuit",
    ),
    "unknown backend": (sampler_job("ibm_nowhere"), 400, 1007, "ibm_nowhere"),
    "too many qubits": (sampler_job("fake_manila", SIX_QUBITS), 400, 1002, "6 qubits"),
    "too many circuits": (
        {**sampler_job("aer_simulator"), "params": {"pubs": [[BELL_QASM2]] * 6, "version": 2}},
        400,
        1203,
        "5",
    ),
    "zero shots": (sampler_job("aer_simulator", BELL_QASM2, 0), 400, 6001, "between 1 and"),
    "negative shots": (sampler_job("aer_simulator", BELL_QASM2, -5), 400, 6001, "between 1 and"),
    "too many shots": (sampler_job("aer_simulator", BELL_QASM2, 100001), 400, 6001, "100000"),
    "fractional shots": (sampler_job("aer_simulator", BELL_QASM2, 1.5), 400, 6001, "whole number"),
    "unknown program": (
        {**sampler_job("aer_simulator"), "program_id": "teleporter"},
        404,
        1008,
        "teleporter",
    ),
    "missing program": ({"backend": "aer_simulator", "params": {}}, 400, 1200, "program_id"),
    "no pubs": (
        {"program_id": "sampler", "backend": "aer_simulator", "params": {"pubs": []}},
        400,
        1200,
        "pubs",
    ),
    "params not an object": (
        {"program_id": "sampler", "backend": "aer_simulator", "params": [1]},
        400,
        1200,
        "params",
    ),
    "body not an object": ([1, 2], 400, 1200, "JSON object"),
    "priority out of range": ({**sampler_job("aer_simulator"), "priority": 99}, 400, 1200, "priority"),
    "cost too large": ({**sampler_job("aer_simulator"), "cost": 2**40}, 400, 1200, "cost"),
    "decompression bomb": (sampler_job("aer_simulator", bomb()), 413, 1202, "inflate"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_submission_refused_with_a_clear_error_and_nothing_written(client, people, db, case):
    body, status, code, words = CASES[case]
    before = await written(db)
    response = await client.post("/api/v1/jobs", json=body, headers=people.alice.headers)
    refused(response, status, code, words)
    assert "Traceback" not in response.text
    assert await written(db) == before


async def new_work(db, before: int) -> list[tuple[str, str, dict]]:
    """(exchange, routing key, body) of the work rows (not events) written after outbox row `before`."""
    rows = await db.execute(
        select(OutboxMessage.exchange, OutboxMessage.routing_key, OutboxMessage.body)
        .where(OutboxMessage.id > before, OutboxMessage.exchange.in_(["commands", "dispatch"]))
        .order_by(OutboxMessage.id)
    )
    return [tuple(row) for row in rows]


async def last_outbox_id(db) -> int:
    return int(await db.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0))))


async def test_submission_to_an_idle_backend_is_dispatched_in_its_own_transaction(client, people, db):
    before, start = await written(db), await last_outbox_id(db)
    response = await client.post(
        "/api/v1/jobs", json=sampler_job("aer_simulator"), headers=people.alice.headers
    )
    assert response.status_code == 200, response.text
    job_id = response.json()["id"]
    assert response.json()["backend"] == "aer_simulator"
    jobs, outbox = await written(db)
    # The job, and in the outbox: its event (one row, which the relay publishes to the public and the
    # tenant exchange) and its dispatch, with no command for the scheduler (nothing waits on this
    # backend: the api placed the job alone).
    assert jobs == before[0] + 1 and outbox == before[1] + 2
    [(exchange, key, body)] = await new_work(db, start)
    assert (exchange, key, body["type"], body["job_id"]) == ("dispatch", "aer_simulator", "dispatch", job_id)
    job = await db.get(Job, job_id, populate_existing=True)
    assert str(job.dispatch_id) == body["dispatch_id"] and job.status is JobStatus.QUEUED
    # Its inputs travel with it, exactly as stored: the executor need not read them back.
    assert body["inputs"] == {"program_id": "sampler", "params": job.params, "max_execution_time": None}
    view = await client.get(f"/api/v1/jobs/{job_id}", headers=people.alice.headers)
    assert view.json()["status"] == "Queued" and view.json()["params"]["pubs"]


async def test_a_placed_job_with_large_inputs_is_dispatched_without_them(client, people, db):
    start = await last_outbox_id(db)
    big = sampler_job("aer_simulator", circuit=layered_qasm(20, 200), cost=60)
    response = await client.post("/api/v1/jobs", json=big, headers=people.alice.headers)
    assert response.status_code == 200, response.text
    [(_exchange, _key, body)] = await new_work(db, start)
    job = await db.get(Job, response.json()["id"], populate_existing=True)
    assert len(job.params) > INLINE_INPUTS_BYTES  # so the executor reads them from the row
    assert body["type"] == "dispatch" and body["job_id"] == job.id and body["inputs"] is None


async def test_a_session_job_on_an_idle_backend_is_dispatched_for_its_claim(client, people, db):
    """Decision 44: a session job the policy could only start next is dispatched by the api too,
    marked as a session's, so the executor claims it (moving the session's clock) before the run."""
    session = await add_session(db, user_id=people.alice.user.id)
    start = await last_outbox_id(db)
    response = await client.post(
        "/api/v1/jobs", json=sampler_job("aer_simulator", session_id=session.id), headers=people.alice.headers
    )
    assert response.status_code == 200, response.text
    [(exchange, key, body)] = await new_work(db, start)
    assert (exchange, key, body["type"], body["job_id"]) == (
        "dispatch",
        "aer_simulator",
        "dispatch",
        response.json()["id"],
    )
    assert body["any_in_session"] is True and body["inputs"] is None  # the claim reads the inputs
    job = await db.get(Job, response.json()["id"], populate_existing=True)
    assert str(job.dispatch_id) == body["dispatch_id"] and job.session_id == session.id


async def test_submission_behind_a_waiting_job_is_left_to_the_scheduler(client, people, db):
    waiting = await add_job(db, backend="aer_simulator", created_at=ago(5))
    start = await last_outbox_id(db)
    response = await client.post(
        "/api/v1/jobs", json=sampler_job("aer_simulator"), headers=people.alice.headers
    )
    assert response.status_code == 200, response.text
    [(exchange, key, body)] = await new_work(db, start)
    assert (exchange, key, body["type"]) == ("commands", "scheduler", "job.submitted")
    assert body["job_id"] == response.json()["id"]
    job = await db.get(Job, response.json()["id"], populate_existing=True)
    assert job.dispatch_id is None and waiting.dispatch_id is None


async def test_submission_with_direct_dispatch_off_is_left_to_the_scheduler(
    app, client, people, db, api_settings, db_engine, db_factory, parse_pool
):
    settings = api_settings.model_copy(update={"direct_dispatch": False})  # QRUNTIME_DIRECT_DISPATCH=false
    app.state.context = build_context(settings, db_engine, db_factory, parse_pool)
    start = await last_outbox_id(db)
    response = await client.post(
        "/api/v1/jobs", json=sampler_job("aer_simulator"), headers=people.alice.headers
    )
    assert response.status_code == 200, response.text
    [(exchange, _key, body)] = await new_work(db, start)
    assert (exchange, body["type"], body["job_id"]) == ("commands", "job.submitted", response.json()["id"])


async def test_invalid_json(client, people, db):
    before = await written(db)
    response = await client.post(
        "/api/v1/jobs",
        content=b"{not json",
        headers={**people.alice.headers, "content-type": "application/json"},
    )
    refused(response, 400, 1200, "not valid JSON")
    assert await written(db) == before


async def test_body_over_the_size_limit_declared_or_streamed(client, people):
    body = json.dumps(
        sampler_job("aer_simulator", BELL_QASM2 + "// " + "x" * (2 * MAX_REQUEST_BYTES))
    ).encode()
    headers = {**people.alice.headers, "content-type": "application/json"}
    declared = await client.post("/api/v1/jobs", content=body, headers=headers)

    async def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    streamed = await client.post("/api/v1/jobs", content=chunks(), headers=headers)
    for response in (declared, streamed):
        refused(response, 413, 1202, f"{MAX_REQUEST_BYTES} bytes")


async def test_authentication_refusals(client, people):
    job = sampler_job("aer_simulator")
    refused(await client.post("/api/v1/jobs", json=job), 401, 3200, "Authorization")
    refused(await client.post("/api/v1/jobs", json=job, headers={"Authorization": "Basic abc"}), 401, 3200)
    refused(
        await client.post("/api/v1/jobs", json=job, headers={"Authorization": "apikey qrt_x_y"}), 401, 3201
    )
    refused(
        await client.post("/api/v1/jobs", json=job, headers={"Authorization": "Bearer not.a.jwt"}), 401, 3200
    )
    # Another tenant's instance: 403.
    foreign = {**people.alice.headers, "Service-CRN": people.bob.instance.crn}
    refused(await client.post("/api/v1/jobs", json=job, headers=foreign), 403, 3207, "not a member")
    unknown = {**people.alice.headers, "Service-CRN": "crn:v1:none"}
    refused(await client.get("/api/v1/jobs", headers=unknown), 403, 3207)


async def test_a_user_of_no_instance_must_name_one(client, people):
    refused(
        await client.post("/api/v1/jobs", json=sampler_job("aer_simulator"), headers=people.loner.headers),
        400,
        1200,
        "Service-CRN",
    )


async def test_concurrent_job_limit_is_429(client, people, db):
    instance = await add_instance(db, members=(people.loner.user,), max_concurrent_jobs=1)
    await db.commit()
    headers = {**people.loner.headers, "Service-CRN": instance.crn}
    first = await client.post("/api/v1/jobs", json=sampler_job("aer_simulator"), headers=headers)
    assert first.status_code == 200, first.text
    refused(
        await client.post("/api/v1/jobs", json=sampler_job("aer_simulator"), headers=headers),
        429,
        1012,
        "limit",
    )
    refused(await client.post(f"/api/v1/jobs/{first.json()['id']}/rerun", headers=headers), 429, 1012)


async def test_submission_into_sessions(client, people, db):
    mine = await add_session(db, user_id=people.alice.user.id)
    closed = await add_session(
        db, user_id=people.alice.user.id, state=SessionState.CLOSED, accepting_jobs=False
    )
    draining = await add_session(db, user_id=people.alice.user.id, accepting_jobs=False)
    theirs = await add_session(db, user_id=people.bob.user.id)
    await db.commit()
    headers = people.alice.headers

    def into(session_id: str, backend: str = "aer_simulator") -> dict:
        return sampler_job(backend, session_id=session_id)

    ok = await client.post("/api/v1/jobs", json=into(mine.id), headers=headers)
    assert ok.status_code == 200, ok.text
    refused(await client.post("/api/v1/jobs", json=into(closed.id), headers=headers), 409, 4001, "closed")
    refused(
        await client.post("/api/v1/jobs", json=into(draining.id), headers=headers),
        409,
        4001,
        "accepts no new",
    )
    refused(await client.post("/api/v1/jobs", json=into(theirs.id), headers=headers), 400, 4002)
    refused(await client.post("/api/v1/jobs", json=into(UNKNOWN_ID), headers=headers), 400, 4002)
    refused(await client.post("/api/v1/jobs", json=into("bad id!"), headers=headers), 400, 4002)
    refused(await client.post("/api/v1/jobs", json=into(""), headers=headers), 400, 4002)
    refused(await client.post("/api/v1/jobs", json=into(mine.id, "fake_manila"), headers=headers), 400, 4003)


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "x" * 500, "%27%3B--", "a%00b"])
async def test_unknown_job_ids_are_404_on_every_job_route(client, people, job_id):
    h = people.alice.headers
    # A control character is refused at the input boundary, whatever the route.
    expected = (400, 1200) if "%00" in job_id else (404, 3250)
    for response in (
        await client.get(f"/api/v1/jobs/{job_id}", headers=h),
        await client.get(f"/api/v1/jobs/{job_id}/results", headers=h),
        await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=h),
        await client.put(f"/api/v1/jobs/{job_id}/tags", json={"tags": []}, headers=h),
        await client.delete(f"/api/v1/jobs/{job_id}", headers=h),
        await client.get(f"/api/v1/jobs/{job_id}/metrics", headers=h),
        await client.get(f"/api/v1/jobs/{job_id}/logs", headers=h),
        await client.post(f"/api/v1/jobs/{job_id}/rerun", headers=h),
        await client.get(f"/api/v1/jobs/{job_id}/events", headers=h),
    ):
        refused(response, *expected)


async def test_another_users_job_is_404_and_the_admin_sees_it(client, people, db):
    job = await add_job(db, user_id=people.bob.user.id, instance_id=people.bob.instance.id)
    await db.commit()
    refused(await client.get(f"/api/v1/jobs/{job.id}", headers=people.alice.headers), 404, 3250)
    refused(await client.post(f"/api/v1/jobs/{job.id}/cancel", headers=people.alice.headers), 404, 3250)
    assert (await client.get(f"/api/v1/jobs/{job.id}", headers=people.admin.headers)).status_code == 200
    listed = await client.get("/api/v1/jobs", headers=people.alice.headers)
    assert job.id not in [j["id"] for j in listed.json()["jobs"]]


async def test_list_jobs_filters_and_refusals(client, people, db):
    me = people.alice.user.id
    done = await add_job(db, user_id=me, status=JobStatus.DONE, tags=["t1"], created_at=ago(20))
    queued = await add_job(db, user_id=me, backend="fake_manila", created_at=ago(10))
    await db.commit()
    h = people.alice.headers
    everything = (await client.get("/api/v1/jobs", headers=h)).json()
    assert [j["id"] for j in everything["jobs"]] == [queued.id, done.id] and everything["count"] == 2
    assert [
        j["id"] for j in (await client.get("/api/v1/jobs?state=Completed", headers=h)).json()["jobs"]
    ] == [done.id]
    assert [j["id"] for j in (await client.get("/api/v1/jobs?pending=true", headers=h)).json()["jobs"]] == [
        queued.id
    ]
    assert [j["id"] for j in (await client.get("/api/v1/jobs?tags=t1", headers=h)).json()["jobs"]] == [
        done.id
    ]
    assert [
        j["id"] for j in (await client.get("/api/v1/jobs?sort=ASC&limit=1", headers=h)).json()["jobs"]
    ] == [done.id]
    assert (await client.get("/api/v1/jobs?device=fake_manila&exclude_params=true", headers=h)).json()[
        "jobs"
    ][0]["params"] is None
    refused(await client.get("/api/v1/jobs?state=Sleeping", headers=h), 400, 1200, "Unknown state")
    refused(await client.get("/api/v1/jobs?limit=0", headers=h), 400, 1200, "limit")
    refused(await client.get("/api/v1/jobs?sort=sideways", headers=h), 400, 1200, "sort")
    refused(await client.get("/api/v1/jobs?created_after=yesterday", headers=h), 400, 1200, "created_after")


async def test_cancel_and_delete(client, people, db):
    me = people.alice.user.id
    queued = await add_job(db, user_id=me)
    done = await add_job(db, user_id=me, status=JobStatus.DONE)
    await db.commit()
    h = people.alice.headers
    refused(await client.delete(f"/api/v1/jobs/{queued.id}", headers=h), 409, 3213, "cancel it before")
    refused(await client.post(f"/api/v1/jobs/{done.id}/cancel", headers=h), 409, 3214, "Completed")
    assert (await client.post(f"/api/v1/jobs/{queued.id}/cancel", headers=h)).status_code == 204
    view = (await client.get(f"/api/v1/jobs/{queued.id}", headers=h)).json()
    assert view["status"] == "Cancelled" and view["state"]["reason"] == "Cancelled by the user."
    refused(await client.post(f"/api/v1/jobs/{queued.id}/cancel", headers=h), 409, 3214, "Cancelled")
    assert (await client.delete(f"/api/v1/jobs/{queued.id}", headers=h)).status_code == 204
    refused(await client.get(f"/api/v1/jobs/{queued.id}", headers=h), 404, 3250)


async def test_results_tags_metrics_logs_and_rerun(client, people, db):

    me, inst = people.alice.user.id, people.alice.instance.id
    queued = await add_job(db, user_id=me, instance_id=inst)
    done = await add_job(
        db,
        user_id=me,
        instance_id=inst,
        status=JobStatus.DONE,
        started_at=ago(5),
        finished_at=ago(1),
        execution_seconds=3.5,
    )
    failed = await add_job(db, user_id=me, status=JobStatus.ERROR, reason="boom", reason_code=5203)
    db.add(JobResult(job_id=done.id, body='{"answer": 42}'))
    await db.commit()
    h = people.alice.headers
    refused(await client.get(f"/api/v1/jobs/{queued.id}/results", headers=h), 409, 3213, "Queued")
    result = await client.get(f"/api/v1/jobs/{done.id}/results", headers=h)
    assert result.status_code == 200 and result.json() == {"answer": 42}
    error = await client.get(f"/api/v1/jobs/{failed.id}/results", headers=h)
    assert error.status_code == 200 and error.text == "Error code 5203; boom"
    assert (
        await client.put(f"/api/v1/jobs/{done.id}/tags", json={"tags": ["a", "b"]}, headers=h)
    ).status_code == 204
    assert (await client.get(f"/api/v1/jobs/{done.id}", headers=h)).json()["tags"] == ["a", "b"]
    refused(
        await client.put(f"/api/v1/jobs/{done.id}/tags", json={"tags": "a"}, headers=h), 400, 1200, "tags"
    )
    metrics = (await client.get(f"/api/v1/jobs/{done.id}/metrics", headers=h)).json()
    assert {k: metrics["usage"][k] for k in ("quantum_seconds", "seconds", "status")} == {
        "quantum_seconds": 3.5,
        "seconds": 3.5,
        "status": "done",
    }
    logs = await client.get(f"/api/v1/jobs/{failed.id}/logs", headers=h)
    assert logs.status_code == 200 and "reason: Error code 5203; boom" in logs.text
    rerun = await client.post(f"/api/v1/jobs/{done.id}/rerun", headers=h)
    assert rerun.status_code == 201 and rerun.json()["id"] != done.id


async def test_job_events_stream_and_refusals(client, people, db):
    h = people.alice.headers
    submitted = await client.post("/api/v1/jobs", json=sampler_job("aer_simulator"), headers=h)
    job_id = submitted.json()["id"]
    refused(await client.get(f"/api/v1/jobs/{job_id}/events", headers={**h, "Last-Event-ID": "x"}), 400, 1200)
    assert (await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=h)).status_code == 204
    # The job is final, so its stream replays its events and ends.
    stream = await client.get(f"/api/v1/jobs/{job_id}/events", headers=h)
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    states = [json.loads(line[6:])["state"] for line in stream.text.splitlines() if line.startswith("data: ")]
    assert states == ["queued", "cancelled"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    program=st.sampled_from(["sampler", "estimator", ""]) | st.text(max_size=8),
    backend=st.sampled_from(["aer_simulator", "fake_manila"]) | st.text(max_size=8),
    params=json_values,
    extra=st.dictionaries(
        st.sampled_from(["session_id", "tags", "cost", "priority", "log_level"]), json_values
    ),
)
async def test_no_input_produces_a_server_error(client, people, program, backend, params, extra):
    response = await client.post(
        "/api/v1/jobs",
        json={"program_id": program, "backend": backend, "params": params, **extra},
        headers=people.alice.headers,
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["errors"][0]["code"] > 0
