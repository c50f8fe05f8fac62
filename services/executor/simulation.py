"""What runs inside the executor's child process: the warm simulator of one backend.

The noise model and the transpiler pass manager are built once when the child starts, never per
job. Circuits that are not already ISA for the backend (e.g. OpenQASM from curl users) are
transpiled with that pass manager; ISA circuits from the official client run as sent.

A dispatch may carry several small jobs: their pubs run in one SamplerV2 call and the result is split
back, each job getting its own PrimitiveResult of its own pubs.
"""

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.primitives import PrimitiveResult
from qiskit.primitives.containers.observables_array import ObservablesArray
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.transpiler import generate_preset_pass_manager
from qiskit.transpiler.passes import GatesInBasis
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import SamplerV2
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

from services.executor.estimation import estimate, twirls_gates
from services.executor.mock import is_dry_run, mock_estimator, mock_quantum_program, mock_sampler
from services.executor.noise_learning import learn
from services.executor.protocol import JobRun
from services.executor.simulators import DeviceNoiseModel, DeviceSimulator, ProgramSimulator, device_simulator
from services.executor.twirled_sampling import sample, wants_pipeline
from shared.backends.catalog import AER_SIMULATOR, fake_device, rep_delay_range
from shared.jobs.options import context_for, option_warnings
from shared.jobs.runner_results import runner_results
from shared.kit.errors import short_message


class ProgramError(Exception):
    """The job's input cannot run (reported to the user as a failed job)."""


@dataclass(frozen=True)
class _Prepared:
    index: int  # position in the dispatch
    pubs: list[SamplerPub]
    seed: int | None
    warnings: list[str]
    options: dict[str, Any]  # twirling or dynamical decoupling: the job runs alone (twirled_sampling.py)


class SimulatorRuntime:
    def __init__(self, backend_name: str, threads: int = 1) -> None:
        self.backend_name = backend_name
        self.device: Any | None
        warnings.filterwarnings("ignore", category=UserWarning)
        if backend_name == AER_SIMULATOR:
            self.simulator = AerSimulator(max_parallel_threads=threads)
            self.program_simulator = ProgramSimulator(max_parallel_threads=threads)
            self.device = None
        else:
            self.device = fake_device(backend_name)
            # Both simulators share the one noise model (it is only read).
            noise = DeviceNoiseModel.of_device(self.device)
            self.simulator = device_simulator(DeviceSimulator, self.device, threads, noise)
            self.program_simulator = device_simulator(ProgramSimulator, self.device, threads, noise)
        self.pass_manager = generate_preset_pass_manager(optimization_level=1, backend=self.simulator)
        self.target = self.simulator.target
        # Gate twirling on the ideal simulator needs Clifford 2-qubit gates and rz/sx/x around them.
        self._twirl_basis = generate_preset_pass_manager(
            optimization_level=1, basis_gates=["rz", "sx", "x", "cx"]
        )

    def _to_isa(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """The circuit as the device runs it: unchanged when it already fits the target (what the
        client sends for a device), transpiled otherwise (QASM text from curl users)."""
        if circuit.num_qubits <= self.target.num_qubits:
            checked: dict[str, Any] = {}
            GatesInBasis(target=self.target)(circuit, property_set=checked)
            if checked["all_gates_in_basis"]:
                return circuit
        return self.pass_manager.run(circuit)

    def _prepare(self, index: int, params_text: str) -> _Prepared:
        params: dict[str, Any] = json.loads(params_text, cls=RuntimeDecoder)
        options = params.get("options") or {}
        seed = (options.get("simulator") or {}).get("seed_simulator")
        try:
            pubs = [
                SamplerPub.coerce((self._to_isa(circuit), values, shots))
                for circuit, values, shots in params["pubs"]
            ]
        except Exception as exc:
            raise ProgramError(f"the job's pubs cannot run: {short_message(exc)}") from exc
        return _Prepared(index, pubs, seed, self._warnings("sampler", params), options)

    def run(self, jobs: list[tuple[str, str]]) -> list[JobRun]:
        """Run (program_id, params) jobs; one JobRun per job, in order. Jobs without a seed share one
        simulator call; a seeded job runs alone, so its result is the one it gets alone."""
        runs: list[JobRun | None] = [None] * len(jobs)
        prepared: list[_Prepared] = []
        for index, (program_id, params_text) in enumerate(jobs):
            try:
                if is_dry_run(params_text):
                    runs[index] = self._dry_run(program_id, params_text)
                elif program_id == "sampler":
                    prepared.append(self._prepare(index, params_text))
                else:
                    runs[index] = self._run_alone(program_id, params_text)
            except ProgramError as exc:
                runs[index] = JobRun(ok=False, payload=str(exc), seconds=0.0)
            except Exception as exc:
                runs[index] = JobRun(
                    ok=False, payload=f"{type(exc).__name__}: {short_message(exc)}", seconds=0.0
                )
        shared = [p for p in prepared if p.seed is None and not wants_pipeline(p.options)]
        calls = ([shared] if shared else []) + [[p] for p in prepared if all(p is not s for s in shared)]
        for call in calls:
            self._run_together(call, runs)
        return [run or JobRun(ok=False, payload="the job was not run", seconds=0.0) for run in runs]

    def _run_together(self, call: list[_Prepared], runs: list[JobRun | None]) -> None:
        pubs = [pub for job in call for pub in job.pubs]
        started = time.perf_counter()
        span_start = datetime.now(UTC)
        try:
            if len(call) == 1 and wants_pipeline(call[0].options):
                result = sample(self.program_simulator, self.device, pubs, call[0].options, call[0].seed)
            else:
                result = SamplerV2.from_backend(self.simulator, seed=call[0].seed).run(pubs).result()
        except Exception as exc:
            if len(call) > 1:
                # Find the job the simulator refuses by running each alone; the others still complete.
                for job in call:
                    self._run_together([job], runs)
                return
            runs[call[0].index] = JobRun(
                ok=False,
                payload=f"the simulator refused the job: {short_message(exc, 500)}",
                seconds=time.perf_counter() - started,
            )
            return
        seconds = time.perf_counter() - started
        span_stop = datetime.now(UTC)
        # Each job is charged its share of the call, by the shots it asked for.
        weights = [sum(pub.shots * max(1, pub.parameter_values.size) for pub in job.pubs) for job in call]
        total = sum(weights) or 1
        pub_results = list(result)
        offset = 0
        for job, weight in zip(call, weights, strict=True):
            metadata: dict[str, Any] = {
                **result.metadata,
                "execution": {"execution_spans": _spans(span_start, span_stop, job.pubs)},
                "version": 2,
            }
            if job.warnings:
                metadata["warnings"] = job.warnings
            own = PrimitiveResult(pub_results[offset : offset + len(job.pubs)], metadata=metadata)
            offset += len(job.pubs)
            runs[job.index] = JobRun(
                ok=True, payload=json.dumps(own, cls=RuntimeEncoder), seconds=seconds * weight / total
            )

    def _run_alone(self, program_id: str, params_text: str) -> JobRun:
        """Programs other than the sampler run one job per simulator call (the sampler's jobs go
        through `_run_together`)."""
        runner = self._programs.get(program_id)
        if runner is None:
            raise ProgramError(f"program {program_id} is not supported by this executor")
        params: dict[str, Any] = json.loads(params_text, cls=RuntimeDecoder)
        options = params.get("options") or {}
        return _timed(lambda: runner(params, options), "the simulator refused the job")

    def _dry_run(self, program_id: str, params_text: str) -> JobRun:
        """A job sent to a mock device: results of the right shape, random, nothing simulated."""
        params: dict[str, Any] = json.loads(params_text, cls=RuntimeDecoder)
        params.pop("dry_run")
        rng = np.random.default_rng()

        def mock() -> Any:
            if program_id == "sampler":
                return mock_sampler(params, rng)
            if program_id == "estimator":
                return mock_estimator(params, rng)
            if program_id == "executor":
                return self._run_quantum_program(params, {}, dry_run=rng)
            if program_id == "noise-learner":
                return self._learn_noise(params, {})  # computed, not simulated: as cheap as a mock
            raise ProgramError(f"program {program_id} has no dry run here")

        return _timed(mock, "the dry run's inputs cannot run")

    @property
    def _programs(self) -> dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]]:
        return {
            "estimator": self._estimate,
            "runner": self._run_programs,
            "executor": self._run_quantum_program,
            "noise-learner": self._learn_noise,
        }

    @staticmethod
    def _seed(options: dict[str, Any]) -> int | None:
        seed = (options.get("simulator") or {}).get("seed_simulator")
        return None if seed is None else int(seed)

    def _sample(self, params: dict[str, Any], options: dict[str, Any]) -> Any:
        isa_pubs = [(self._to_isa(circuit), values, shots) for circuit, values, shots in params["pubs"]]
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

    def _run_quantum_program(
        self, params: dict[str, Any], options: dict[str, Any], dry_run: np.random.Generator | None = None
    ) -> Any:
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
        if dry_run is not None:
            result = mock_quantum_program(program, dry_run)
        else:
            result = run_quantum_program(self.program_simulator, program, SimulatorOptions())
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

    def _learn_noise(self, params: dict[str, Any], options: dict[str, Any]) -> Any:
        """The legacy noise learner: each layer's Pauli-Lindblad error (noise_learning.py)."""
        if self.device is None:
            raise ProgramError("the ideal simulator has no noise to learn")
        return learn(self.simulator, self.device, params)

    def _estimate(self, params: dict[str, Any], options: dict[str, Any]) -> Any:
        """The legacy estimator, estimated from samples with the backend's noise (estimation.py)."""
        isa_pubs = []
        to_basis = self._twirl_basis if self.device is None and twirls_gates(params, ideal=True) else None
        for circuit, observables, values, precision in params["pubs"]:
            isa = self._to_isa(circuit) if to_basis is None else to_basis.run(circuit)
            # A transpiled circuit moved its qubits; the observables must follow the layout.
            laid_out = ObservablesArray.coerce(observables)
            if isa is not circuit and isa.layout is not None:
                laid_out = laid_out.apply_layout(isa.layout, isa.num_qubits)
            isa_pubs.append((isa, laid_out, values, precision))
        return estimate(
            self.program_simulator, self.device, isa_pubs, params, self._warnings("estimator", params)
        )

    def _warnings(self, program: str, params: dict[str, Any]) -> list[str]:
        """Options that had no effect (the same table the api checked them with)."""
        context = context_for(program, params, self.device is None, rep_delay_range(self.backend_name))
        return option_warnings(params, context)


def _spans(start: datetime, stop: datetime, pubs: list[SamplerPub]) -> Any:
    """IBM's execution spans: every shot of every pub of this job ran in the one simulator call."""
    from qiskit_ibm_runtime.execution_span import DoubleSliceSpan, ExecutionSpans

    slices = {}
    for index, pub in enumerate(pubs):
        shape = (*pub.parameter_values.shape, pub.shots)
        slices[index] = (shape, slice(0, math.prod(shape[:-1])), slice(0, pub.shots))
    return ExecutionSpans([DoubleSliceSpan(start, stop, slices)])


def _timed(compute: Callable[[], Any], refusal: str) -> JobRun:
    """Run one job's computation, timed; its result encoded as the client decodes it. Any failure but
    a ProgramError (already worded for the user) becomes one, prefixed with `refusal`."""
    started = time.perf_counter()
    try:
        result = compute()
    except ProgramError:
        raise
    except Exception as exc:
        raise ProgramError(f"{refusal}: {short_message(exc, 500)}") from exc
    return JobRun(
        ok=True, payload=json.dumps(result, cls=RuntimeEncoder), seconds=time.perf_counter() - started
    )
