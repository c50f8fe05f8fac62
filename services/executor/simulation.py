"""What runs inside the executor's child process: the warm simulator of one backend.

The noise model and the transpiler pass manager are built once when the child starts, never per
job. Circuits that are not already ISA for the backend (e.g. OpenQASM from curl users) are
transpiled with that pass manager; ISA circuits from the official client run as sent.

A dispatch may carry several small jobs: their pubs run in one SamplerV2 call and the result is split
back, each job getting its own PrimitiveResult of its own pubs.
"""

import json
import time
import warnings
from dataclasses import dataclass
from typing import Any

from qiskit import QuantumCircuit
from qiskit.primitives import PrimitiveResult
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import SamplerV2
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder
from qiskit_ibm_runtime.utils.utils import is_isa_circuit

from services.executor.worker import JobRun
from shared.backends import AER_SIMULATOR, fake_device


class ProgramError(Exception):
    """The job's input cannot run (reported to the user as a failed job)."""


@dataclass(frozen=True)
class _Prepared:
    index: int  # position in the dispatch
    pubs: list[SamplerPub]
    seed: int | None


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

    def _prepare(self, index: int, program_id: str, params_text: str) -> _Prepared:
        if program_id != "sampler":
            raise ProgramError(f"program {program_id} is not supported by this executor")
        params: dict[str, Any] = json.loads(params_text, cls=RuntimeDecoder)
        options = params.get("options") or {}
        seed = (options.get("simulator") or {}).get("seed_simulator")
        try:
            pubs = [
                SamplerPub.coerce((self._isa(circuit), values, shots))
                for circuit, values, shots in params["pubs"]
            ]
        except Exception as exc:
            raise ProgramError(f"the job's pubs cannot run: {_short(exc)}") from exc
        return _Prepared(index, pubs, seed)

    def run(self, jobs: list[tuple[str, str]]) -> list[JobRun]:
        """Run (program_id, params) jobs; one JobRun per job, in order. Jobs without a seed share one
        simulator call; a seeded job runs alone, so its result is the one it gets alone."""
        runs: list[JobRun | None] = [None] * len(jobs)
        prepared: list[_Prepared] = []
        for index, (program_id, params_text) in enumerate(jobs):
            try:
                prepared.append(self._prepare(index, program_id, params_text))
            except ProgramError as exc:
                runs[index] = JobRun(ok=False, payload=str(exc), seconds=0.0)
            except Exception as exc:
                runs[index] = JobRun(ok=False, payload=f"{type(exc).__name__}: {_short(exc)}", seconds=0.0)
        shared = [p for p in prepared if p.seed is None]
        calls = ([shared] if shared else []) + [[p] for p in prepared if p.seed is not None]
        for call in calls:
            self._run_together(call, runs)
        return [run or JobRun(ok=False, payload="the job was not run", seconds=0.0) for run in runs]

    def _run_together(self, call: list[_Prepared], runs: list[JobRun | None]) -> None:
        pubs = [pub for job in call for pub in job.pubs]
        started = time.perf_counter()
        try:
            result = SamplerV2.from_backend(self.simulator, seed=call[0].seed).run(pubs).result()
        except Exception as exc:
            if len(call) > 1:
                # Find the job the simulator refuses by running each alone; the others still complete.
                for job in call:
                    self._run_together([job], runs)
                return
            runs[call[0].index] = JobRun(
                ok=False,
                payload=f"the simulator refused the job: {_short(exc, 500)}",
                seconds=time.perf_counter() - started,
            )
            return
        seconds = time.perf_counter() - started
        # Each job is charged its share of the call, by the shots it asked for.
        weights = [sum(pub.shots * max(1, pub.parameter_values.size) for pub in job.pubs) for job in call]
        total = sum(weights) or 1
        pub_results = list(result)
        offset = 0
        for job, weight in zip(call, weights, strict=True):
            own = PrimitiveResult(
                pub_results[offset : offset + len(job.pubs)], metadata=dict(result.metadata)
            )
            offset += len(job.pubs)
            runs[job.index] = JobRun(
                ok=True, payload=json.dumps(own, cls=RuntimeEncoder), seconds=seconds * weight / total
            )


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
