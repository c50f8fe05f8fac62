"""Where one job's time goes: a profile of its trip through the processes.

Starts its own stack (database, broker namespace and port of its own: bench/batch_grouping.py's
BenchStack), runs warm-up jobs, then N jobs one after the other from one client that polls every
--poll-interval seconds (2 ms by default), and splits each job's submit -> final time into hops,
from the client's clock and the timestamps the processes leave in PostgreSQL (one machine, one
clock):

    POST             client: request sent -> id received (api: auth, validation, one transaction)
    to dispatch      job created (api transaction) -> dispatched (the api's commit, its publish of
                     job.submitted, the scheduler's consume and scheduling pass)
    to claim         dispatched -> started (the pass's commit, its publish of the dispatch, the
                     executor's consume and claim)
    run + record     started -> finished (claim commit, child round trip, simulation, record start)
    finished -> seen finished -> the client's poll that saw the final state
    result GET       client: final state seen -> result fetched

(Work messages leave right after their commit from the process that committed them, so there is no
relay hop to time; outbox rows are marked sent in batches, so `sent_at` says nothing about a hop.)

PostgreSQL's now() is the start of the transaction that wrote a timestamp, so each hop includes the
writer's own transaction start but not its commit. Medians over the N jobs are printed.

Times on a shared machine are noisy; the work is not. So the database's own counters for the
stack's database (pg_stat_database: transactions, rows read, rows written) are read around the
measured jobs and around an idle interval of the same length (heartbeats, timers, polls), and the
difference per job is printed too.

    .venv/bin/python bench/trip.py                 # 25 jobs on aer_simulator
    .venv/bin/python bench/trip.py -n 50 --backend fake_manila
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_grouping import BELL_QASM2, BenchStack

HOPS = (
    "POST",
    "to dispatch",
    "to claim",
    "run + record",
    "finished -> seen",
    "result GET",
)
FINAL = frozenset({"Completed", "Failed", "Cancelled"})


@dataclass
class Trip:
    job_id: str
    posted: float = 0.0  # wall-clock seconds (time.time())
    accepted: float = 0.0
    seen: float = 0.0
    fetched: float = 0.0
    polls: int = 0
    hops: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.seen - self.posted


def one_job(client: httpx.Client, backend: str, poll: float) -> Trip:
    body = {"program_id": "sampler", "backend": backend, "params": {"pubs": [[BELL_QASM2, None, 1000]]}}
    posted = time.time()
    response = client.post("/api/v1/jobs", json=body)
    response.raise_for_status()
    trip = Trip(response.json()["id"], posted=posted, accepted=time.time())
    while True:
        view = client.get(f"/api/v1/jobs/{trip.job_id}", params={"exclude_params": "true"}).json()
        trip.polls += 1
        if view["state"]["status"] in FINAL:
            trip.seen = time.time()
            break
        time.sleep(poll)
    if view["state"]["status"] != "Completed":
        raise RuntimeError(f"job {trip.job_id} ended {view['state']}")
    client.get(f"/api/v1/jobs/{trip.job_id}/results").raise_for_status()
    trip.fetched = time.time()
    return trip


def run_timed(threads: list[threading.Thread]) -> float:
    """Start the threads, wait for all of them; the wall-clock seconds they took."""
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and of its children that have ended and been waited for (a
    PostgreSQL backend that closed, an executor's replaced simulator child): those move into the
    parent's counters when they end, so a group measured at two moments loses none of them."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")


def _pids_of_user(user: str) -> list[int]:
    found = subprocess.run(["pgrep", "-u", user], capture_output=True, text=True, check=False).stdout
    return [int(pid) for pid in found.split()]


def process_tree(pid: int) -> list[int]:
    """A process and its live descendants."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    return [pid, *(descendant for child in children for descendant in process_tree(int(child)))]


# What a group's CPU is counted over: a process tree, or every process of a user (a whole server).
Group = tuple[str, int | str]


def process_groups(stack: BenchStack) -> dict[str, Group]:
    """The stack's processes with their children (simulator child, parse workers), and the
    PostgreSQL and RabbitMQ servers (all their processes: the whole server, other databases too).
    The processes are listed afresh at each measure: a backend opened in between counts too."""
    groups: dict[str, Group] = {role: ("tree", process.pid) for role, process in stack.roles.items()}
    groups["postgresql"] = ("user", "postgres")
    groups["rabbitmq"] = ("user", "rabbitmq")
    return groups


def _pids(group: Group) -> list[int]:
    kind, who = group
    return process_tree(int(who)) if kind == "tree" else _pids_of_user(str(who))


def cpu_now(groups: dict[str, Group]) -> dict[str, float]:
    used = {name: sum(_cpu_seconds(pid) for pid in _pids(group)) for name, group in groups.items()}
    own = resource.getrusage(resource.RUSAGE_SELF)
    used["client (this bench)"] = own.ru_utime + own.ru_stime
    return used


STATS_FLUSH_SECONDS = 11.0  # PostgreSQL 15 backends report their counters when idle, within 10 s


async def db_counters(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit + xact_rollback AS transactions, tup_returned + tup_fetched AS rows_read, "
            "tup_inserted + tup_updated + tup_deleted AS rows_written "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return dict(row)


def counters_now(dsn: str) -> tuple[float, dict[str, int]]:
    time.sleep(STATS_FLUSH_SECONDS)
    return time.monotonic(), asyncio.run(db_counters(dsn))


async def server_times(dsn: str, trips: list[Trip]) -> None:
    """Fill each trip's hops from the rows the processes wrote."""
    conn = await asyncpg.connect(dsn)
    try:
        for trip in trips:
            job = await conn.fetchrow(
                "SELECT created_at, dispatched_at, started_at, finished_at FROM jobs WHERE id = $1",
                trip.job_id,
            )

            def ts(value: object) -> float:
                return value.timestamp()  # type: ignore[attr-defined]

            trip.hops = {
                "POST": trip.accepted - trip.posted,
                "to dispatch": ts(job["dispatched_at"]) - ts(job["created_at"]),
                "to claim": ts(job["started_at"]) - ts(job["dispatched_at"]),
                "run + record": ts(job["finished_at"]) - ts(job["started_at"]),
                "finished -> seen": trip.seen - ts(job["finished_at"]),
                "result GET": trip.fetched - trip.seen,
            }
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", default="aer_simulator")
    parser.add_argument("-n", "--jobs", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--poll-interval", type=float, default=0.002)
    parser.add_argument("--seed-history", type=int, default=0, help="finished jobs inserted with SQL first")
    args = parser.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="qruntime-trip-"))
    stack = BenchStack(args.backend, 50, log_dir, seed_history=args.seed_history)
    try:
        stack.up_without_executor()
        stack.start("executor", "--backend", args.backend)
        with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=120) as client:
            for _ in range(args.warmup):
                one_job(client, args.backend, 0.05)
            t0, c0 = counters_now(stack.dsn)
            groups = process_groups(stack)
            cpu0 = cpu_now(groups)
            started = time.monotonic()
            trips = [one_job(client, args.backend, args.poll_interval) for _ in range(args.jobs)]
            busy = time.monotonic() - started
            cpu1 = cpu_now(groups)
            t1, c1 = counters_now(stack.dsn)
            time.sleep(busy)  # an idle interval as long as the jobs took
            t2, c2 = counters_now(stack.dsn)
        asyncio.run(server_times(stack.dsn, trips))
        per_job = {}
        for key in c0:
            worked = c1[key] - c0[key]
            idle = (c2[key] - c1[key]) * (t1 - t0) / (t2 - t1)  # the same background, over the same time
            per_job[key] = (worked - idle) / len(trips)
    finally:
        stack.down()
    total = statistics.median(t.total for t in trips) * 1000
    print(
        f"one job's trip on {args.backend}: median of {len(trips)} sequential jobs, polling every "
        f"{args.poll_interval * 1000:g} ms, {args.seed_history} finished jobs of history; "
        f"submit -> final seen {total:.1f} ms"
    )
    for hop in HOPS:
        values = [t.hops[hop] * 1000 for t in trips]
        print(
            f"  {hop:18}{statistics.median(values):8.1f} ms   (min {min(values):.1f}, max {max(values):.1f})"
        )
    print(f"status polls per job: {statistics.mean(t.polls for t in trips):.1f}")
    print(
        "database work per job (the background of an idle interval as long subtracted): "
        + ", ".join(f"{key.replace('_', ' ')} {value:.1f}" for key, value in per_job.items())
    )
    print(
        "CPU per job (ms, while the jobs ran; PostgreSQL and RabbitMQ are the whole servers): "
        + ", ".join(f"{name} {(cpu1[name] - cpu0[name]) / len(trips) * 1000:.1f}" for name in cpu0)
        + f"; total {sum(cpu1[n] - cpu0[n] for n in cpu0) / len(trips) * 1000:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
