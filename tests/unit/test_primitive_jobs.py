"""The simulator child runs primitive jobs in the calling thread (services/executor/primitive_jobs.py):
the same results, errors and states as with qiskit's own thread, and no thread started. The change is for the
whole process, so it is made in a process of its own."""

import json
import subprocess
import sys

SCRIPT = r"""
import json, threading
from qiskit import QuantumCircuit
from qiskit.providers import JobStatus
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import EstimatorV2, SamplerV2
from qiskit.quantum_info import SparsePauliOp

def bell():
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return circuit

def counts():
    return SamplerV2.from_backend(AerSimulator(), seed=7).run([bell()], shots=500).result()[0].data.meas.get_counts()

before = counts()
from services.executor.primitive_jobs import run_primitive_jobs_in_calling_thread
run_primitive_jobs_in_calling_thread()
started = []
original_start = threading.Thread.start
threading.Thread.start = lambda self: (started.append(self.name), original_start(self))[1]
after = counts()
job = SamplerV2.from_backend(AerSimulator(), seed=7).run([bell()], shots=500)
status = job.status().name
again = None
try:
    job._submit()
except Exception as exc:
    again = type(exc).__name__
circuit = QuantumCircuit(1)
circuit.h(0)
value = float(EstimatorV2().run([(circuit, SparsePauliOp("X"))]).result()[0].data.evs)
wide = QuantumCircuit(40)
wide.h(range(40))
wide.measure_all()
failing = SamplerV2.from_backend(AerSimulator(method="statevector")).run([wide], shots=10)  # too wide
try:
    failing.result()
    error = None
except Exception as exc:
    error = type(exc).__name__
print(json.dumps({"before": before, "after": after, "status": status, "again": again, "value": value,
                  "error": error, "failing_status": failing.status().name, "threads": [n for n in started if "Thread" in n or "ThreadPool" in n]}))
"""


def test_primitive_jobs_run_in_the_calling_thread_with_the_same_results_and_errors() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["after"] == seen["before"] and sum(seen["after"].values()) == 500
    assert seen["status"] == "DONE" and seen["again"] == "JobError"
    assert abs(seen["value"] - 1.0) < 1e-9
    assert seen["error"] == "AerError" and seen["failing_status"] == "ERROR"
    assert seen["threads"] == []  # qiskit's job thread was never started
