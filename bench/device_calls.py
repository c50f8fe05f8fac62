"""What one simulator call costs on a fake device, before and after the executor prepares the
device's simulators once (services/executor/simulators.py, architecture.md decision 36).

For each device: a one-qubit measurement (10 shots) on a plain `AerSimulator.from_backend` (what a
call cost before) and on the executor's prepared simulator; then an estimator job (a 2-qubit ansatz,
5-term Hamiltonian, precision 0.02) through the executor's own estimator path at resilience levels
0 and 1, against the same path on a plain simulator that `run_quantum_program` copies per call and
that simulates every qubit of the device (n/a beyond 16 qubits: it never finishes). Prints medians
in ms. (Seeded estimates are not the same both ways since the executor simulates only the qubits a
pub uses; tests/unit/test_estimator_qubits.py compares the two as distributions.)

    .venv/bin/python bench/device_calls.py
    .venv/bin/python bench/device_calls.py --devices fake_manila --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.executor.estimation import estimate
from services.executor.simulation import SimulatorRuntime

# Beyond this many qubits the plain simulator's estimator job is not timed (it never finishes).
MAX_WHOLE_DEVICE_QUBITS = 16
HAMILTONIAN = SparsePauliOp.from_list(
    [("II", -1.05), ("IZ", 0.39), ("ZI", -0.39), ("ZZ", -0.011), ("XX", 0.18)]
)


def median_ms(call: Callable[[], Any], repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def estimator_params(runtime: SimulatorRuntime, level: int) -> dict[str, Any]:
    ansatz = efficient_su2(2, reps=1)
    isa = generate_preset_pass_manager(optimization_level=1, backend=runtime.device).run(ansatz)
    values = np.linspace(-1.0, 1.0, ansatz.num_parameters)
    options = {"default_precision": 0.02, "seed_estimator": 5}
    return {
        "pubs": [(isa, HAMILTONIAN.apply_layout(isa.layout), values, None)],
        "options": options,
        "version": 2,
        "resilience_level": level,
    }


def device_row(name: str, repeats: int) -> str:
    runtime = SimulatorRuntime(name)
    plain = AerSimulator.from_backend(runtime.device, max_parallel_threads=1)
    one = QuantumCircuit(1, 1)
    one.measure(0, 0)
    call_plain = median_ms(lambda: plain.run(one, shots=10).result(), repeats)
    call_ours = median_ms(lambda: runtime.simulator.run(one, shots=10).result(), repeats)
    row = [f"{name:17s} | {call_plain:8.1f} / {call_ours:6.1f} ms"]
    for level in (0, 1):
        params = estimator_params(runtime, level)
        pub = params["pubs"][0]

        def ours(params: dict[str, Any] = params) -> Any:
            return runtime._estimate(params, params["options"])

        def before(params: dict[str, Any] = params, pub: Any = pub) -> Any:
            return estimate(plain, runtime.device, [pub], params, [])

        if runtime.device.num_qubits > MAX_WHOLE_DEVICE_QUBITS:
            # On the plain simulator the sampling program measures every qubit of the ISA circuit:
            # a statevector of the whole device, which never finishes.
            row.append(f"{'n/a':>8s} / {median_ms(ours, max(2, repeats // (1 + level * 2))):6.1f} ms")
            continue
        times = max(2, repeats // (1 + level * 2))
        row.append(f"{median_ms(before, times):8.1f} / {median_ms(ours, times):6.1f} ms")
    return " | ".join(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", default="fake_manila,fake_kolkata,fake_sherbrooke")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        "device            | one-qubit call: plain / prepared | estimator job, level 0: plain / prepared"
        " | level 1: plain / prepared"
    )
    for name in args.devices.split(","):
        print(device_row(name, args.repeats), flush=True)


if __name__ == "__main__":
    main()
