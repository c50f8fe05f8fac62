"""Does a flood of huge-register submissions hurt anyone else? (issue 12's measurement)

Starts its own stack (own database and broker namespace, an api and a scheduler; no executor is
needed, nothing is accepted). A victim process calls `GET /api/v1/jobs` in a loop with its own key
while an attacker sends `qreg q[100000000]` sampler jobs (the 150-byte request that grew the api to
16 GB before) with another key, 100 at a time:

* burst: 100 concurrent requests, all answered, then a pause; repeated (--bursts);
* sustained: 100 clients each sending again as soon as answered, for --seconds.

Prints the victim's p50/p95 latency idle and under each attack, the attack's throughput, and the
resident memory of the api process alone and with its parse workers (idle, peak).

    .venv/bin/python bench/hostile_registers.py
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.stack import Stack, sampler_job  # noqa: E402

ATTACK = sampler_job("aer_simulator", "OPENQASM 2.0;\nqreg q[100000000];\n", 1)


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class MemoryWatch(threading.Thread):
    """Samples the api's RSS (alone, and with its parse workers) every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_api = self.peak_all = 0
        self.stop = threading.Event()

    def sample(self) -> tuple[int, int]:
        api = rss_kib(self.pid)
        return api, api + sum(rss_kib(child) for child in descendants(self.pid))

    def run(self) -> None:
        while not self.stop.is_set():
            api, total = self.sample()
            self.peak_api, self.peak_all = max(self.peak_api, api), max(self.peak_all, total)
            time.sleep(0.05)


def victim(
    url: str, headers: dict[str, str], stop: multiprocessing.synchronize.Event, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    samples = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        while not stop.is_set():
            started = time.monotonic()
            response = client.get("/api/v1/jobs", params={"limit": 10})
            samples.append((started, time.monotonic() - started, response.status_code))
            time.sleep(0.01)
    out.put(samples)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def attack_once(client: httpx.AsyncClient) -> int:
    """The status of one attack request; 0 when the connection failed (counted, not fatal)."""
    try:
        return (await client.post("/api/v1/jobs", json=ATTACK)).status_code
    except httpx.HTTPError as exc:
        FAILURES.append(repr(exc))
        return 0


FAILURES: list[str] = []


async def attack_burst(client: httpx.AsyncClient, size: int) -> list[int]:
    return list(await asyncio.gather(*(attack_once(client) for _ in range(size))))


async def attack_sustained(client: httpx.AsyncClient, clients: int, seconds: float) -> list[int]:
    statuses: list[int] = []
    deadline = time.monotonic() + seconds

    async def one() -> None:
        while time.monotonic() < deadline:
            statuses.append(await attack_once(client))

    await asyncio.gather(*(one() for _ in range(clients)))
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the sustained attack")
    parser.add_argument("--idle-seconds", type=float, default=8.0)
    args = parser.parse_args()

    stack = Stack(backends=["aer_simulator"])
    try:
        stack.migrate()
        stack.add_account("victim", "lab-v")
        stack.add_account("attacker", "lab-x")
        stack.start_scheduler()
        stack.start_api()
        api_pid = stack.processes["api"].pid
        print(f"stack logs: {stack.log_dir}", flush=True)
        headers = {
            name: {
                "Authorization": f"Bearer {stack.token(name)}",
                "Service-CRN": stack.accounts[name].instance_crn,
            }
            for name in ("victim", "attacker")
        }
        # A few of the victim's own jobs to list.
        with httpx.Client(base_url=stack.url, headers=headers["victim"], timeout=60) as client:
            for _ in range(10):
                assert client.post("/api/v1/jobs", json=sampler_job("aer_simulator")).status_code == 200
        time.sleep(2)
        watch = MemoryWatch(api_pid)
        idle_api, idle_all = watch.sample()

        stop = multiprocessing.Event()
        out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        measuring = multiprocessing.Process(target=victim, args=(stack.url, headers["victim"], stop, out))
        measuring.start()
        time.sleep(1.0)
        idle_window = (time.monotonic(), time.monotonic() + args.idle_seconds)
        time.sleep(args.idle_seconds)

        watch.start()
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)

        async def attacks() -> tuple[list[tuple[float, float]], list[int], tuple[float, float], list[int]]:
            async with httpx.AsyncClient(
                base_url=stack.url, headers=headers["attacker"], timeout=120, limits=limits
            ) as client:
                windows, burst_statuses = [], []
                for _ in range(args.bursts):
                    started = time.monotonic()
                    burst_statuses += await attack_burst(client, args.concurrency)
                    windows.append((started, time.monotonic()))
                    await asyncio.sleep(1.0)
                started = time.monotonic()
                sustained = await attack_sustained(client, args.concurrency, args.seconds)
                return windows, burst_statuses, (started, time.monotonic()), sustained

        windows, burst_statuses, sustained_window, sustained_statuses = asyncio.run(attacks())
        time.sleep(0.5)
        stop.set()
        samples = out.get(timeout=60)
        measuring.join(timeout=30)
        watch.stop.set()
        watch.join()

        def during(spans: list[tuple[float, float]]) -> list[float]:
            return [s[1] for s in samples if any(a <= s[0] <= b for a, b in spans)]

        idle = during([idle_window])
        burst = during(windows)
        sustained = during([sustained_window])
        victim_errors = [s for s in samples if s[2] != 200]
        refused = sum(1 for s in burst_statuses + sustained_statuses if s == 400)
        sustained_rate = len(sustained_statuses) / (sustained_window[1] - sustained_window[0])

        print(
            f"qruntime hostile-register bench: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        print(
            f"attack: sampler job with 'qreg q[100000000];' ({len(str(ATTACK))} bytes of JSON), {args.concurrency} concurrent"
        )
        print(
            f"attack requests: {len(burst_statuses) + len(sustained_statuses)}, refused with 400: {refused}, "
            f"connection errors: {len(FAILURES)}; victim errors: {len(victim_errors)}"
        )
        print(
            f"{'victim GET /api/v1/jobs':<34} {'samples':>8} {'p50 ms':>8} {'p95 ms':>8} {'p50 / idle':>10}"
        )
        base = statistics.median(idle)
        for name, values in (
            ("idle", idle),
            (f"during {args.bursts} bursts of {args.concurrency}", burst),
            (f"sustained {args.concurrency} clients", sustained),
        ):
            p50 = statistics.median(values) if values else float("nan")
            print(
                f"{name:<34} {len(values):>8} {p50 * 1000:>8.1f} {percentile(values, 0.95) * 1000:>8.1f} {p50 / base:>9.2f}x"
            )
        print(f"sustained attack throughput: {sustained_rate:.0f} refusals/s")
        print(
            f"api RSS (MiB): idle {idle_api / 1024:.0f}, peak {watch.peak_api / 1024:.0f} (+{(watch.peak_api - idle_api) / 1024:.0f})"
        )
        print(
            f"api + parse workers RSS (MiB): idle {idle_all / 1024:.0f}, peak {watch.peak_all / 1024:.0f} (+{(watch.peak_all - idle_all) / 1024:.0f})"
        )
    finally:
        stack.destroy()


if __name__ == "__main__":
    main()
