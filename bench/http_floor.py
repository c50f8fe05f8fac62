"""The HTTP floor of this machine: requests per second that the api's own stack answers when it does
no work at all, asked by the burst row's client (16 threads, each on one keep-alive connection of
http.client).

bench/pipeline.py's burst row needs one POST, a few status polls and one result GET per job. This
bench serves a FastAPI app with two routes that answer at once (a POST that reads its JSON body and
a GET of a small JSON document) under uvicorn, as `qruntime api` does (same uvicorn and FastAPI
versions, one process, uvloop and httptools when installed), and drives it from 16 client threads
exactly as the burst does. Requests per second here are an upper bound for the api: every figure of
the burst row divided by the requests it makes per job must stay below it, on the same cores, while
the scheduler, the executor, PostgreSQL and RabbitMQ also need them. The client's own CPU per
request is printed too: on a 2-core machine the burst's client shares the cores with the server.

    .venv/bin/python bench/http_floor.py            # 16 threads x 500 requests
    .venv/bin/python bench/http_floor.py --requests 200
    .venv/bin/python bench/http_floor.py --client httpx    # the burst's client until the fourteenth round
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import LeanClient
from trip import Group, cpu_now, run_timed

APP = """
from fastapi import FastAPI, Request
app = FastAPI()
VIEW = {"id": "j" * 20, "backend": "aer_simulator", "state": {"status": "Completed", "reason": None}}

@app.post("/api/v1/jobs")
async def submit(request: Request) -> dict[str, str]:
    await request.json()
    return {"id": "j" * 20, "backend": "aer_simulator"}

@app.get("/api/v1/jobs/{job_id}")
async def view(job_id: str) -> dict[str, object]:
    return VIEW
"""

BODY = {
    "program_id": "sampler",
    "backend": "aer_simulator",
    "params": {
        "pubs": [["OPENQASM 2.0; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;", None, 1000]]
    },
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--requests", type=int, default=500, help="requests per thread")
    parser.add_argument(
        "--client",
        choices=("http.client", "httpx"),
        default="http.client",
        help="the burst's client (default), or httpx, which the burst used until the fourteenth round",
    )
    args = parser.parse_args(argv)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            APP + f"\nimport uvicorn\nuvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning')",
        ],
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/api/v1/jobs/x").raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

        def client(count: int) -> None:
            if args.client == "httpx":
                with httpx.Client(base_url=url) as http:
                    for i in range(count):
                        if i % 4 == 0:
                            http.post("/api/v1/jobs", json=BODY).raise_for_status()
                        else:
                            http.get("/api/v1/jobs/x", params={"exclude_params": "true"}).json()
                return
            lean = LeanClient(url, {}, timeout=60)
            body = json.dumps(BODY).encode()
            try:
                for i in range(count):
                    if i % 4 == 0:
                        status, _ = lean.request("POST", "/api/v1/jobs", body)
                        assert status == 200, status
                    else:
                        json.loads(lean.request("GET", "/api/v1/jobs/x?exclude_params=true")[1])
            finally:
                lean.close()

        threads = [threading.Thread(target=client, args=(args.requests,)) for _ in range(args.threads)]
        groups: dict[str, Group] = {"server": ("tree", server.pid)}
        before = cpu_now(groups)
        wall = run_timed(threads)
        after = cpu_now(groups)
        used = {name: after[name] - before[name] for name in after}
        server_used, client_used = used["server"], used["client (this bench)"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    total = args.threads * args.requests
    print(
        f"HTTP floor, {args.threads} {args.client} threads x {args.requests} requests (1 POST : 3 GET), "
        f"load average {os.getloadavg()[0]:.2f}: {total / wall:.0f} requests/s; "
        f"CPU per request: server {server_used / total * 1e6:.0f} us, client {client_used / total * 1e6:.0f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
