"""/api/v1/sessions in-process: create, read, list, close, cancel, their events, and every refusal."""

import json

import pytest

from shared.jobs.states import JobStatus
from tests.endpoints.conftest import refusal as refused
from tests.endpoints.conftest import written
from tests.inprocess import add_job, add_session
from tests.stack import sampler_job

UNKNOWN_ID = "0123456789abcdef0123"


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"mode": "exclusive", "backend": "aer_simulator"}, 1200, "mode"),
        ({"backend": "aer_simulator"}, 1200, "mode"),
        ({"mode": "batch", "backend": ""}, 1200, "backend"),
        ({"mode": "batch", "backend": "ibm_nowhere"}, 1007, "ibm_nowhere"),
        ({"mode": "batch", "backend": "aer_simulator", "max_ttl": 0}, 1200, "between 1 s"),
        ({"mode": "batch", "backend": "aer_simulator", "max_ttl": 28801}, 1200, "system maximum of 28800"),
        ({"mode": "batch", "backend": "aer_simulator", "max_ttl": "9h"}, 1200, "system maximum"),
        ({"mode": "batch", "backend": "aer_simulator", "max_ttl": "soon"}, 1200, "2h 30m 40s"),
        ({"mode": "batch", "backend": "aer_simulator", "max_ttl": 1.5}, 1200, "max_ttl"),
        ({"mode": "batch", "backend": "aer_simulator", "max_ttl": True}, 1200, "max_ttl"),
    ],
)
async def test_bad_session_requests_are_refused(client, people, db, body, code, words):
    before = await written(db)
    refused(await client.post("/api/v1/sessions", json=body, headers=people.alice.headers), 400, code, words)
    assert await written(db) == before


async def test_create_read_and_list(client, people):
    h = people.alice.headers
    created = await client.post(
        "/api/v1/sessions",
        json={"mode": "dedicated", "backend": "fake_manila", "max_ttl": "2h 30m 40s"},
        headers=h,
    )
    assert created.status_code == 200, created.text
    view = created.json()
    assert view["max_ttl"] == 9040 and view["state"] == "open" and view["accepting_jobs"] is True
    batch = (
        await client.post("/api/v1/sessions", json={"mode": "batch", "backend": "aer_simulator"}, headers=h)
    ).json()
    assert (await client.get(f"/api/v1/sessions/{view['id']}", headers=h)).json()[
        "backend_name"
    ] == "fake_manila"
    listed = (await client.get("/api/v1/sessions?mode=batch", headers=h)).json()
    assert [s["id"] for s in listed["sessions"]] == [batch["id"]] and listed["count"] == 1
    assert (await client.get("/api/v1/sessions?limit=1", headers=h)).json()["count"] == 2
    refused(await client.get("/api/v1/sessions?state=sleeping", headers=h), 400, 1200, "state")
    refused(await client.get("/api/v1/sessions?limit=0", headers=h), 400, 1200, "limit")
    # Bob sees none of Alice's sessions.
    assert (await client.get("/api/v1/sessions", headers=people.bob.headers)).json()["count"] == 0
    refused(await client.get(f"/api/v1/sessions/{view['id']}", headers=people.bob.headers), 404, 4002)


@pytest.mark.parametrize("session_id", [UNKNOWN_ID, "x" * 300, "a%00b"])
async def test_unknown_sessions_are_404_on_every_session_route(client, people, session_id):
    h = people.alice.headers
    # A control character is refused at the input boundary, whatever the route.
    expected = (400, 1200) if "%00" in session_id else (404, 4002)
    for response in (
        await client.get(f"/api/v1/sessions/{session_id}", headers=h),
        await client.patch(f"/api/v1/sessions/{session_id}", json={"accepting_jobs": False}, headers=h),
        await client.delete(f"/api/v1/sessions/{session_id}/close", headers=h),
        await client.get(f"/api/v1/sessions/{session_id}/events", headers=h),
    ):
        refused(response, *expected)


async def test_close_drains_and_cannot_reopen(client, people, db):
    h = people.alice.headers
    runtime_session = await add_session(db, user_id=people.alice.user.id)
    queued = await add_job(db, user_id=people.alice.user.id, session_id=runtime_session.id)
    await db.commit()
    url = f"/api/v1/sessions/{runtime_session.id}"
    refused(await client.patch(url, json={"accepting_jobs": "no"}, headers=h), 400, 1200, "accepting_jobs")
    assert (await client.patch(url, json={"accepting_jobs": True}, headers=h)).status_code == 204
    assert (await client.patch(url, json={"accepting_jobs": False}, headers=h)).status_code == 204
    view = (await client.get(url, headers=h)).json()
    assert view["accepting_jobs"] is False and view["state"] == "open"  # its queued job keeps it open
    refused(
        await client.patch(url, json={"accepting_jobs": True}, headers=h),
        409,
        4001,
        "cannot accept them again",
    )
    assert (
        await client.patch(url, json={"accepting_jobs": False}, headers=h)
    ).status_code == 204  # twice is fine
    job = (await client.get(f"/api/v1/jobs/{queued.id}", headers=h)).json()
    assert job["status"] == "Queued"


async def test_cancel_closes_now_and_cancels_queued_jobs(client, people, db):
    h = people.alice.headers
    runtime_session = await add_session(db, user_id=people.alice.user.id)
    queued = await add_job(db, user_id=people.alice.user.id, session_id=runtime_session.id)
    running = await add_job(
        db, user_id=people.alice.user.id, session_id=runtime_session.id, status=JobStatus.RUNNING
    )
    await db.commit()
    assert (await client.delete(f"/api/v1/sessions/{runtime_session.id}/close", headers=h)).status_code == 204
    # Cancelling twice is fine (the client may).
    assert (await client.delete(f"/api/v1/sessions/{runtime_session.id}/close", headers=h)).status_code == 204
    view = (await client.get(f"/api/v1/sessions/{runtime_session.id}", headers=h)).json()
    assert view["state"] == "closed" and [t["status"] for t in view["timestamps"]][-1] == "closed"
    assert (await client.get(f"/api/v1/jobs/{queued.id}", headers=h)).json()["status"] == "Cancelled"
    assert (await client.get(f"/api/v1/jobs/{running.id}", headers=h)).json()["status"] == "Running"
    refused(
        await client.post(
            "/api/v1/jobs", json=sampler_job("aer_simulator", session_id=runtime_session.id), headers=h
        ),
        409,
        4001,
    )


async def test_session_events_stream_and_refusals(client, people):
    h = people.alice.headers
    created = (
        await client.post("/api/v1/sessions", json={"mode": "batch", "backend": "aer_simulator"}, headers=h)
    ).json()
    url = f"/api/v1/sessions/{created['id']}/events"
    refused(await client.get(url, headers={**h, "Last-Event-ID": "-1"}), 400, 1200, "Last-Event-ID")
    refused(await client.get(url, headers=people.bob.headers), 404, 4002)
    assert (await client.delete(f"/api/v1/sessions/{created['id']}/close", headers=h)).status_code == 204
    stream = await client.get(url, headers=h)
    assert stream.status_code == 200
    states = [json.loads(line[6:])["state"] for line in stream.text.splitlines() if line.startswith("data: ")]
    assert states == ["open", "closed"]
