"""The fault suite's figures: runs tests/faults (private PostgreSQL and RabbitMQ, one fault at a
time against real processes) and prints, per scenario, accepted / final / lost / wrong / failed /
duplicate / stuck jobs and the recovery seconds (from the end of the fault until the last accepted
job was final) next to the scenario's target.

    .venv/bin/python bench/faults.py              # every scenario
    .venv/bin/python bench/faults.py -k broker    # some of them (a pytest -k expression)

The exit status is pytest's (0 when every scenario held). Needs PostgreSQL 15's server binaries
(initdb, pg_ctl) and rabbitmq-server installed; it never touches the running services.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default=None, help="only the scenarios matching this pytest -k expression")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="qrt-faults-"))
    command = [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider"]
    if args.k:
        command += ["-k", args.k]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "QRUNTIME_TEST_LOGS": str(logs)})
    table = logs / "faults-table.md"
    if table.exists():
        print()
        print(table.read_text(), end="")
        print(f"(process logs in {logs})")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
