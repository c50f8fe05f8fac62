"""Server time of every console page with 10,000 jobs in the database.

Starts its own qruntime stack (own database, broker namespace and port; tests/stack.py), runs one
real Bell job to have genuine inputs and a genuine result, then seeds N jobs (default 10,000) for
one user with SQL (and runs a real 100-point experiment scan, with 40 more folders in its tree): a mix of Completed (with that result), Failed, Cancelled, Queued and Running
jobs over the last 30 days, 100 batches and sessions holding some of them, and their events; the
scheduler and executors are stopped first, so only the api runs while pages are timed. Then it
signs in to the console as that user (and as an administrator for the admin page) and requests each
page R times, reporting the server's own time (the `Server-Timing: app` header: from the start of
the handler to the rendered response) and the wall time seen by the client, p50 / p95 / max.

    .venv/bin/python bench/console_pages.py              # 10,000 jobs, 30 requests per page
    .venv/bin/python bench/console_pages.py -n 50000 -r 10

Exit status 1 when a page's p95 server time is 300 ms or more, or a page does not answer 200.
"""

from __future__ import annotations

import argparse
import platform
import re
import signal
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.stack import Stack, sampler_job  # noqa: E402

LIMIT_MS = 300.0

SCAN_PATH = "/bench/rabi/scan"
SCAN = {
    "backend": "aer_simulator",
    "program": "sampler",
    "circuit": (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float[64] theta;\nqubit[1] q;\nbit[1] c;\n'
        "rx(theta) q[0];\nc[0] = measure q[0];\n"
    ),
    "shots": 1000,
    "iteration": {
        "steps": [
            {
                "linspace": {
                    "variable": "theta",
                    "start": "0",
                    "stop": "pi",
                    "num": 100,
                    "steps": [{"execute": {}}],
                }
            }
        ]
    },
}


SEED_JOBS = """
INSERT INTO jobs (id, program_id, backend, status, reason, reason_code, params, num_pubs, total_shots,
                  priority, tags, session_id, user_id, instance_id, attempts, created_at, started_at,
                  finished_at, execution_seconds)
SELECT 'seed' || lpad(i::text, 16, '0'), 'sampler', CASE WHEN i % 3 = 0 THEN 'fake_manila' ELSE 'aer_simulator' END,
       s.status, s.reason, s.code, $1, 1, 1000, 0,
       CASE WHEN i % 10 = 0 THEN '["sweep"]'::jsonb ELSE '[]'::jsonb END,
       CASE WHEN i % 20 = 0 THEN 'seedsession' || lpad((i % 100)::text, 9, '0') END,
       $2, $3, 1, t.created, t.created + interval '1 second',
       CASE WHEN s.status IN ('DONE', 'ERROR', 'CANCELLED') THEN t.created + interval '3 seconds' END,
       CASE WHEN s.status IN ('DONE', 'ERROR') THEN 0.05 END
FROM generate_series(1, $4) AS i
CROSS JOIN LATERAL (SELECT now() - make_interval(secs => (i * 2592000.0 / $4)) AS created) AS t
CROSS JOIN LATERAL (
    SELECT CASE WHEN i % 50 = 1 THEN 'QUEUED' WHEN i % 50 = 2 THEN 'RUNNING' WHEN i % 25 = 3 THEN 'ERROR'
                WHEN i % 25 = 4 THEN 'CANCELLED' ELSE 'DONE' END AS status,
           CASE WHEN i % 25 = 3 THEN 'Simulator error' END AS reason,
           CASE WHEN i % 25 = 3 THEN 5000 END AS code
) AS s
"""

SEED_SESSIONS = """
INSERT INTO sessions (id, backend, mode, state, accepting_jobs, max_ttl, interactive_ttl, active_ttl,
                      created_at, started_at, closed_at, elapsed_time, close_reason, timestamps,
                      user_id, instance_id)
SELECT 'seedsession' || lpad(i::text, 9, '0'), 'aer_simulator', CASE WHEN i % 2 = 0 THEN 'batch' ELSE 'dedicated' END,
       'closed', false, 28800, 60, 28800, now() - make_interval(days => 30 - i % 30),
       now() - make_interval(days => 30 - i % 30), now() - make_interval(days => 30 - i % 30) + interval '1 hour',
       12.5, 'closed', '[]'::jsonb, $1, $2
FROM generate_series(0, 99) AS i
"""

SEED_RESULTS = """
INSERT INTO job_results (job_id, body)
SELECT id, $1 FROM jobs WHERE id LIKE 'seed%' AND status = 'DONE'
"""

SEED_EVENTS = """
INSERT INTO events (event_id, job_id, session_id, user_id, instance_id, body, created_at)
SELECT gen_random_uuid(), j.id, j.session_id, j.user_id, j.instance_id,
       jsonb_build_object('schema_version', 1, 'event_id', gen_random_uuid(), 'occurred_at', j.created_at,
                          'type', 'job.state_changed', 'job_id', j.id, 'session_id', j.session_id,
                          'backend', j.backend, 'instance', j.instance_id, 'state', lower(j.status),
                          'status', CASE j.status WHEN 'DONE' THEN 'Completed' WHEN 'ERROR' THEN 'Failed'
                                    WHEN 'CANCELLED' THEN 'Cancelled' WHEN 'QUEUED' THEN 'Queued'
                                    ELSE 'Running' END),
       j.created_at
FROM jobs j WHERE j.id LIKE 'seed%'
"""


def sign_in(stack: Stack, api_key: str) -> httpx.Client:
    client = httpx.Client(base_url=stack.url, timeout=60)
    form = client.get("/console/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert nonce is not None
    response = client.post("/console/login", data={"apikey": api_key, "csrf": nonce.group(1)})
    assert response.status_code == 303, response.text
    return client


def measure(client: httpx.Client, path: str, repeat: int) -> tuple[list[float], list[float]]:
    server, wall = [], []
    for attempt in range(repeat + 2):
        started = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.text[:300]}")
        timing = re.search(r"app;dur=([0-9.]+)", response.headers.get("server-timing", ""))
        assert timing is not None, path
        if attempt >= 2:  # the first two warm caches (templates, device layouts, the connection pool)
            server.append(float(timing.group(1)))
            wall.append(elapsed)
    return server, wall


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--jobs", type=int, default=10_000)
    parser.add_argument("-r", "--repeat", type=int, default=30)
    args = parser.parse_args()

    # The api refreshes its state gauges at the default interval (test stacks use 1 s).
    stack = Stack(
        backends=["aer_simulator", "fake_manila"], settings_env={"QRUNTIME_METRICS_REFRESH_SECONDS": "10"}
    )
    try:
        stack.start_all()
        boss = stack.add_account("bench-admin", "bench-admin", admin=True)
        alice = stack.accounts["alice"]
        with stack.client("alice") as api:
            real = api.post("/api/v1/jobs", json=sampler_job("aer_simulator", shots=1000)).json()["id"]
        stack.wait_final([real])
        # A finished 100-point scan for the experiments pages (run for real, before the executors stop).
        with stack.client("alice") as api:
            made = api.put(f"/api/v1/experiments/sequences{SCAN_PATH}", json=SCAN)
            assert made.status_code == 201, made.text
            for k in range(40):
                api.put(f"/api/v1/experiments/paths/bench/folder{k}/sub")
            launched = api.post(f"/api/v1/experiments/sequences{SCAN_PATH}/launch")
            assert launched.status_code < 300, launched.text
            deadline = time.monotonic() + 600
            while api.get(f"/api/v1/experiments/sequences{SCAN_PATH}").json()["state"] != "finished":
                if time.monotonic() > deadline:
                    raise SystemExit("the bench's scan did not finish")
                time.sleep(0.5)
        # Only the api stays: the seeded queued and running jobs must not be dispatched and run while
        # the pages are timed (they would compete for the two cores).
        for name in [n for n in stack.processes if n != "api"]:
            stack.kill(name, signal.SIGTERM)
        row = stack.sql("SELECT params, user_id, instance_id FROM jobs WHERE id = $1", real)[0]
        result = stack.sql("SELECT body FROM job_results WHERE job_id = $1", real)[0]["body"]
        seeding = time.perf_counter()
        stack.sql(SEED_SESSIONS, row["user_id"], row["instance_id"])
        stack.sql(SEED_JOBS, row["params"], row["user_id"], row["instance_id"], args.jobs)
        stack.sql(SEED_RESULTS, result)
        stack.sql(SEED_EVENTS)
        # A database that has held its jobs for a while has been vacuumed and analysed by autovacuum.
        stack.sql("VACUUM ANALYZE")
        total = stack.sql("SELECT count(*) AS n FROM jobs")[0]["n"]
        print(
            f"seeded {args.jobs} jobs in {time.perf_counter() - seeding:.1f} s ({total} jobs in the database)"
        )

        done_job = stack.sql("SELECT id FROM jobs WHERE id LIKE 'seed%' AND status = 'DONE' LIMIT 1")[0]["id"]
        pages = {
            "workloads rows (live refresh)": "/console/workloads/rows",
            "workloads (page 1)": "/console/workloads",
            "workloads (Completed, job, 30d)": "/console/workloads?status=Completed&mode=job&since=30d",
            "workloads (tag)": "/console/workloads?tag=sweep",
            "workloads (last page)": f"/console/workloads?page={(args.jobs * 95 // 100 + 100) // 25}",
            "job (histogram)": f"/console/jobs/{done_job}",
            "session (50 jobs)": "/console/sessions/seedsession000000001",
            "backends": "/console/backends",
            "usage": "/console/usage",
            "experiments (tree)": "/console/experiments",
            "sequence (100-point scan)": f"/console/sequence?path={SCAN_PATH}",
        }
        print(
            f"\n{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
            f"{args.repeat} requests per page after 2 warm-up requests; times in ms"
        )
        print(f"{'page':34} {'server p50':>10} {'p95':>7} {'max':>7} {'wall p50':>9} {'p95':>7}")
        worst = 0.0
        user, admin = sign_in(stack, alice.api_key), sign_in(stack, boss.api_key)
        rows = [(name, user, path) for name, path in pages.items()]
        rows.append(("admin", admin, "/console/admin"))
        for name, client, path in rows:
            server, wall = measure(client, path, args.repeat)
            worst = max(worst, p95(server))
            print(
                f"{name:34} {statistics.median(server):10.1f} {p95(server):7.1f} {max(server):7.1f} "
                f"{statistics.median(wall):9.1f} {p95(wall):7.1f}"
            )
        user.close()
        admin.close()
        print(f"\nworst p95 server time {worst:.1f} ms (limit {LIMIT_MS:.0f} ms)")
        return 0 if worst < LIMIT_MS else 1
    finally:
        stack.destroy()


if __name__ == "__main__":
    sys.exit(main())
