"""How many points per job a sequence's scan should use: a 200-point Rabi scan on fake_manila, timed
from launch to FINISHED, for several settings of QRUNTIME_EXPERIMENT_POINTS_PER_JOB.

For each setting this script starts its own stack (own database, broker namespace and port, as the
test suite does), warms the executor up with a 2-point scan, then launches the 200-point scan
--repeat times and reports the median launch-to-finished time, the launch request's own time and
the largest deviation of P(1) from sin^2(theta/2) (a check that the data follow the angle).

    .venv/bin/python bench/experiment_scan.py                      # 200, 50 and 10 points per job
    .venv/bin/python bench/experiment_scan.py --per-job 200 100 --points 1000
"""

import argparse
import math
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.stack import Stack  # noqa: E402

API = "/api/v1/experiments/"
RX_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta;
qubit[1] q;
bit[1] c;
rx(theta) q[0];
c[0] = measure q[0];
"""


def body(points: int, shots: int) -> dict[str, object]:
    return {
        "backend": "fake_manila",
        "circuit": RX_QASM3,
        "shots": shots,
        "iteration": {
            "steps": [
                {
                    "linspace": {
                        "variable": "theta",
                        "start": "0",
                        "stop": "pi",
                        "num": points,
                        "steps": [{"execute": {}}],
                    }
                }
            ]
        },
    }


def run_scan(stack: Stack, points: int, shots: int) -> tuple[float, float, float, int]:
    """(launch-to-finished s, launch request s, worst |P(1) - ideal|, jobs)"""
    path = f"bench/{uuid.uuid4().hex[:8]}"
    with stack.client() as client:
        assert client.put(f"{API}sequences/{path}", json=body(points, shots)).status_code == 201
        started = time.monotonic()
        launched = client.post(f"{API}sequences/{path}/launch")
        launch_seconds = time.monotonic() - started
        assert launched.status_code == 200, launched.text
        while True:
            view = client.get(f"{API}sequences/{path}").json()
            if view["state"] not in ("preparing", "running"):
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        assert view["state"] == "finished", view
        found = client.get(f"{API}sequences/{path}/points", params={"limit": points}).json()["points"]
    worst = max(
        abs(p["data"]["counts"].get("1", 0) / shots - math.sin(p["parameters"]["theta"] / 2) ** 2)
        for p in found
    )
    assert len(found) == points
    return elapsed, launch_seconds, worst, len(view["jobs"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-job", type=int, nargs="+", default=[200, 50, 10])
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{platform.system()} {platform.machine()}, Python {platform.python_version()}")
    print(f"{args.points}-point scan on fake_manila, {args.shots} shots per point, median of {args.repeat}")
    print("| points per job | jobs | launch to finished (s) | launch request (s) | worst abs(P(1) - ideal) |")
    print("| --- | --- | --- | --- | --- |")
    for per_job in args.per_job:
        stack = Stack(
            backends=["fake_manila"], settings_env={"QRUNTIME_EXPERIMENT_POINTS_PER_JOB": str(per_job)}
        )
        try:
            stack.start_all()
            run_scan(stack, 2, args.shots)  # warm-up: the executor's child and the api's imports
            runs = [run_scan(stack, args.points, args.shots) for _ in range(args.repeat)]
        finally:
            stack.destroy()
        elapsed = statistics.median(r[0] for r in runs)
        launch = statistics.median(r[1] for r in runs)
        worst = max(r[2] for r in runs)
        print(f"| {per_job} | {runs[0][3]} | {elapsed:.2f} | {launch:.2f} | {worst:.3f} |", flush=True)


if __name__ == "__main__":
    main()
