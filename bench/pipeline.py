"""qruntime against the simulator it wraps: every row of the speed table in one run, with ratios.

One command starts a stack of its own (database, broker namespace and port of its own, so it
disturbs nothing else: bench/batch_grouping.py's BenchStack; api, scheduler and one executor per
backend as separate processes) and measures, on ideal Bell circuits with 1,000 shots:

1. sequential submit -> final, p50 over --sequential jobs from one HTTP client polling every 2 ms,
   split into POST, created -> started, started -> finished and finished -> seen (medians); the
   limit is one in-process qiskit-aer SamplerV2 call (median);
2. a burst of --burst jobs from 16 client threads, each on one keep-alive connection of the
   standard library's http.client: each thread submits its share, then polls its jobs every 50 ms
   until all are final, reading each result; every result is checked once the clock has stopped.
   The limit is in-process Aer running the same circuits batched in one call;
3. a 50-job Estimator loop in a Session through the official qiskit-ibm-runtime client on
   fake_manila, against the client's local testing mode in the same run (bench/estimator_loop.py);
4. 1,000 Bell jobs in a Batch on fake_manila (bench/batch_grouping.py, grouped), on a stack of its own;
5. memory: resident set size of the api, scheduler and executors (with their simulator child
   processes) after about 1,000 jobs and after --memory-jobs jobs.

`--seed-history 200000` first inserts that many finished jobs (with results) with SQL into each
stack's database, spread over the last 20 days, so the same rows can be compared with a long
history. The machine's load (uptime) is printed with the table: on a shared machine compare ratios
from one run, not absolute figures between runs.

    .venv/bin/python bench/pipeline.py                          # the whole table
    .venv/bin/python bench/pipeline.py --seed-history 200000    # the same with a long history
    .venv/bin/python bench/pipeline.py --skip estimator,batch --memory-jobs 0   # a quicker look

Needs PostgreSQL and RabbitMQ as `make test` does. The exit status is 1 when any job failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import batch_grouping
from batch_grouping import BELL_QASM2, BenchStack
from trip import cpu_now, process_groups, process_tree, run_timed

HERE = Path(__file__).resolve().parent
FINAL = frozenset({"Completed", "Failed", "Cancelled"})
SHOTS = 1000
BACKENDS = "aer_simulator,fake_manila"


def _ts(text: str | None) -> float | None:
    return None if not text else datetime.fromisoformat(text).timestamp()


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _job_body(backend: str) -> dict[str, Any]:
    return {"program_id": "sampler", "backend": backend, "params": {"pubs": [[BELL_QASM2, None, SHOTS]]}}


def _check_counts(text: str) -> str | None:
    from qiskit_ibm_runtime import RuntimeDecoder

    counts = json.loads(text, cls=RuntimeDecoder)[0].data.c.get_counts()
    total = sum(counts.values())
    return None if total == SHOTS else f"counts add up to {total}: {counts}"


@dataclass
class Report:
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- limits


class InProcessAer:
    """The limit: the same Bell circuit on qiskit-aer's SamplerV2 in this process."""

    def __init__(self) -> None:
        from qiskit import qasm2
        from qiskit.transpiler import generate_preset_pass_manager
        from qiskit_aer import AerSimulator
        from qiskit_aer.primitives import SamplerV2

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            simulator = AerSimulator()
            circuit = qasm2.loads(BELL_QASM2, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
            self.isa = generate_preset_pass_manager(optimization_level=1, backend=simulator).run(circuit)
            self.sampler = SamplerV2.from_backend(simulator)

    def per_call_ms(self, calls: int) -> float:
        for _ in range(3):
            self.sampler.run([(self.isa, None, SHOTS)]).result()
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            self.sampler.run([(self.isa, None, SHOTS)]).result()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    def batched_per_s(self, circuits: int) -> float:
        start = time.perf_counter()
        self.sampler.run([(self.isa, None, SHOTS)] * circuits).result()
        return circuits / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------- qruntime


def sequential(stack: BenchStack, jobs: int, poll: float) -> dict[str, Any]:
    """Jobs one after the other from one client polling every `poll` seconds."""
    totals: list[float] = []
    split: dict[str, list[float]] = {
        "POST": [],
        "created -> started": [],
        "started -> finished": [],
        "seen": [],
    }
    with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=60) as client:
        for index in range(jobs + 3):  # three warm-up jobs
            posted = time.time()
            response = client.post("/api/v1/jobs", json=_job_body("aer_simulator"))
            response.raise_for_status()
            accepted = time.time()
            job_id = response.json()["id"]
            while True:
                view = client.get(f"/api/v1/jobs/{job_id}", params={"exclude_params": "true"}).json()
                if view["state"]["status"] in FINAL:
                    seen = time.time()
                    break
                time.sleep(poll)
            if index < 3:
                continue
            created, started, finished = (_ts(view[k]) for k in ("created", "started", "finished"))
            totals.append(seen - posted)
            split["POST"].append(accepted - posted)
            if created and started and finished:
                split["created -> started"].append(started - created)
                split["started -> finished"].append(finished - started)
                split["seen"].append(seen - finished)
    return {
        "p50_ms": _median(totals) * 1000 if totals else None,
        "split_ms": {k: (_median(v) or 0) * 1000 for k, v in split.items()},
    }


class LeanClient:
    """One keep-alive HTTP/1.1 connection through the standard library: the burst's client.

    On these two cores the client shares the CPU with what it measures. httpx costs about three
    times as much CPU per request as http.client (bench/http_floor.py prints it), so with httpx the
    burst measured the client's cost as much as qruntime's."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        self.headers = {**headers, "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        self.connection.request(method, path, body=body, headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.connection.close()


def burst(stack: BenchStack, jobs: int, threads: int, poll: float) -> dict[str, Any]:
    """`jobs` jobs from `threads` client threads: submit the share, then poll it to the end, reading
    each result when its job is final. Every result is checked after the clock stops: decoding it
    (qiskit-ibm-runtime's RuntimeDecoder, about 0.8 ms of CPU a result) is the client's own work, on
    its own machine in any real use, and would take it from the cores the service runs on here."""
    errors: list[str] = []
    results: list[tuple[str, bytes]] = []  # (status, body) of every final job, checked afterwards
    requests = [0]  # HTTP requests the clients made, all threads
    lock = threading.Lock()
    body = json.dumps(_job_body("aer_simulator")).encode()

    def client_thread(share: int) -> None:
        client = LeanClient(stack.url, stack.headers, timeout=120)
        got: list[tuple[str, bytes]] = []
        try:
            pending = []
            for _ in range(share):
                status, answer = client.request("POST", "/api/v1/jobs", body)
                if status != 200:
                    errors.append(f"POST {status}: {answer[:200]!r}")
                    continue
                pending.append(json.loads(answer)["id"])
            asked = len(pending)
            while pending:
                still = []
                for job_id in pending:
                    _, answer = client.request("GET", f"/api/v1/jobs/{job_id}?exclude_params=true")
                    asked += 1
                    job_status = json.loads(answer)["state"]["status"]
                    if job_status not in FINAL:
                        still.append(job_id)
                        continue
                    _, result = client.request("GET", f"/api/v1/jobs/{job_id}/results")
                    asked += 1
                    got.append((job_status, result))
                pending = still
                if pending:
                    time.sleep(poll)
        finally:
            client.close()
        with lock:
            requests[0] += asked
            results.extend(got)

    shares = [jobs // threads + (1 if i < jobs % threads else 0) for i in range(threads)]
    workers = [threading.Thread(target=client_thread, args=(share,)) for share in shares]
    groups = process_groups(stack)
    cpu_before = cpu_now(groups)
    wall = run_timed(workers)
    cpu_after = cpu_now(groups)
    done = 0
    for job_status, result in results:
        problem = _check_counts(result.decode()) if job_status == "Completed" else f"job {job_status}"
        if problem:
            errors.append(problem)
        else:
            done += 1
    return {
        "jobs": jobs,
        "ok": done,
        "wall_s": wall,
        "jobs_per_s": done / wall,
        "requests_per_job": requests[0] / jobs,
        # CPU per job, ms, by process (PostgreSQL and RabbitMQ are the whole servers).
        "cpu_ms_per_job": {name: (cpu_after[name] - cpu_before[name]) / jobs * 1000 for name in cpu_before},
        "errors": errors[:5],
    }


def estimator_loop(stack: BenchStack | None, jobs: int, resilience_level: int | None = None) -> float:
    """Seconds of bench/estimator_loop.py through the official client (stack) or local testing mode."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": tempfile.mkdtemp(prefix="qrt-bench-home-"),
    }
    if stack is not None:
        env |= {
            "IAM_URL": stack.url,
            "QISKIT_FUNCTIONS_EXPERIMENTAL": "1",
            "QISKIT_IBM_TOKEN": stack.api_key,
            "QISKIT_IBM_URL": f"{stack.url}/experimental/api/v1",
            "QISKIT_IBM_INSTANCE": stack.crn,
        }
    mode = "local" if stack is None else "qruntime"
    done = subprocess.run(
        [
            sys.executable,
            HERE / "estimator_loop.py",
            mode,
            str(jobs),
            *([] if resilience_level is None else [str(resilience_level)]),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"estimator loop ({mode}) failed: {done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def rss_mb(pid: int) -> float:
    """Resident set size of a process and its descendants (the executor's simulator child), in MB."""
    total = 0
    for one in process_tree(pid):
        try:
            status = Path(f"/proc/{one}/status").read_text()
        except OSError:
            continue  # ended since it was listed
        total += sum(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return total / 1024


def memory(stack: BenchStack) -> dict[str, float]:
    return {role: rss_mb(process.pid) for role, process in stack.roles.items()}


def wait_until_served(stack: BenchStack) -> None:
    """Run one job per backend: executors are up and warm."""
    with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=60) as client:
        for backend in BACKENDS.split(","):
            job_id = client.post("/api/v1/jobs", json=_job_body(backend)).raise_for_status().json()["id"]
            deadline = time.monotonic() + 300
            while client.get(f"/api/v1/jobs/{job_id}").json()["state"]["status"] not in FINAL:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no executor ran a job on {backend} within 300 s")
                time.sleep(0.1)


# ---------------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> Report:
    report = Report()
    skip = set(filter(None, args.skip.split(",")))
    log_dir = Path(tempfile.mkdtemp(prefix="qruntime-pipeline-"))
    report.notes.append(f"logs in {log_dir}")
    aer = InProcessAer()
    stack = BenchStack(BACKENDS, args.group_size, log_dir, seed_history=args.seed_history)
    try:
        stack.up_without_executor()
        for backend in BACKENDS.split(","):
            stack.start("executor", "--backend", backend)
        wait_until_served(stack)
        if "sequential" not in skip:
            seq = sequential(stack, args.sequential, 0.002)
            call_ms = aer.per_call_ms(args.sequential)
            report.figures["sequential"] = {**seq, "aer_call_ms": call_ms}
            split = ", ".join(f"{k} {v:.1f} ms" for k, v in seq["split_ms"].items())
            report.rows.append(
                (
                    "sequential submit -> final p50 (2 ms polling)",
                    f"{_fmt(seq['p50_ms'])} ms",
                    f"Aer {call_ms:.1f} ms/call",
                    f"{_fmt((seq['p50_ms'] or 0) - call_ms)} ms over Aer",
                    "<= Aer + 15 ms",
                )
            )
            report.notes.append(f"sequential split (medians): {split}")
        if "burst" not in skip:
            result = burst(stack, args.burst, 16, 0.05)
            batched = aer.batched_per_s(args.burst)
            report.figures["burst"] = {**result, "aer_batched_per_s": batched}
            report.rows.append(
                (
                    f"burst of {args.burst} jobs, 16 threads polling 50 ms",
                    f"{result['jobs_per_s']:.1f} jobs/s",
                    f"Aer batched {batched:.0f} circuits/s",
                    f"{batched / result['jobs_per_s']:.1f}x below Aer" if result["jobs_per_s"] else "-",
                    ">= 300 jobs/s",
                )
            )
            if result["ok"] != result["jobs"]:
                report.failures.append(
                    f"burst: {result['jobs'] - result['ok']} jobs failed: {result['errors']}"
                )
            cpu = result["cpu_ms_per_job"]
            report.notes.append(
                f"burst: {result['requests_per_job']:.2f} HTTP requests per job; CPU per job (ms): "
                + ", ".join(f"{name} {value:.1f}" for name, value in cpu.items())
                + f"; total {sum(cpu.values()):.1f}, so {os.cpu_count()} cores fully used would finish at most "
                + f"{(os.cpu_count() or 1) * 1000 / sum(cpu.values()):.0f} jobs/s"
                + " (bench/http_floor.py: the HTTP stack's own floor)"
            )
            report.figures["memory_1k"] = memory(stack)
        if "estimator" not in skip:
            served = estimator_loop(stack, args.estimator_jobs)
            unmitigated = estimator_loop(stack, args.estimator_jobs, resilience_level=0)
            local = estimator_loop(None, args.estimator_jobs)
            report.figures["estimator"] = {
                "qruntime_s": served,
                "qruntime_level0_s": unmitigated,
                "local_s": local,
            }
            report.rows.append(
                (
                    f"{args.estimator_jobs}-job Estimator session loop, official client, fake_manila",
                    f"{served:.2f} s",
                    f"local testing mode {local:.2f} s",
                    f"{served / local:.2f}x local",
                    "<= 0.5x local",
                )
            )
            # Local testing mode ignores resilience: level 0 is the like-for-like comparison.
            report.rows.append(
                (
                    "  the same at resilience_level 0 (what local mode computes)",
                    f"{unmitigated:.2f} s",
                    f"local testing mode {local:.2f} s",
                    f"{unmitigated / local:.2f}x local",
                    "<= 0.5x local",
                )
            )
        if args.memory_jobs and "burst" not in skip:
            ran = args.burst
            while ran < args.memory_jobs:
                more = min(args.burst, args.memory_jobs - ran)
                result = burst(stack, more, 16, 0.05)
                if result["ok"] != more:
                    report.failures.append(
                        f"memory run: {more - result['ok']} jobs failed: {result['errors']}"
                    )
                ran += more
            after = memory(stack)
            before = report.figures["memory_1k"]
            report.figures["memory_after"] = {"jobs": ran, "rss_mb": after}
            for role in sorted(after):
                report.notes.append(
                    f"RSS {role}: {before[role]:.0f} MB after {args.burst} jobs, {after[role]:.0f} MB after "
                    f"{ran} jobs ({(after[role] / before[role] - 1) * 100:+.1f} %)"
                )
    finally:
        stack.down()
    if "batch" not in skip:
        batch_args = argparse.Namespace(
            backend="fake_manila",
            jobs=args.batch_jobs,
            shots=SHOTS,
            concurrency=8,
            timeout=1800.0,
            seed_history=args.seed_history,
        )
        batch = batch_grouping.run_once("grouped", args.group_size, batch_args, log_dir)
        report.figures["batch"] = batch.__dict__ | {"jobs_per_s": batch.jobs_per_s}
        report.rows.append(
            (
                f"{args.batch_jobs} Bell jobs in a Batch on fake_manila",
                f"{batch.jobs_per_s:.1f} jobs/s",
                f"{batch.dispatches} dispatches",
                f"submitted at {batch.submit_per_s:.0f} jobs/s",
                ">= 150 jobs/s",
            )
        )
        if batch.completed != batch.jobs or batch.bad_results:
            report.failures.append(
                f"batch: {batch.completed}/{batch.jobs} completed, {batch.bad_results} bad"
            )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    # 200 jobs: a median of 25, taken in the stack's first seconds, moved between runs by more than
    # the 10 % that separates a long history from none.
    parser.add_argument("--sequential", type=int, default=200, help="sequential jobs (p50 and split)")
    parser.add_argument("--burst", type=int, default=1000, help="jobs in the burst")
    parser.add_argument("--estimator-jobs", type=int, default=50)
    parser.add_argument("--batch-jobs", type=int, default=1000)
    parser.add_argument(
        "--memory-jobs", type=int, default=10_000, help="jobs before the second RSS (0: skip)"
    )
    parser.add_argument("--group-size", type=int, default=50, help="QRUNTIME_MAX_GROUP_SIZE")
    parser.add_argument("--seed-history", type=int, default=0, help="finished jobs inserted with SQL first")
    parser.add_argument("--skip", default="", help="comma-separated: sequential,burst,estimator,batch")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    report = run(args)
    load_after = os.getloadavg()
    from importlib.metadata import version

    print(f"qruntime pipeline benchmark, {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(
        f"platform: {platform.platform()}, {platform.python_implementation()} {platform.python_version()}, "
        f"os.cpu_count()={os.cpu_count()}; qiskit {version('qiskit')}, qiskit-aer {version('qiskit-aer')}, "
        f"qiskit-ibm-runtime {version('qiskit-ibm-runtime')}"
    )
    print(
        f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"history: {args.seed_history} finished jobs seeded"
    )
    widths = (52, 16, 30, 22, 16)
    header = ("what", "qruntime", "the limit", "ratio", "target")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in report.rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    for note in report.notes:
        print(note)
    for failure in report.failures:
        print(f"FAILED: {failure}")
    if args.json:
        print(json.dumps(report.figures, indent=2, default=str))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
