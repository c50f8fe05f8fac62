"""Session timers live in the database: a scheduler killed with SIGKILL while sessions are active and
timers pending is replaced (a standby takes over, then a fresh one after a restart), every timer still
fires, and no job is dispatched twice."""

import json
import signal
from collections import Counter
from datetime import datetime, timedelta

from tests.stack import BELL_QASM2, EventRecorder, Stack, layered_qasm, sampler_job, wait_for

SLOW = layered_qasm(20, 20)  # half a second or more each: 60 outlast the max_ttl
# Long enough that a loaded machine still kills the leader while both timers are pending: the idle
# session's interactive_ttl outlasts the checks after its job, the max_ttl the standby's takeover.
MAX_TTL = 25
INTERACTIVE_TTL = 5


def test_timers_fire_and_nothing_is_dispatched_twice_across_scheduler_deaths(make_stack: type[Stack]) -> None:
    stack = make_stack(
        backends=["aer_simulator", "fake_manila"],
        settings_env={"QRUNTIME_SESSION_INTERACTIVE_TTL": str(INTERACTIVE_TTL)},
    )
    stack.start_all()
    stack.start_scheduler(name="scheduler-standby")
    standby_log = stack.log_dir / "scheduler-standby.log"
    wait_for(lambda: "standing by" in standby_log.read_text(), 60, "the standby", poll=0.1)
    events = EventRecorder(stack.namespace)
    events.bind()
    try:
        with stack.client() as client:

            def session(backend: str, **body: object) -> str:
                response = client.post(
                    "/api/v1/sessions", json={"mode": "dedicated", "backend": backend, **body}
                )
                assert response.status_code == 200, response.text
                return str(response.json()["id"])

            def view(session_id: str) -> dict:
                return dict(client.get(f"/api/v1/sessions/{session_id}").json())

            def submit(backend: str, session_id: str, circuit: str, shots: int) -> str:
                body = sampler_job(backend, circuit, shots, session_id=session_id)
                return str(client.post("/api/v1/jobs", json=body).json()["id"])

            # No aer_simulator executor while the jobs are submitted: the max_ttl clock starts with
            # the first job, so it must not start before the last submission, however slow.
            stack.kill("executor-aer_simulator", signal.SIGTERM)
            expiring = session("aer_simulator", max_ttl=MAX_TTL)
            jobs = [submit("aer_simulator", expiring, SLOW, 20_000) for _ in range(60)]
            stack.start_executor("aer_simulator", name="executor-aer_simulator-2")
            wait_for(lambda: view(expiring)["state"] == "active", 90, "the session to start")
            idle = session("fake_manila")
            idle_job = submit("fake_manila", idle, BELL_QASM2, 200)
            stack.wait_final([idle_job], timeout=60)
            assert view(idle)["state"] == "active"

            # Both timers pending: kill the leader outright; the standby takes over.
            stack.kill("scheduler", signal.SIGKILL)
            wait_for(
                lambda: view(idle)["state"] == "inactive",
                INTERACTIVE_TTL + 15,
                "interactive_ttl after the takeover",
            )
            idle_view = view(idle)
            deadline = _at(idle_view["last_job_completed"]) + timedelta(seconds=INTERACTIVE_TTL)
            inactive_at = _at(idle_view["timestamps"][-1]["timestamp"])
            # Within a second, plus up to a second for the standby to notice the leader's lock is gone.
            assert timedelta(0) <= inactive_at - deadline < timedelta(seconds=2)

            # Kill the new leader too, and start a fresh scheduler: it reads the max_ttl deadline back.
            assert view(expiring)["state"] == "active"
            stack.kill("scheduler-standby", signal.SIGKILL)
            stack.start_scheduler(name="scheduler-3")
            wait_for(lambda: view(expiring)["state"] == "closed", 60, "max_ttl after the restart")
            closed = view(expiring)
            deadline = _at(closed["started_at"]) + timedelta(seconds=MAX_TTL)
            leading = _log_time(stack, "scheduler-3", "scheduler is the leader")
            assert timedelta(0) <= _at(closed["closed_at"]) - max(deadline, leading) < timedelta(seconds=1)

            final = stack.wait_final(jobs, timeout=60)
            assert set(final.values()) == {"DONE", "CANCELLED"}
            for job_id in (j for j in jobs if final[j] == "CANCELLED"):
                assert client.get(f"/api/v1/jobs/{job_id}").json()["state"]["reason_code"] == 4001

        # No job was dispatched twice, none started twice, none completed twice.
        dispatched: Counter[str] = Counter()
        for row in stack.sql("SELECT body FROM outbox WHERE exchange = 'dispatch'"):
            body = _json(row["body"])
            dispatched.update(body.get("job_ids") or [body["job_id"]])
        ran = [
            j for j in [idle_job, *jobs] if stack.sql("SELECT started_at FROM jobs WHERE id = $1", j)[0][0]
        ]
        assert all(dispatched[j] == 1 for j in ran) and max(dispatched.values()) == 1
        assert stack.sql("SELECT max(attempts) AS n FROM jobs")[0]["n"] == 1
        stack.wait_outbox_sent()
        # The relay may publish an event twice (at least once); its event id tells a re-send apart.
        seen = {e["event_id"]: e for e in events.drain()}.values()
        for state in ("running", "done"):
            counts = Counter(
                e["job_id"] for e in seen if e["type"] == "job.state_changed" and e["state"] == state
            )
            assert counts and max(counts.values()) == 1, state
    finally:
        events.delete()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _json(value: object) -> dict:
    return dict(json.loads(value) if isinstance(value, str) else value)  # type: ignore[call-overload]


def _log_time(stack: Stack, name: str, line: str) -> datetime:
    """When a process logged `line` (its log's local timestamp, made aware in the local zone)."""
    for entry in (stack.log_dir / f"{name}.log").read_text().splitlines():
        if line in entry:
            stamp = datetime.strptime(entry[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.astimezone()
    raise AssertionError(f"{name} never logged {line!r}")
