"""Batch throughput with and without grouping small jobs into shared dispatches.

For each setting of QRUNTIME_MAX_GROUP_SIZE (grouped: --group-size, default 50; ungrouped: 1) this
script starts its own qruntime stack (`qruntime migrate`, api, scheduler, one executor) on a database,
broker namespace and port of its own, so it disturbs nothing else on the machine:

1. creates a Batch (`POST /sessions {"mode": "batch"}`) on --backend,
2. submits N single-pub Bell jobs (OpenQASM 2 text, --shots each) into it from C concurrent clients,
   and closes the batch (`PATCH accepting_jobs=false`: it drains, then closes),
3. only then starts the executor, and waits until the batch is closed,
4. checks that every job completed, and that a sample of results has the shots and Bell correlations.

Throughput is N over the batch's own execution window, from `started_at` (its first job started) to
`last_job_completed`, as GET /sessions/{id} reports them: submission and the executor's warm-up are
outside the window. Submission throughput is reported too. Then the two are compared.

    .venv/bin/python bench/batch_grouping.py                       # 1000 jobs on aer_simulator
    .venv/bin/python bench/batch_grouping.py --backend fake_manila -n 300

Needs PostgreSQL and RabbitMQ as `make test` does (QRUNTIME_TEST_PG / QRUNTIME_TEST_AMQP override the
admin DSN and broker URL). The exit status is 1 when a job did not complete or a result is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import asyncpg
import httpx
from qiskit_ibm_runtime import RuntimeDecoder

from shared.db.repositories.overview import FOLD_FINAL_COUNTS

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("QRUNTIME_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("QRUNTIME_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
BELL_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0],q[1];
measure q -> c;
"""
SAMPLE_RESULTS = 50


@dataclass
class Run:
    label: str
    group_size: int
    jobs: int
    submit_s: float
    window_s: float
    dispatches: int
    completed: int
    bad_results: int

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.window_s if self.window_s > 0 else 0.0

    @property
    def submit_per_s(self) -> float:
        return self.jobs / self.submit_s if self.submit_s > 0 else 0.0


class BenchStack:
    """qruntime's processes on a database, namespace and port of their own."""

    def __init__(self, backend: str, group_size: int, log_dir: Path, seed_history: int = 0) -> None:
        tag = uuid.uuid4().hex[:8]
        self.database = f"qrt_bench_{tag}"
        self.namespace = f"qrt-bench-{tag}"
        self.dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + self.database
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend = backend  # one backend, or several separated by commas
        self.seed_history = seed_history
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "QRUNTIME_DATABASE_URL": self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
            "QRUNTIME_AMQP_URL": AMQP_URL,
            "QRUNTIME_NAMESPACE": self.namespace,
            "QRUNTIME_API_PORT": str(self.port),
            "QRUNTIME_BACKENDS": backend,
            "QRUNTIME_MAX_GROUP_SIZE": str(group_size),
            "QRUNTIME_LOG_LEVEL": "WARNING",
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.roles: dict[str, subprocess.Popen[bytes]] = {}
        self.headers: dict[str, str] = {}
        self.api_key = ""
        self.crn = ""

    def start(self, *args: str) -> None:
        role = "-".join(a for a in args if not a.startswith("-"))
        log = open(self.log_dir / f"{self.namespace}-{role}.log", "ab")  # the child process writes to it
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=self.env, stdout=log, stderr=log
        )
        self.processes.append(process)
        self.roles[role] = process

    def admin(self, *args: str) -> str:
        """`qruntime admin ...`; its last line of output (a key or a CRN)."""
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "admin", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip().splitlines()[-1]

    def up_without_executor(self) -> None:
        subprocess.run([sys.executable, "-m", "services.cli", "migrate"], cwd=ROOT, env=self.env, check=True)
        self.admin("create-user", "bench")
        crn = self.admin("create-instance", "bench")
        self.admin("add-member", "bench", "bench")
        key = self.admin("create-key", "bench")
        self.api_key, self.crn = key, crn
        if self.seed_history:
            asyncio.run(seed_history(self.dsn, self.seed_history, self.backend.split(",")[0]))
        self.start("scheduler")
        self.start("api")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    grant = {"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": key}
                    token = httpx.post(self.url + "/identity/token", data=grant, timeout=10).json()[
                        "access_token"
                    ]
                    self.headers = {"Authorization": f"Bearer {token}", "Service-CRN": crn}
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the api did not become ready; logs in {self.log_dir}")

    def down(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        asyncio.run(self._drop())

    async def _drop(self) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await conn.close()
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            backends = [f"executor.{name}" for name in self.backend.split(",")]
            for queue in ("scheduler", "dead", *backends):
                await channel.queue_delete(f"{self.namespace}.{queue}")
            for exchange in ("commands", "dispatch", "events", "tenant-events", "dead"):
                await channel.exchange_delete(f"{self.namespace}.{exchange}")


async def seed_history(dsn: str, jobs: int, backend: str, chunk: int = 20_000) -> None:
    """Insert `jobs` finished jobs of the bench user (with their results), spread over the last 20
    days (inside the fair-share and usage windows), with SQL: the history a busy installation has."""
    conn = await asyncpg.connect(dsn)
    try:
        user_id, instance_id = await conn.fetchrow(
            "SELECT u.id, m.instance_id FROM users u JOIN instance_members m ON m.user_id = u.id "
            "WHERE u.name = 'bench'"
        )
        params = json.dumps({"pubs": [[BELL_QASM2, None, 1000]], "version": 2})
        for first in range(0, jobs, chunk):
            last = min(first + chunk, jobs)
            await conn.execute(
                """
                INSERT INTO jobs (id, program_id, backend, status, params, num_pubs, total_shots, priority,
                                  tags, user_id, instance_id, attempts, dispatch_id, executor_id,
                                  created_at, dispatched_at, started_at, finished_at, execution_seconds)
                SELECT 'h' || md5(g::text), 'sampler', $1, 'DONE', $2, 1, 1000, 0, '[]'::jsonb, $3, $4, 1,
                       gen_random_uuid(), 'seeded', t, t, t + interval '20 ms', t + interval '30 ms', 0.01
                FROM generate_series($5::int, $6::int) AS g,
                     LATERAL (SELECT now() - make_interval(secs => g * 1728000.0 / $7)) AS at(t)
                """,
                backend,
                params,
                user_id,
                instance_id,
                first + 1,
                last,
                jobs,
            )
            await conn.execute(
                "INSERT INTO job_results (job_id, body) SELECT 'h' || md5(g::text), $1 "
                "FROM generate_series($2::int, $3::int) AS g",
                '{"seeded": true}',
                first + 1,
                last,
            )
        # The relay's clean-up folds the seeded jobs' final counts within a minute; do it now.
        await conn.fetchval(FOLD_FINAL_COUNTS)
        # A busy installation's history has long been vacuumed: measure that steady state, not the
        # minute after a bulk load while autovacuum works through it.
        await conn.execute("VACUUM (ANALYZE) jobs, job_results, final_count_changes")
        # Each chunk above finished 20,000 jobs in one transaction, so the trigger's updates of an
        # hour's rollup row left 20,000 versions that nothing could prune meanwhile: 1,661 pages for
        # 481 rows, which fair share's read then scans (4 ms a pass). An installation finishes its
        # jobs in transactions of their own, and its rollup stays a few pages (the updates stay on
        # their page); rewrite the table to that.
        await conn.execute("VACUUM (FULL, ANALYZE) usage_rollup")
        await conn.execute("ANALYZE")
        # Nor while the server writes the load's pages out: the checkpoint that would spread those
        # writes over the measurement (and slow every commit in it) happens now.
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def submit_batch(
    url: str, headers: dict[str, str], backend: str, jobs: int, shots: int, concurrency: int
) -> tuple[str, list[str], float]:
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:
        created = await client.post("/api/v1/sessions", json={"mode": "batch", "backend": backend})
        created.raise_for_status()
        batch = created.json()["id"]
        body = {
            "program_id": "sampler",
            "backend": backend,
            "session_id": batch,
            "params": {"pubs": [[BELL_QASM2, None, shots]], "version": 2},
        }
        ids: list[str] = []
        pending = iter(range(jobs))

        async def client_loop() -> None:
            for _ in pending:
                response = await client.post("/api/v1/jobs", json=body)
                response.raise_for_status()
                ids.append(response.json()["id"])

        started = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        submit_s = time.perf_counter() - started
        closed = await client.patch(f"/api/v1/sessions/{batch}", json={"accepting_jobs": False})
        closed.raise_for_status()
    return batch, ids, submit_s


async def wait_closed(url: str, headers: dict[str, str], batch: str, limit_s: float) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            view = (await client.get(f"/api/v1/sessions/{batch}")).json()
            if view["state"] == "closed":
                return dict(view)
            await asyncio.sleep(0.2)
    raise TimeoutError(f"batch {batch} did not close within {limit_s} s")


async def check(stack: BenchStack, ids: list[str], shots: int) -> tuple[int, int, int]:
    """Completed jobs, dispatches used, and wrong results among a sample."""
    conn = await asyncpg.connect(stack.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'DONE') AS done, "
            "count(DISTINCT dispatch_id) AS dispatches FROM jobs WHERE id = ANY($1::text[])",
            ids,
        )
    finally:
        await conn.close()
    bad = 0
    async with httpx.AsyncClient(base_url=stack.url, timeout=30, headers=stack.headers) as client:
        for job_id in random.sample(ids, min(SAMPLE_RESULTS, len(ids))):
            result = json.loads((await client.get(f"/api/v1/jobs/{job_id}/results")).text, cls=RuntimeDecoder)
            counts = result[0].data.c.get_counts()
            correlated = counts.get("00", 0) + counts.get("11", 0)
            # The ideal simulator gives only 00 and 11; a noisy device mostly.
            least = shots if stack.backend == "aer_simulator" else 0.8 * shots
            bad += sum(counts.values()) != shots or correlated < least
    return int(row["done"]), int(row["dispatches"]), bad


def run_once(label: str, group_size: int, args: argparse.Namespace, log_dir: Path) -> Run:
    stack = BenchStack(args.backend, group_size, log_dir, seed_history=getattr(args, "seed_history", 0))
    try:
        stack.up_without_executor()
        batch, ids, submit_s = asyncio.run(
            submit_batch(stack.url, stack.headers, args.backend, args.jobs, args.shots, args.concurrency)
        )
        stack.start("executor", "--backend", args.backend)
        view = asyncio.run(wait_closed(stack.url, stack.headers, batch, args.timeout))
        window = (
            datetime.fromisoformat(view["last_job_completed"]) - datetime.fromisoformat(view["started_at"])
        ).total_seconds()
        done, dispatches, bad = asyncio.run(check(stack, ids, args.shots))
        return Run(label, group_size, len(ids), submit_s, window, dispatches, done, bad)
    finally:
        stack.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", default="aer_simulator", help="aer_simulator or a fake_* device")
    parser.add_argument("-n", "--jobs", type=int, default=1000)
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--group-size", type=int, default=50, help="QRUNTIME_MAX_GROUP_SIZE when grouping")
    parser.add_argument("-c", "--concurrency", type=int, default=8, help="concurrent submitting clients")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds the batch may take to close")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    parser.add_argument(
        "--seed-history", type=int, default=0, help="finished jobs inserted with SQL before the stack starts"
    )
    parser.add_argument("--grouped-only", action="store_true", help="skip the ungrouped run")
    args = parser.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="qruntime-bench-"))
    runs = [run_once("grouped", args.group_size, args, log_dir)]
    if not args.grouped_only:
        runs.append(run_once("ungrouped", 1, args, log_dir))
    date = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"qruntime batch grouping benchmark, {date}")
    print(f"platform: {platform.platform()}, os.cpu_count()={os.cpu_count()}")
    print(
        f"workload: one batch of {args.jobs} Bell jobs x {args.shots} shots on {args.backend}, "
        f"submitted by {args.concurrency} clients before the executor starts; logs in {log_dir}"
    )
    header = (
        f"{'group':>6}{'dispatches':>11}{'done':>6}{'bad':>5}{'submit/s':>10}{'window s':>10}{'jobs/s':>9}"
    )
    print(f"{'':10}{header}")
    for run in runs:
        print(
            f"{run.label:10}{run.group_size:>6}{run.dispatches:>11}{run.completed:>6}{run.bad_results:>5}"
            f"{run.submit_per_s:>10.1f}{run.window_s:>10.2f}{run.jobs_per_s:>9.1f}"
        )
    grouped, ungrouped = runs[0], runs[-1]
    ratio = grouped.jobs_per_s / ungrouped.jobs_per_s if ungrouped.jobs_per_s else float("nan")
    if len(runs) > 1:
        print(f"grouped/ungrouped throughput: {ratio:.1f}x")
    if args.json:
        summary = {
            "date": date,
            "cpu_count": os.cpu_count(),
            "backend": args.backend,
            "jobs": args.jobs,
            "shots": args.shots,
            "runs": [{**run.__dict__, "jobs_per_s": round(run.jobs_per_s, 2)} for run in runs],
            "ratio": round(ratio, 2),
        }
        print(json.dumps(summary, indent=2))
    failed = any(run.completed != run.jobs or run.bad_results for run in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
