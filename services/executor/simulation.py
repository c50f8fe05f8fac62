"""What runs inside the executor's child process: the warm simulator of one backend.

The noise model and the transpiler pass manager are built once when the child starts, never per
job. Circuits that are not already ISA for the backend (e.g. OpenQASM from curl users) are
transpiled with that pass manager; ISA circuits from the official client run as sent.
"""

import json
import warnings
from collections.abc import Callable
from typing import Any

from qiskit import QuantumCircuit
from qiskit.primitives.containers.observables_array import ObservablesArray
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import EstimatorV2, SamplerV2
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder
from qiskit_ibm_runtime.utils.utils import is_isa_circuit

from shared.backends import AER_SIMULATOR, fake_device
from shared.runner import runner_results


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
        runner = self._programs.get(program_id)
        if runner is None:
            raise ProgramError(f"program {program_id} is not supported by this executor")
        params: dict[str, Any] = json.loads(params_text, cls=RuntimeDecoder)
        options = params.get("options") or {}
        try:
            result = runner(params, options)
        except ProgramError:
            raise
        except Exception as exc:
            raise ProgramError(f"the simulator refused the job: {' '.join(str(exc).split())[:500]}") from exc
        return json.dumps(result, cls=RuntimeEncoder)

    @property
    def _programs(self) -> dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]]:
        return {
            "sampler": self._sample,
            "estimator": self._estimate,
            "runner": self._run_programs,
            "executor": self._run_quantum_program,
        }

    @staticmethod
    def _seed(options: dict[str, Any]) -> int | None:
        seed = (options.get("simulator") or {}).get("seed_simulator")
        return None if seed is None else int(seed)

    def _sample(self, params: dict[str, Any], options: dict[str, Any]) -> Any:
        isa_pubs = [(self._isa(circuit), values, shots) for circuit, values, shots in params["pubs"]]
        sampler = SamplerV2.from_backend(self.simulator, seed=self._seed(options))
        return sampler.run(isa_pubs).result()

    def _run_programs(self, params: dict[str, Any], options: dict[str, Any]) -> Any:
        """RUNNER: the deployment's programs sampled in one call, results as hex counts and probabilities."""
        result = self._sample(params, options)
        pubs = params["pubs"]
        return runner_results(
            circuits=[pub[0] for pub in pubs],
            data_bins=[pub_result.data for pub_result in result],
            shots=[pub[2] for pub in pubs],
            program_ids=list(params["program_ids"]),
        )

    def _run_quantum_program(self, params: dict[str, Any], options: dict[str, Any]) -> Any:
        """The `executor` program, run with the pieces qiskit-ibm-runtime ships for local testing; the
        result goes back in the versioned result schema the client post-processes."""
        from ibm_quantum_schemas.common.tensor import CompressedTensorModel
        from ibm_quantum_schemas.executor.version_2_0.models import (
            ItemMetadataModel,
            MetadataModel,
            ParamsModel,
            QuantumProgramResultItemModel,
            QuantumProgramResultModel,
        )
        from qiskit_ibm_runtime.fake_provider.executor.run_quantum_program import run_quantum_program
        from qiskit_ibm_runtime.options_models.simulator import SimulatorOptions
        from qiskit_ibm_runtime.quantum_program.converters.converters_2_0 import quantum_program_from_2_0
        from samplomatic.quantum_program import SamplexItem

        model = ParamsModel.model_validate(params)
        program, _ = quantum_program_from_2_0(model)
        for item in program.items:
            if isinstance(item, SamplexItem):
                item.samplex.finalize()  # deserialised samplexes must be finalised before sampling
        result = run_quantum_program(self.simulator, program, SimulatorOptions())
        document = QuantumProgramResultModel(
            data=[
                QuantumProgramResultItemModel(
                    results={name: CompressedTensorModel.from_numpy(value) for name, value in item.items()},
                    metadata=ItemMetadataModel(),
                )
                for item in result
            ],
            metadata=MetadataModel(chunk_timing=[]),
            passthrough_data=model.quantum_program.passthrough_data,
            semantic_role=model.quantum_program.semantic_role,
        )
        return document.model_dump(mode="json")

    def _estimate(self, params: dict[str, Any], options: dict[str, Any]) -> Any:
        isa_pubs = []
        for circuit, observables, values, precision in params["pubs"]:
            isa = self._isa(circuit)
            # A transpiled circuit moved its qubits; the observables must follow the layout.
            laid_out = ObservablesArray.coerce(observables)
            if isa is not circuit and isa.layout is not None:
                laid_out = laid_out.apply_layout(isa.layout, isa.num_qubits)
            isa_pubs.append((isa, laid_out, values, precision))
        estimator_options: dict[str, Any] = {}
        if options.get("default_precision") is not None:
            estimator_options["default_precision"] = float(options["default_precision"])
        seed = (
            self._seed(options) if options.get("seed_estimator") is None else int(options["seed_estimator"])
        )
        if seed is not None:
            estimator_options["run_options"] = {"seed_simulator": seed}
        estimator = EstimatorV2.from_backend(self.simulator, options=estimator_options)
        return estimator.run(isa_pubs).result()
