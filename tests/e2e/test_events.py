"""Events over AMQP and Server-Sent Events, and the metrics every process exports."""

import json
import re
import signal
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.stack import BELL_QASM2, EventRecorder, Stack, free_port, sampler_job, wait_for

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "events.schema.json").read_text())


def collapse(states: list[str]) -> list[str]:
    """Consecutive repeats folded (a session stays `active` while it stops accepting jobs)."""
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


def by_object(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for event in events:
        if event["event_id"] in seen:  # at-least-once delivery: deduplicate on event_id
            continue
        seen.add(event["event_id"])
        key = event["job_id"] if event["type"].startswith("job") else f"session:{event['session_id']}"
        grouped[key].append(event)
    return grouped


def wait_for_events(recorder: EventRecorder, predicate: Any, timeout: float = 30) -> list[dict[str, Any]]:
    try:
        wait_for(lambda: predicate(recorder.drain()), timeout, "events", poll=0.3)
    except TimeoutError:
        pass  # the caller's assertions say what is missing
    return recorder.events


def test_job_and_session_events_arrive_in_order_and_match_the_schema(stack: Stack) -> None:
    recorder = EventRecorder(stack.namespace)
    recorder.bind()
    try:
        with stack.client() as client:
            session_id = client.post(
                "/api/v1/sessions", json={"mode": "dedicated", "backend": "aer_simulator"}
            ).json()["id"]
            in_session = [
                client.post("/api/v1/jobs", json=sampler_job("aer_simulator", session_id=session_id)).json()[
                    "id"
                ]
                for _ in range(2)
            ]
            alone = client.post("/api/v1/jobs", json=sampler_job("fake_manila")).json()["id"]
            stack.wait_final([*in_session, alone])
            assert (
                client.patch(f"/api/v1/sessions/{session_id}", json={"accepting_jobs": False}).status_code
                == 204
            )
        key = f"session:{session_id}"
        events = wait_for_events(
            recorder,
            lambda evs: any(
                e["type"] == "session.state_changed"
                and e["session_id"] == session_id
                and e["state"] == "closed"
                for e in evs
            ),
        )
    finally:
        recorder.delete()
    grouped = by_object(events)
    for event in events:
        jsonschema.validate(event, SCHEMA)
        kind = "job" if event["type"].startswith("job") else "session"
        assert event["routing_key"] == f"{kind}.{event['state']}.{event['backend']}"
    for job_id in [*in_session, alone]:
        assert [e["state"] for e in grouped[job_id]] == ["queued", "running", "done"], job_id
        assert grouped[job_id][-1]["status"] == "Completed" and grouped[job_id][-1]["progress"] == 1.0
        assert grouped[job_id][0]["instance"]
    assert all(e["session_id"] == session_id for job in in_session for e in grouped[job])
    assert collapse([e["state"] for e in grouped[key]]) == ["open", "active", "closed"]


def sse_events(response: httpx.Response, stop_after: int | None = None) -> list[tuple[int, dict[str, Any]]]:
    received: list[tuple[int, dict[str, Any]]] = []
    event_id = None
    for line in response.iter_lines():
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            assert event_id is not None
            received.append((event_id, json.loads(line[6:])))
            if stop_after is not None and len(received) >= stop_after:
                break
    return received


def test_sse_follows_a_job_and_resumes_without_gaps(stack: Stack) -> None:
    with stack.client() as client:
        job_id = client.post("/api/v1/jobs", json=sampler_job("aer_simulator", BELL_QASM2, 200)).json()["id"]
        with client.stream("GET", f"/api/v1/jobs/{job_id}/events", timeout=60) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            first = sse_events(response, stop_after=1)
        # Reconnect after the first event: the rest arrives, nothing twice, nothing lost.
        with client.stream(
            "GET", f"/api/v1/jobs/{job_id}/events", headers={"Last-Event-ID": str(first[0][0])}, timeout=60
        ) as response:
            rest = sse_events(response)
        with client.stream("GET", f"/api/v1/jobs/{job_id}/events", timeout=60) as response:
            whole = sse_events(response)
    assert [e["state"] for _, e in first + rest] == ["queued", "running", "done"]
    assert first + rest == whole
    ids = [i for i, _ in whole]
    assert ids == sorted(ids) and len(set(ids)) == 3
    for _, event in whole:
        jsonschema.validate(event, SCHEMA)


def test_sse_needs_the_same_authorization(stack: Stack) -> None:
    if "eve" not in stack.accounts:
        stack.add_account("eve", "lab-e")
    with stack.client() as client:
        job_id = client.post("/api/v1/jobs", json=sampler_job("aer_simulator")).json()["id"]
        session_id = client.post(
            "/api/v1/sessions", json={"mode": "batch", "backend": "aer_simulator"}
        ).json()["id"]
    with stack.client("eve") as client:
        assert client.get(f"/api/v1/jobs/{job_id}/events").status_code == 404
        assert client.get(f"/api/v1/sessions/{session_id}/events").status_code == 404
    with stack.client(None) as client:
        assert client.get(f"/api/v1/jobs/{job_id}/events").status_code == 401
    with stack.client() as client:
        assert client.get(f"/api/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "x"}).status_code == 400
        client.delete(f"/api/v1/sessions/{session_id}/close")


def test_asyncapi_document_is_served(stack: Stack) -> None:
    document = httpx.get(stack.url + "/asyncapi.json", timeout=10).json()
    assert document["channels"]["job.{state}.{backend}"]["bindings"]["amqp"]["exchange"]["name"] == (
        f"{stack.namespace}.events"
    )


@pytest.fixture
def observed_stack(make_stack: type[Stack]) -> Iterator[tuple[Stack, int, int]]:
    stack = make_stack(backends=["aer_simulator"])
    stack.migrate()
    stack.add_account("alice", "lab-a")
    scheduler_port, executor_port = free_port(), free_port()
    stack.qruntime("scheduler", env={"QRUNTIME_HEALTH_PORT": str(scheduler_port)}, name="scheduler")
    stack.qruntime(
        "executor",
        "--backend",
        "aer_simulator",
        env={"QRUNTIME_HEALTH_PORT": str(executor_port)},
        name="executor",
    )
    stack.start_api()
    stack.wait_for_executors(1)
    yield stack, scheduler_port, executor_port


def dispatches_counted(metrics: str) -> float:
    found = re.search(
        r'^qruntime_dispatch_latency_seconds_count\{backend="aer_simulator"\} (\S+)$', metrics, re.M
    )
    return float(found.group(1)) if found else 0.0


def test_every_process_exports_metrics(observed_stack: tuple[Stack, int, int]) -> None:
    stack, scheduler_port, executor_port = observed_stack
    recorder = EventRecorder(stack.namespace)
    recorder.bind()
    try:
        with stack.client() as client:
            ids = [
                client.post("/api/v1/jobs", json=sampler_job("aer_simulator")).json()["id"] for _ in range(5)
            ]
            session_id = client.post(
                "/api/v1/sessions", json={"mode": "batch", "backend": "aer_simulator"}
            ).json()["id"]
            stack.wait_final(ids)
            done_gauge = 'qruntime_jobs{backend="aer_simulator",state="done"} 5.0'
            # A refresh of each process's gauges after the jobs finished (each refreshes on its own timer).
            for where, url in (
                ("scheduler", f"http://127.0.0.1:{scheduler_port}/metrics"),
                ("api", stack.metrics_url),
            ):
                wait_for(
                    lambda url=url: done_gauge in httpx.get(url, timeout=10).text,
                    60,
                    f"the {where}'s gauges to count the finished jobs",
                    poll=0.2,
                )
            api = httpx.get(stack.metrics_url, timeout=10).text
            scheduler = httpx.get(f"http://127.0.0.1:{scheduler_port}/metrics", timeout=10).text
            executor = httpx.get(f"http://127.0.0.1:{executor_port}/metrics", timeout=10).text
            client.delete(f"/api/v1/sessions/{session_id}/close")
    finally:
        recorder.delete()
    for text in (api, scheduler):
        assert 'qruntime_jobs{backend="aer_simulator",state="done"} 5.0' in text
        assert 'qruntime_sessions{backend="aer_simulator",state="open"} 1.0' in text
        assert 'qruntime_queue_depth{backend="aer_simulator"}' in text
        assert "qruntime_outbox_backlog" in text
    assert 'qruntime_http_requests_total{method="POST",route="/api/v1/jobs",status="200"} 5.0' in api
    # Each job was dispatched once, by the scheduler or (alone on an idle backend) by the api.
    assert dispatches_counted(api) + dispatches_counted(scheduler) == 5
    assert 'qruntime_job_execution_seconds_count{backend="aer_simulator"} 5.0' in executor
    assert 'qruntime_jobs_finished_total{backend="aer_simulator",state="done"} 5.0' in executor


def test_no_committed_change_is_missing_after_the_api_is_killed(make_stack: type[Stack]) -> None:
    stack = make_stack(backends=["aer_simulator"])
    stack.start_all()
    recorder = EventRecorder(stack.namespace)
    recorder.bind()
    try:
        with stack.client() as client:
            ids = [
                client.post("/api/v1/jobs", json=sampler_job("aer_simulator")).json()["id"] for _ in range(20)
            ]
        stack.kill("api", signal.SIGKILL)  # mid-stream: announcements of these jobs may be unsent
        stack.start_api()
        stack.wait_final(ids)
        logged = {
            str(r["event_id"])
            for r in stack.sql("SELECT event_id FROM events WHERE job_id = ANY($1::text[])", ids)
        }
        events = wait_for_events(recorder, lambda evs: logged <= {e["event_id"] for e in evs})
    finally:
        recorder.delete()
    assert logged <= {e["event_id"] for e in events}
    grouped = by_object(events)
    for job_id in ids:
        assert [e["state"] for e in grouped[job_id]] == ["queued", "running", "done"]
