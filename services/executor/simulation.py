"""What runs inside the executor's child process: the warm simulator of one backend.

The noise model and the transpiler pass manager are built once when the child starts, never per
job. Circuits that are not already ISA for the backend (e.g. OpenQASM from curl users) are
transpiled with that pass manager; ISA circuits from the official client run as sent.
"""

import json
import warnings
from typing import Any

from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import SamplerV2
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder
from qiskit_ibm_runtime.utils.utils import is_isa_circuit

from shared.backends import AER_SIMULATOR, fake_device


class ProgramError(Exception):
    """The job's input cannot run (reported to the user as a failed job)."""


class SimulatorRuntime:
    def __init__(self, backend_name: str) -> None:
        warnings.filterwarnings("ignore", category=UserWarning)
        if backend_name == AER_SIMULATOR:
            self.simulator = AerSimulator()
        else:
            self.simulator = AerSimulator.from_backend(fake_device(backend_name))
        self.pass_manager = generate_preset_pass_manager(optimization_level=1, backend=self.simulator)
        self.target = self.simulator.target

    def _isa(self, circuit: QuantumCircuit) -> QuantumCircuit:
        if not is_isa_circuit(circuit, self.target):
            return circuit
        return self.pass_manager.run(circuit)

    def run(self, program_id: str, params_text: str) -> str:
        if program_id != "sampler":
            raise ProgramError(f"program {program_id} is not supported by this executor")
        params: dict[str, Any] = json.loads(params_text, cls=RuntimeDecoder)
        options = params.get("options") or {}
        seed = (options.get("simulator") or {}).get("seed_simulator")
        pubs = [(self._isa(circuit), values, shots) for circuit, values, shots in params["pubs"]]
        sampler = SamplerV2.from_backend(self.simulator, seed=seed)
        try:
            result = sampler.run(pubs).result()
        except Exception as exc:
            raise ProgramError(f"the simulator refused the job: {' '.join(str(exc).split())[:500]}") from exc
        return json.dumps(result, cls=RuntimeEncoder)
