"""End-to-end pipeline benchmark: qruntime (api -> scheduler -> executor -> result) against qiskit-aer direct.

Submits N single-circuit Bell sampler jobs (OpenQASM 2 text, SHOTS shots each) to a running qruntime
stack from C concurrent clients. Each client submits a job, polls its status every --poll-interval
seconds until it is final, fetches the result, decodes it with qiskit-ibm-runtime's RuntimeDecoder
and checks that the counts add up to the shots. Then the same N circuits run in this process on
qiskit-aer's SamplerV2 (the simulator is built and the circuit transpiled once, outside the timed loop;
one job = one `sampler.run(...).result()` call, one after the other).

Reported for both: jobs/s (successful jobs over the wall time from the first submit to the last
result), p50/p95/p99 per-job latency (submit to validated result), and the ratios
direct/qruntime throughput and qruntime/direct p50 latency. For qruntime also the medians of the
server-side queue wait (created -> started) and run time (started -> finished) and polls per job.

Run it against the stack of `make run`:

    make run                              # terminal 1: serves http://127.0.0.1:8000
    .venv/bin/python bench/pipeline.py    # terminal 2: 200 jobs, 8 clients, aer_simulator

Options: --url, --backend (aer_simulator or a fake device the stack serves, e.g. fake_manila),
-n/--jobs, -c/--concurrency, --shots, --poll-interval, --warmup (jobs run first and not counted, on
both sides), --timeout (per job), --json (the human report goes to stderr and one JSON summary to
stdout). The exit status is 1 when any job failed, 2 when the stack cannot be reached or every warm-up job
fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

import httpx
from qiskit import qasm2
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import SamplerV2
from qiskit_ibm_runtime import RuntimeDecoder
from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

BELL_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0],q[1];
measure q[0] -> c[0];
measure q[1] -> c[1];
"""

FINAL_STATUSES = frozenset({"Completed", "Failed", "Cancelled"})
MAX_ERROR_SAMPLES = 5


class StackError(Exception):
    """The qruntime stack cannot run the benchmark at all (unreachable, or every warm-up job failed)."""


@dataclass
class Outcome:
    """One job as a client saw it. Times are time.perf_counter() seconds."""

    ok: bool
    start: float
    end: float
    error: str | None = None
    polls: int = 0
    queued_s: float | None = None  # server: created -> started
    run_s: float | None = None  # server: started -> finished

    @property
    def latency_s(self) -> float:
        return self.end - self.start


@dataclass
class PhaseStats:
    name: str
    jobs: int
    ok: int
    wall_s: float
    latencies_s: list[float]
    errors: list[str] = field(default_factory=list)
    extra: dict[str, float | None] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.jobs - self.ok

    @property
    def jobs_per_s(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float | None:
        value = percentile(self.latencies_s, q)
        return None if value is None else value * 1000.0

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_s
        return {
            "jobs": self.jobs,
            "ok": self.ok,
            "failed": self.failed,
            "wall_s": round(self.wall_s, 4),
            "jobs_per_s": round(self.jobs_per_s, 3),
            "latency_ms": {
                "p50": _round(self.percentile_ms(50)),
                "p95": _round(self.percentile_ms(95)),
                "p99": _round(self.percentile_ms(99)),
                "mean": _round(sum(lat) / len(lat) * 1000.0 if lat else None),
                "min": _round(min(lat) * 1000.0 if lat else None),
                "max": _round(max(lat) * 1000.0 if lat else None),
            },
            "errors": self.errors,
            **{key: _round(value) for key, value in self.extra.items()},
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float | None:
    return percentile(values, 50)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _server_seconds(view: dict[str, Any], start_key: str, end_key: str) -> float | None:
    start, end = view.get(start_key), view.get(end_key)
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def check_counts(result: Any, shots: int) -> str | None:
    """None when the first pub's counts of register `c` add up to the shots, else what is wrong."""
    counts = result[0].data.c.get_counts()
    total = sum(counts.values())
    return None if total == shots else f"counts add up to {total}, not {shots}: {counts}"


# --------------------------------------------------------------------------------------------- qruntime


@dataclass(frozen=True)
class Config:
    url: str
    backend: str
    jobs: int
    concurrency: int
    shots: int
    poll_interval: float
    warmup: int
    timeout: float


async def run_one_job(client: httpx.AsyncClient, cfg: Config) -> Outcome:
    """Submit one Bell job, poll it to a final state and validate its result."""
    body = {
        "program_id": "sampler",
        "backend": cfg.backend,
        "params": {"pubs": [[BELL_QASM2, None, cfg.shots]], "version": 2},
    }
    start = time.perf_counter()
    outcome = Outcome(ok=False, start=start, end=start)
    job_id: str | None = None
    try:
        response = await client.post("/api/v1/jobs", json=body)
        response.raise_for_status()
        job_id = response.json()["id"]
        deadline = start + cfg.timeout
        while True:
            response = await client.get(f"/api/v1/jobs/{job_id}", params={"exclude_params": "true"})
            response.raise_for_status()
            outcome.polls += 1
            view = response.json()
            status = view["state"]["status"]
            if status in FINAL_STATUSES:
                break
            if time.perf_counter() > deadline:
                outcome.error = f"timed out after {cfg.timeout:g} s in state {status}"
                await _cancel_quietly(client, job_id)
                return outcome
            await asyncio.sleep(cfg.poll_interval)
        outcome.queued_s = _server_seconds(view, "created", "started")
        outcome.run_s = _server_seconds(view, "started", "finished")
        response = await client.get(f"/api/v1/jobs/{job_id}/results")
        response.raise_for_status()
        if status != "Completed":
            outcome.error = f"job {status}: {_short(response.text)}"
            return outcome
        result = json.loads(response.text, cls=RuntimeDecoder)
        outcome.error = check_counts(result, cfg.shots)
        outcome.ok = outcome.error is None
    except httpx.HTTPStatusError as exc:
        where = exc.request.url.path
        outcome.error = f"HTTP {exc.response.status_code} on {where}: {_short(exc.response.text)}"
    except (httpx.HTTPError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        outcome.error = f"{type(exc).__name__}: {_short(str(exc))}"
    finally:
        outcome.end = time.perf_counter()
    return outcome


async def _cancel_quietly(client: httpx.AsyncClient, job_id: str) -> None:
    try:
        await client.post(f"/api/v1/jobs/{job_id}/cancel")
    except httpx.HTTPError:
        pass


async def run_jobs(client: httpx.AsyncClient, cfg: Config, count: int) -> list[Outcome]:
    """Run `count` jobs from `cfg.concurrency` worker tasks, each doing one job at a time."""
    pending = iter(range(count))
    outcomes: list[Outcome] = []

    async def worker() -> None:
        for _ in pending:  # one shared iterator: each index goes to exactly one worker
            outcomes.append(await run_one_job(client, cfg))

    await asyncio.gather(*(worker() for _ in range(min(cfg.concurrency, count))))
    return outcomes


def phase_stats(name: str, outcomes: list[Outcome]) -> PhaseStats:
    good = [o for o in outcomes if o.ok]
    wall = max(o.end for o in outcomes) - min(o.start for o in outcomes) if outcomes else 0.0
    errors: list[str] = []
    for o in outcomes:
        if o.error and o.error not in errors and len(errors) < MAX_ERROR_SAMPLES:
            errors.append(o.error)
    return PhaseStats(
        name=name,
        jobs=len(outcomes),
        ok=len(good),
        wall_s=wall,
        latencies_s=[o.latency_s for o in good],
        errors=errors,
    )


def dev_api_key(path: Path = Path(".qruntime-dev.env")) -> str | None:
    """The key `make run`'s development bootstrap keeps in .qruntime-dev.env."""
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("QRUNTIME_DEV_API_KEY="):
            return line.split("=", 1)[1].strip()
    return None


async def access_token(client: httpx.AsyncClient, api_key: str) -> str:
    """Exchange the API key for a bearer token, as the official client does."""
    response = await client.post(
        "/identity/token", data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": api_key}
    )
    if response.status_code != 200:
        raise StackError(f"the API key was refused ({response.status_code}): {response.text[:200]}")
    return str(response.json()["access_token"])


async def qruntime_phase(cfg: Config, api_key: str) -> PhaseStats:
    limits = httpx.Limits(max_connections=cfg.concurrency + 2, max_keepalive_connections=cfg.concurrency + 2)
    async with httpx.AsyncClient(base_url=cfg.url, timeout=30.0, limits=limits) as client:
        try:
            response = await client.get("/healthz")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise StackError(f"cannot reach qruntime at {cfg.url} ({exc!r}); is `make run` up?") from exc
        client.headers["Authorization"] = f"Bearer {await access_token(client, api_key)}"
        if cfg.warmup:
            warm = await run_jobs(client, cfg, cfg.warmup)
            if not any(o.ok for o in warm):
                raise StackError(f"every warm-up job failed, e.g. {warm[0].error}")
        outcomes = await run_jobs(client, cfg, cfg.jobs)
    stats = phase_stats("qruntime", outcomes)
    good = [o for o in outcomes if o.ok]
    stats.extra = {
        "server_queued_p50_ms": _ms(median([o.queued_s for o in good if o.queued_s is not None])),
        "server_run_p50_ms": _ms(median([o.run_s for o in good if o.run_s is not None])),
        "polls_per_job_mean": sum(o.polls for o in outcomes) / len(outcomes) if outcomes else None,
    }
    return stats


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


# ----------------------------------------------------------------------------------------------- direct


def direct_phase(cfg: Config) -> PhaseStats:
    """The same circuits on qiskit-aer in this process, one sampler.run call per job, sequentially."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cfg.backend.startswith("fake_"):
            simulator = AerSimulator.from_backend(FakeProviderForBackendV2().backend(cfg.backend))
        else:
            simulator = AerSimulator()
        circuit = qasm2.loads(BELL_QASM2, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
        isa = generate_preset_pass_manager(optimization_level=1, backend=simulator).run(circuit)
        sampler = SamplerV2.from_backend(simulator)

    def one_job() -> Outcome:
        start = time.perf_counter()
        outcome = Outcome(ok=False, start=start, end=start)
        try:
            result = sampler.run([(isa, None, cfg.shots)]).result()
            outcome.end = time.perf_counter()
            outcome.error = check_counts(result, cfg.shots)
            outcome.ok = outcome.error is None
        except Exception as exc:  # the bench reports it rather than dying
            outcome.end = time.perf_counter()
            outcome.error = f"{type(exc).__name__}: {_short(str(exc))}"
        return outcome

    for _ in range(cfg.warmup):
        one_job()
    return phase_stats("direct", [one_job() for _ in range(cfg.jobs)])


# ----------------------------------------------------------------------------------------------- report


def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in ("qiskit", "qiskit-aer", "qiskit-ibm-runtime", "httpx"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu_count": os.cpu_count(),
        "versions": versions,
    }


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def print_report(out: TextIO, env: dict[str, Any], cfg: Config, phases: list[PhaseStats]) -> None:
    versions = ", ".join(f"{name} {v}" for name, v in env["versions"].items())
    print(f"qruntime pipeline benchmark, {env['date']}", file=out)
    print(f"platform: {env['platform']} ({env['python']}), os.cpu_count()={env['cpu_count']}", file=out)
    print(f"versions: {versions}", file=out)
    print(
        f"workload: {cfg.jobs} Bell jobs x {cfg.shots} shots on {cfg.backend} (+{cfg.warmup} warm-up each); "
        f"qruntime at {cfg.url} with {cfg.concurrency} clients polling every {cfg.poll_interval:g} s; "
        "direct: sequential in-process SamplerV2",
        file=out,
    )
    columns = f"{'jobs':>6}{'failed':>8}{'jobs/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'wall s':>9}"
    print(f"{'':10}{columns}", file=out)
    for p in phases:
        print(
            f"{p.name:10}{p.jobs:>6}{p.failed:>8}{p.jobs_per_s:>10.2f}{_fmt(p.percentile_ms(50)):>10}"
            f"{_fmt(p.percentile_ms(95)):>10}{_fmt(p.percentile_ms(99)):>10}{p.wall_s:>9.2f}",
            file=out,
        )
    by_name = {p.name: p for p in phases}
    q, d = by_name.get("qruntime"), by_name.get("direct")
    if q is not None:
        print(
            f"qruntime server-side medians: queued {_fmt(q.extra.get('server_queued_p50_ms'))} ms, "
            f"run {_fmt(q.extra.get('server_run_p50_ms'))} ms; "
            f"polls/job {_fmt(q.extra.get('polls_per_job_mean'))}",
            file=out,
        )
    if q is not None and d is not None:
        throughput = _ratio(d.jobs_per_s, q.jobs_per_s)
        latency = _ratio(q.percentile_ms(50), d.percentile_ms(50))
        print(
            f"ratios: direct/qruntime throughput {_fmt(throughput, '.1f')}x, "
            f"qruntime/direct p50 latency {_fmt(latency, '.1f')}x",
            file=out,
        )
    for p in phases:
        for error in p.errors:
            print(f"{p.name} error: {error}", file=out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="qruntime base URL")
    parser.add_argument("--backend", default="aer_simulator", help="aer_simulator or a fake_* device")
    parser.add_argument("-n", "--jobs", type=int, default=200, help="jobs counted on each side")
    parser.add_argument("-c", "--concurrency", type=int, default=8, help="concurrent qruntime clients")
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=0.03, help="seconds between status polls")
    parser.add_argument("--warmup", type=int, default=5, help="jobs run first on each side, not counted")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one qruntime job may take")
    parser.add_argument("--json", action="store_true", help="report to stderr, JSON summary to stdout")
    parser.add_argument(
        "--api-key",
        default=None,
        help="qruntime API key (default: $QRUNTIME_BENCH_API_KEY, else the one make run keeps in .qruntime-dev.env)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.jobs < 1 or args.concurrency < 1 or args.shots < 1 or args.warmup < 0:
        print("--jobs, --concurrency and --shots must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    cfg = Config(
        url=args.url.rstrip("/"),
        backend=args.backend,
        jobs=args.jobs,
        concurrency=args.concurrency,
        shots=args.shots,
        poll_interval=args.poll_interval,
        warmup=args.warmup,
        timeout=args.timeout,
    )
    api_key = args.api_key or os.environ.get("QRUNTIME_BENCH_API_KEY") or dev_api_key()
    if not api_key:
        print(
            "no API key: pass --api-key, or run `make run` first (it keeps one in .qruntime-dev.env)",
            file=sys.stderr,
        )
        return 2
    env = environment()
    try:
        qruntime = asyncio.run(qruntime_phase(cfg, api_key))
    except StackError as exc:
        print(exc, file=sys.stderr)
        return 2
    direct = direct_phase(cfg)
    phases = [qruntime, direct]
    print_report(sys.stderr if args.json else sys.stdout, env, cfg, phases)
    if args.json:
        summary = {
            **env,
            "config": asdict(cfg),
            "qruntime": qruntime.summary(),
            "direct": direct.summary(),
            "ratios": {
                "direct_over_qruntime_throughput": _round(_ratio(direct.jobs_per_s, qruntime.jobs_per_s)),
                "qruntime_over_direct_p50_latency": _round(
                    _ratio(qruntime.percentile_ms(50), direct.percentile_ms(50))
                ),
            },
        }
        print(json.dumps(summary, indent=2))
    return 1 if qruntime.failed or direct.failed else 0


if __name__ == "__main__":
    sys.exit(main())
