"""qiskit-aer's threads per call on this machine: a Bell circuit (1,000 shots) alone and 50 at once,
ideal and with fake_manila's noise, with one thread (qruntime's default, QRUNTIME_SIMULATOR_THREADS=1)
and with Aer's own default (every core), optionally while another process keeps one core busy, as
the api, the scheduler and the database do beside an executor. Also checks that a seeded run gives
the same counts either way (the setting changes speed, never results). Last, a Bell call with
qiskit's job thread and in the calling thread, as the executor's simulator child makes it.

    .venv/bin/python bench/aer_threads.py
    .venv/bin/python bench/aer_threads.py --busy     # one core kept busy meanwhile
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from qiskit import QuantumCircuit, transpile
from qiskit.primitives.primitive_job import PrimitiveJob
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import SamplerV2
from qiskit_ibm_runtime.fake_provider import FakeManilaV2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from services.executor.primitive_jobs import run_primitive_jobs_in_calling_thread


def bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return circuit


def p50_ms(simulator: AerSimulator, circuits: int, repeats: int) -> float:
    circuit = transpile(bell(), simulator)
    sampler = SamplerV2.from_backend(simulator)
    for _ in range(3):
        sampler.run([circuit] * circuits, shots=1000).result()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        sampler.run([circuit] * circuits, shots=1000).result()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def job_thread_table(repeats: int) -> None:
    """A Bell call with qiskit's job thread (a new thread per `run()`) and in the calling thread, as
    the executor's simulator child runs it (services/executor/primitive_jobs.py); alternated."""
    original = PrimitiveJob._submit
    sampler = SamplerV2.from_backend(AerSimulator(max_parallel_threads=1))
    circuit = transpile(bell(), AerSimulator())
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        for index in range(2 * repeats):
            here = index % 2 == 1
            if here:
                run_primitive_jobs_in_calling_thread()
            else:
                PrimitiveJob._submit = original  # type: ignore[method-assign]
            started = time.perf_counter()
            sampler.run([circuit], shots=1000).result()
            times[here].append(time.perf_counter() - started)
    finally:
        PrimitiveJob._submit = original  # type: ignore[method-assign]
    thread, here = (statistics.median(times[key]) * 1000 for key in (False, True))
    print(
        f"a Bell call, p50 of {repeats}: {thread:.2f} ms with qiskit's job thread, {here:.2f} ms in the calling thread"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    device = FakeManilaV2()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        print(f"p50 of {args.repeats} calls, ms{' (one core kept busy)' if args.busy else ''}")
        print(f"{'simulator':<16}{'circuits':>9}{'1 thread':>11}{'Aer default':>13}")
        for circuits in (1, 50):
            for name, make in (
                ("ideal", lambda threads: AerSimulator(max_parallel_threads=threads)),
                (
                    "fake_manila",
                    lambda threads: AerSimulator.from_backend(device, max_parallel_threads=threads),
                ),
            ):
                repeats = args.repeats if circuits == 1 or name == "ideal" else max(3, args.repeats // 4)
                one, default = p50_ms(make(1), circuits, repeats), p50_ms(make(0), circuits, repeats)
                print(f"{name:<16}{circuits:>9}{one:>11.1f}{default:>13.1f}")
        same = []
        for make in (
            lambda threads: AerSimulator(max_parallel_threads=threads),
            lambda threads: AerSimulator.from_backend(device, max_parallel_threads=threads),
        ):
            circuit = transpile(bell(), make(1))
            runs = [
                SamplerV2.from_backend(make(t), seed=42).run([circuit] * 3, shots=4000).result()
                for t in (1, 0)
            ]
            same += [a.data.meas.get_counts() == b.data.meas.get_counts() for a, b in zip(*runs, strict=True)]
        print(f"seeded counts identical with 1 thread and with Aer's default: {all(same)}")
        job_thread_table(args.repeats * 10)
        return 0 if all(same) else 1
    finally:
        if hog is not None:
            hog.kill()


if __name__ == "__main__":
    sys.exit(main())
