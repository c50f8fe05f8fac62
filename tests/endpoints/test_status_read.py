"""The status poll and the result read answered before routing (services/api/jobs/status_read.py):
the same answer as the route's, and only for the plain case; everything else reaches the route."""

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from services.api.app import build_context
from services.api.jobs.status_read import JobStatusRead
from shared.db.models import JobResult
from shared.jobs.states import JobStatus
from tests.inprocess import add_job

PREFIXES = ("/api/v1", "/experimental/api/v1")


@pytest.fixture
def remembering(app, api_settings, db_engine, db_factory, parse_pool):
    """The app, with authentications remembered (the in-process suite's default is not to), and a
    failure remembered, for longer than any test takes however slow the machine."""
    settings = api_settings.model_copy(update={"auth_cache_seconds": 60, "auth_failure_window_seconds": 3600})
    app.state.context = build_context(settings, db_engine, db_factory, parse_pool)
    return app


@pytest.fixture
async def shortcut_alone(remembering):
    """The middleware over an app that answers 418: a 200 came from the middleware, a 418 went on."""

    async def teapot(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = JobStatusRead(teapot, PREFIXES)

    async def with_app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = remembering  # as Starlette sets it for the middlewares it runs
        await middleware(scope, receive, send)

    transport = httpx.ASGITransport(app=with_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://qruntime.test") as http:
        yield http


async def test_a_remembered_callers_poll_gets_the_routes_answer_without_the_route(
    remembering, shortcut_alone, people, db
):
    job = await add_job(db, user_id=people.alice.user.id, status=JobStatus.RUNNING)
    transport = httpx.ASGITransport(app=remembering)
    async with httpx.AsyncClient(transport=transport, base_url="http://qruntime.test") as client:
        path = f"/api/v1/jobs/{job.id}"
        assert (
            await shortcut_alone.get(path, headers=people.alice.headers)
        ).status_code == 418  # not yet known
        for query in ({}, {"exclude_params": "true"}, {"exclude_params": "false"}):
            routed = await client.get(path, params={**query, "wait": "0"}, headers=people.alice.headers)
            assert routed.status_code == 200, routed.text
            for prefix in PREFIXES:
                url = f"{prefix}/jobs/{job.id}"
                alone = await shortcut_alone.get(url, params=query, headers=people.alice.headers)
                assert alone.status_code == 200
                assert alone.content == routed.content
                assert alone.headers["content-type"] == routed.headers["content-type"]
                whole = await client.get(url, params=query, headers=people.alice.headers)
                assert whole.status_code == 200 and whole.content == routed.content
        excluded = await shortcut_alone.get(
            path, params={"exclude_params": "true"}, headers=people.alice.headers
        )
        included = await shortcut_alone.get(path, headers=people.alice.headers)
        assert excluded.json()["params"] is None and included.json()["params"] == {"pubs": [], "version": 2}
        assert excluded.json()["id"] == job.id and excluded.json()["status"] == "Running"


async def test_every_other_request_goes_on_to_the_route(remembering, shortcut_alone, people, db):
    mine = await add_job(db, user_id=people.alice.user.id)
    theirs = await add_job(db, user_id=people.bob.user.id)
    transport = httpx.ASGITransport(app=remembering)
    async with httpx.AsyncClient(transport=transport, base_url="http://qruntime.test") as client:
        for caller in (people.alice, people.bob):  # remembered from now on
            assert (await client.get("/api/v1/jobs", headers=caller.headers)).status_code == 200
        alice = people.alice.headers
        assert (await shortcut_alone.get(f"/api/v1/jobs/{mine.id}", headers=alice)).status_code == 200
        went_on = [
            shortcut_alone.get(f"/api/v1/jobs/{theirs.id}", headers=alice),  # another's: the route's 404
            shortcut_alone.get("/api/v1/jobs/0123456789abcdef0123", headers=alice),  # missing
            shortcut_alone.get("/api/v1/jobs/..%2F..%2Fetc", headers=alice),
            shortcut_alone.get(f"/api/v1/jobs/{mine.id}/results", headers=alice),
            shortcut_alone.get(f"/api/v1/jobs/{mine.id}", params={"wait": "1"}, headers=alice),
            shortcut_alone.get(f"/api/v1/jobs/{mine.id}", params={"exclude_params": "1"}, headers=alice),
            shortcut_alone.get(
                f"/api/v1/jobs/{mine.id}?exclude_params=true&exclude_params=true", headers=alice
            ),
            shortcut_alone.get(f"/api/v1/jobs/{mine.id}", headers={**alice, "Authorization": "apikey nope"}),
            shortcut_alone.get(f"/api/v1/jobs/{mine.id}"),
            shortcut_alone.delete(f"/api/v1/jobs/{mine.id}", headers=alice),
            shortcut_alone.get(f"/v1/jobs/{mine.id}", headers=alice),
        ]
        for request in went_on:
            assert (await request).status_code == 418
        # The route itself answers what the shortcut left alone, as it always did.
        assert (await client.get(f"/api/v1/jobs/{theirs.id}", headers=alice)).status_code == 404


async def test_a_recent_authentication_failure_sends_every_poll_to_the_route(
    remembering, shortcut_alone, people, db
):
    job = await add_job(db, user_id=people.alice.user.id)
    transport = httpx.ASGITransport(app=remembering)
    async with httpx.AsyncClient(transport=transport, base_url="http://qruntime.test") as client:
        assert (await client.get("/api/v1/jobs", headers=people.alice.headers)).status_code == 200
        assert (
            await shortcut_alone.get(f"/api/v1/jobs/{job.id}", headers=people.alice.headers)
        ).status_code == 200
        refused = await client.get("/api/v1/jobs", headers={"Authorization": "apikey qrt_x_wrong"})
        assert refused.status_code == 401
        # The throttle now watches: whether this address may go on is the route's to decide.
        assert (
            await shortcut_alone.get(f"/api/v1/jobs/{job.id}", headers=people.alice.headers)
        ).status_code == 418


async def test_a_completed_jobs_result_is_the_routes_answer_without_the_route(
    remembering, shortcut_alone, people, db
):
    mine = await add_job(db, user_id=people.alice.user.id, status=JobStatus.DONE)
    theirs = await add_job(db, user_id=people.bob.user.id, status=JobStatus.DONE)
    failed = await add_job(db, user_id=people.alice.user.id, status=JobStatus.ERROR, reason="boom")
    unrecorded = await add_job(db, user_id=people.alice.user.id, status=JobStatus.DONE)
    running = await add_job(db, user_id=people.alice.user.id, status=JobStatus.RUNNING)
    body = '{"results": [{"data": {"meas": [1, 2, 3]}}], "metadata": {"version": 2}}'
    db.add_all([JobResult(job_id=mine.id, body=body), JobResult(job_id=theirs.id, body='{"x": 1}')])
    await db.flush()
    alice = people.alice.headers
    transport = httpx.ASGITransport(app=remembering)
    async with httpx.AsyncClient(transport=transport, base_url="http://qruntime.test") as client:
        path = f"/api/v1/jobs/{mine.id}/results"
        assert (await shortcut_alone.get(path, headers=alice)).status_code == 418  # not yet known
        routed = await client.get(path, headers=alice)
        assert routed.status_code == 200 and routed.text == body
        for prefix in PREFIXES:
            alone = await shortcut_alone.get(f"{prefix}/jobs/{mine.id}/results", headers=alice)
            assert alone.status_code == 200
            assert alone.content == routed.content == body.encode()
            assert alone.headers["content-type"] == routed.headers["content-type"]
        for caller in (people.alice, people.bob):  # both remembered from now on
            assert (await client.get("/api/v1/jobs", headers=caller.headers)).status_code == 200
        bob = people.bob.headers
        went_on = [
            (theirs.id, alice, 404),  # another's: answered like a missing one, by the route
            (failed.id, alice, 200),  # the error text, the route's
            (unrecorded.id, alice, 409),
            (running.id, alice, 409),
            (mine.id, bob, 404),
            ("0123456789abcdef0123", alice, 404),
        ]
        for job_id, headers, routed_status in went_on:
            url = f"/api/v1/jobs/{job_id}/results"
            assert (await shortcut_alone.get(url, headers=headers)).status_code == 418, job_id
            assert (await client.get(url, headers=headers)).status_code == routed_status, job_id
        assert (await shortcut_alone.get(path, params={"x": "1"}, headers=alice)).status_code == 418
        assert (await shortcut_alone.get(path + "/", headers=alice)).status_code == 418
        assert (
            await shortcut_alone.get(f"/api/v1/jobs/{mine.id}/x/results", headers=alice)
        ).status_code == 418
