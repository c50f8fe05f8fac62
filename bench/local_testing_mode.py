"""What qiskit-ibm-runtime's local testing mode costs per job, for the README's comparison with qruntime.

Local testing mode runs the primitive in the calling process on a fake backend
(`Sampler(mode=FakeManilaV2())`): nothing is queued or stored, and sessions are no-ops. This times N
single-pub Bell sampler jobs (SHOTS shots, ISA circuit transpiled once, outside the timed loop), one
after the other, with the client-side Sampler of 0.51 and the legacy SamplerV2, and prints per-job
p50/p95 and jobs/s. Compare with bench/pipeline.py against a running qruntime.

    .venv/bin/python bench/local_testing_mode.py            # fake_manila, 30 jobs, 1000 shots
    .venv/bin/python bench/local_testing_mode.py --backend aer_simulator -n 100
"""

import argparse
import platform
import statistics
import time
import warnings
from importlib.metadata import version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="fake_manila", help="fake_manila (noisy) or aer_simulator")
    parser.add_argument("-n", "--jobs", type=int, default=30, help="jobs per primitive (default 30)")
    parser.add_argument("--shots", type=int, default=1000, help="shots per job (default 1000)")
    args = parser.parse_args()

    from qiskit import QuantumCircuit
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_aer import AerSimulator
    from qiskit_ibm_runtime import SamplerV2
    from qiskit_ibm_runtime.executor_sampler import Sampler
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    backend = FakeManilaV2() if args.backend == "fake_manila" else AerSimulator()
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(bell)
    print(
        f"local testing mode on {args.backend}: {args.jobs} Bell jobs x {args.shots} shots; Python "
        f"{platform.python_version()}, qiskit-ibm-runtime {version('qiskit-ibm-runtime')}, "
        f"qiskit-aer {version('qiskit-aer')}"
    )
    warnings.simplefilter("ignore", DeprecationWarning)
    for name, primitive in (("executor_sampler.Sampler", Sampler), ("SamplerV2 (legacy)", SamplerV2)):
        sampler = primitive(mode=backend)
        sampler.run([isa], shots=args.shots).result()  # warm-up, not counted
        seconds = []
        started = time.perf_counter()
        for _ in range(args.jobs):
            t0 = time.perf_counter()
            counts = sampler.run([isa], shots=args.shots).result()[0].data.meas.get_counts()
            seconds.append(time.perf_counter() - t0)
            assert sum(counts.values()) == args.shots
        wall = time.perf_counter() - started
        ms = sorted(s * 1000 for s in seconds)
        p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
        print(
            f"  {name:<26} p50 {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms  "
            f"{args.jobs / wall:6.1f} jobs/s"
        )


if __name__ == "__main__":
    main()
