"""Scenarios run by the real, unmodified qiskit-ibm-runtime client, inside its own virtual environment.

Run as `python client_scenarios.py NAME`; configuration comes only from the documented environment
variables (IAM_URL, QISKIT_FUNCTIONS_EXPERIMENTAL, QISKIT_IBM_TOKEN, QISKIT_IBM_URL,
QISKIT_IBM_INSTANCE). Prints one JSON object with what was observed; the pytest side asserts on it.
This file must only import what the client's environment has (qiskit and qiskit-ibm-runtime).
"""

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import qiskit
import qiskit_ibm_runtime
from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2

SCENARIOS: dict[str, Callable[[QiskitRuntimeService], dict[str, Any]]] = {}


def scenario(
    func: Callable[[QiskitRuntimeService], dict[str, Any]],
) -> Callable[[QiskitRuntimeService], dict[str, Any]]:
    SCENARIOS[func.__name__] = func
    return func


def bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2, name="bell")
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return circuit


def heavy(width: int = 22, layers: int = 40) -> QuantumCircuit:
    circuit = QuantumCircuit(width)
    for layer in range(layers):
        for qubit in range(width):
            circuit.rx(0.1 * (layer + qubit), qubit)
        for qubit in range(0, width - 1, 2 if layer % 2 else 3):
            circuit.cx(qubit, qubit + 1)
    circuit.measure_all()
    return circuit


@scenario
def discovery(service: QiskitRuntimeService) -> dict[str, Any]:
    names = sorted(b.name for b in service.backends())
    manila = service.backend("fake_manila")
    target = manila.target
    return {
        "backends": names,
        "num_qubits": manila.num_qubits,
        "coupling_map": sorted(map(list, manila.coupling_map.get_edges())) if manila.coupling_map else None,
        "has_cx_errors": target["cx"][(0, 1)].error is not None,
        "operations": sorted(target.operation_names),
        "status_pending": manila.status().pending_jobs,
    }


@scenario
def job_mode_sampler(service: QiskitRuntimeService) -> dict[str, Any]:
    backend = service.backend("aer_simulator")
    sampler = SamplerV2(mode=backend)
    job = sampler.run([bell()], shots=500)
    result = job.result()
    counts = result[0].data.meas.get_counts()
    same = service.job(job.job_id())
    return {
        "status": str(job.status()),
        "counts": counts,
        "session_id": job.session_id,
        "job_status_by_id": str(same.status()),
        "backend_of_job": same.backend().name,
        "metrics_usage": job.usage(),
        "inputs_pubs": len(same.inputs["pubs"]),
    }


@scenario
def isa_sampler_on_fake_device(service: QiskitRuntimeService) -> dict[str, Any]:
    backend = service.backend("fake_manila")
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(bell())
    job = SamplerV2(mode=backend).run([isa], shots=1000)
    return {"counts": job.result()[0].data.meas.get_counts(), "session_id": job.session_id}


@scenario
def listing_and_tags(service: QiskitRuntimeService) -> dict[str, Any]:
    backend = service.backend("aer_simulator")
    tag = f"compat-{time.time_ns()}"
    sampler = SamplerV2(mode=backend)
    sampler.options.environment.job_tags = [tag]
    jobs = [sampler.run([bell()], shots=20) for _ in range(3)]
    for job in jobs:
        job.result()
    listed = service.jobs(limit=None, job_tags=[tag])
    paged = service.jobs(limit=2, skip=1, job_tags=[tag], descending=False)
    jobs[0].update_tags([tag, "renamed"])
    return {
        "submitted": [j.job_id() for j in jobs],
        "listed": [j.job_id() for j in listed],
        "paged": [j.job_id() for j in paged],
        "tags_after_update": sorted(service.job(jobs[0].job_id()).tags),
        "pending": len(service.jobs(limit=None, job_tags=[tag], pending=True)),
    }


@scenario
def failed_job(service: QiskitRuntimeService) -> dict[str, Any]:
    from qiskit.circuit import Gate

    circuit = QuantumCircuit(1)
    circuit.append(Gate("undefined_gate", 1, []), [0])
    circuit.measure_all()
    job = SamplerV2(mode=service.backend("aer_simulator")).run([circuit], shots=10)
    try:
        job.result()
    except Exception as exc:
        return {"error_type": type(exc).__name__, "message": str(exc), "status": str(job.status())}
    return {"error_type": None}


@scenario
def cancel_running_job(service: QiskitRuntimeService) -> dict[str, Any]:
    job = SamplerV2(mode=service.backend("aer_simulator")).run([heavy()], shots=100000)
    deadline = time.monotonic() + 60
    while str(job.status()) not in ("RUNNING", "JobStatus.RUNNING") and time.monotonic() < deadline:
        time.sleep(0.1)
    seen = str(job.status())
    job.cancel()
    return {"seen_before_cancel": seen, "status_after": str(service.job(job.job_id()).status())}


@scenario
def executor_sampler(service: QiskitRuntimeService) -> dict[str, Any]:
    """The client-side Sampler built on the `executor` program (the future default)."""
    try:
        from qiskit_ibm_runtime.executor_sampler import Sampler
    except ImportError:  # 0.49 names it SamplerV2
        from qiskit_ibm_runtime.executor_sampler import SamplerV2 as Sampler  # type: ignore[no-redef]

    backend = service.backend("fake_manila")
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(bell())
    job = Sampler(mode=backend).run([isa], shots=800)
    result = job.result()
    return {"counts": result[0].data.meas.get_counts(), "program": job.primitive_id}


@scenario
def estimator_sweep(service: QiskitRuntimeService) -> dict[str, Any]:
    """EstimatorV2 with a list of observables and a parameter sweep on the ideal simulator."""
    import numpy as np
    from qiskit.circuit import Parameter
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_ibm_runtime import EstimatorV2

    theta = Parameter("theta")
    circuit = QuantumCircuit(2)
    circuit.ry(theta, 0)
    circuit.cx(0, 1)
    angles = np.linspace(0, np.pi, 5)
    observables = [[SparsePauliOp("ZZ")], [SparsePauliOp("ZI")], [SparsePauliOp("XX")]]
    estimator = EstimatorV2(mode=service.backend("aer_simulator"))
    estimator.options.default_precision = 0.005
    job = estimator.run([(circuit, observables, angles.reshape(-1, 1))])
    evs = job.result()[0].data.evs
    return {"angles": angles.tolist(), "evs": np.asarray(evs).tolist()}


@scenario
def session_lifecycle(service: QiskitRuntimeService) -> dict[str, Any]:
    """Session + SamplerV2 on an ISA Bell circuit; details()/status() through the session's life;
    Session.from_id; service.jobs(session_id=...); close()."""
    from qiskit_ibm_runtime import Session

    backend = service.backend("fake_manila")
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(bell())
    seen: dict[str, Any] = {}
    session = Session(backend=backend, max_time=600)
    seen["status_new"] = session.status()
    seen["details_new"] = session.details()
    sampler = SamplerV2(mode=session)
    jobs = [sampler.run([isa], shots=1000) for _ in range(2)]
    seen["counts"] = [job.result()[0].data.meas.get_counts() for job in jobs]
    seen["job_session_ids"] = [job.session_id for job in jobs]
    seen["status_active"] = session.status()
    seen["details_active"] = session.details()
    again = Session.from_id(session.session_id, service=service)
    seen["from_id_same"] = again.session_id == session.session_id
    listed = service.jobs(limit=None, session_id=session.session_id)
    seen["listed"] = sorted(j.job_id() for j in listed)
    seen["submitted"] = sorted(j.job_id() for j in jobs)
    session.close()
    deadline = time.monotonic() + 30
    while session.details()["state"] != "closed" and time.monotonic() < deadline:
        time.sleep(0.2)
    seen["status_closed"] = session.status()
    seen["details_closed"] = session.details()
    return seen


@scenario
def batch_and_cancel(service: QiskitRuntimeService) -> dict[str, Any]:
    """Batch of several jobs; then a batch cancelled while its jobs wait."""
    from qiskit_ibm_runtime import Batch

    backend = service.backend("fake_manila")
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(bell())
    with Batch(backend=backend) as batch:
        sampler = SamplerV2(mode=batch)
        jobs = [sampler.run([isa], shots=200) for _ in range(4)]
        totals = [sum(job.result()[0].data.meas.get_counts().values()) for job in jobs]
        mode = batch.details()["mode"]
    slow_isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(heavy(5, 200))
    cancelled_batch = Batch(backend=backend)
    waiting = [SamplerV2(mode=cancelled_batch).run([slow_isa], shots=100000) for _ in range(3)]
    cancelled_batch.cancel()
    finals = []
    for job in waiting:
        deadline = time.monotonic() + 120
        while not job.in_final_state() and time.monotonic() < deadline:
            time.sleep(0.2)
        finals.append(str(job.status()))
    return {
        "totals": totals,
        "mode": mode,
        "cancelled_state": cancelled_batch.details()["state"],
        "cancelled_jobs": finals,
    }


def ghz3() -> QuantumCircuit:
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    return circuit


def _refusal(run: Callable[[], Any]) -> dict[str, Any]:
    """Submit, wait; what the user sees when qruntime refuses (the client raises at submission)."""
    try:
        run().result()
    except Exception as exc:
        return {"refused": True, "message": str(exc)}
    return {"refused": False, "message": ""}


@scenario
def fidelity(service: QiskitRuntimeService) -> dict[str, Any]:
    """The legacy EstimatorV2 and SamplerV2 on fake_manila as a user runs them: resilience levels,
    precision sweeps, the option table's three fates, usage, execution spans, dynamic circuits.
    The pytest side compares with local testing mode (same client release, in-process)."""
    import warnings

    import numpy as np
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_ibm_runtime import EstimatorV2

    warnings.simplefilter("ignore")
    backend = service.backend("fake_manila")
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(ghz3())
    xxx = SparsePauliOp("XXX").apply_layout(isa.layout)
    zii = SparsePauliOp("IIZ").apply_layout(isa.layout)
    seen: dict[str, Any] = {"layout": list(isa.layout.final_index_layout())}

    def estimator(**options: Any) -> Any:
        est = EstimatorV2(mode=backend)
        for name, value in options.items():
            target = est.options
            *parents, leaf = name.split(".")
            for parent in parents:
                target = getattr(target, parent)
            setattr(target, leaf, value)
        return est

    default = estimator().run([(isa, xxx)]).result()
    seen["default"] = {
        "ev": float(default[0].data.evs),
        "std": float(default[0].data.stds),
        "metadata": default[0].metadata,
        "job_metadata": {k: v for k, v in default.metadata.items() if k != "warnings"},
    }
    # Levels 0, 1, 2 in one job each, the value of the same pub.
    seen["levels"] = {}
    for level in (0, 1, 2):
        result = estimator(resilience_level=level).run([(isa, xxx)]).result()
        seen["levels"][level] = {
            "ev": float(result[0].data.evs),
            "std": float(result[0].data.stds),
            "fields": sorted(result[0].data.keys()),
            "metadata": result[0].metadata,
        }
    # Precision sweep at level 0: 16 independent pubs of <ZII> (ideal 0, so std ~ precision).
    seen["sweep"] = {}
    for precision in (0.1, 0.05):
        result = estimator(resilience_level=0).run([(isa, zii)] * 16, precision=precision).result()
        seen["sweep"][precision] = {
            "evs": [float(pub.data.evs) for pub in result],
            "stds": [float(pub.data.stds) for pub in result],
            "shots": result[0].metadata["shots"],
            "target_precision": result[0].metadata["target_precision"],
        }
    shots_job = estimator(resilience_level=0, default_shots=400).run([(isa, xxx)]).result()
    seen["default_shots"] = shots_job[0].metadata

    # Honoured options: their effect is visible in the result.
    seeded = [estimator(seed_estimator=11).run([(isa, xxx)]).result() for _ in range(2)]
    seen["seeded_evs"] = [float(result[0].data.evs) for result in seeded]
    twirled = estimator(**{"twirling.num_randomizations": 4, "twirling.enable_gates": True}).run([(isa, xxx)])
    seen["twirled"] = twirled.result()[0].metadata
    dd = estimator(**{"dynamical_decoupling.enable": True, "dynamical_decoupling.sequence_type": "XY4"})
    seen["dd"] = dd.run([(isa, xxx)]).result().metadata["dynamical_decoupling"]
    zne = estimator(resilience_level=2, **{"resilience.zne.noise_factors": (1, 2, 3)}).run([(isa, xxx)])
    zne_result = zne.result()
    seen["zne"] = {
        "job_id": zne.job_id(),
        "inputs": {k: v for k, v in zne.inputs.items() if k != "pubs"},
        "resilience": zne_result.metadata.get("resilience"),
        "fields": sorted(zne_result[0].data.keys()),
    }

    # Warned options: the job runs; the warning is in the result metadata and the job's logs.
    warned = estimator(resilience_level=0, **{"execution.init_qubits": False, "execution.rep_delay": 0.0001})
    warned_job = warned.run([(isa, xxx)])
    seen["warned"] = {"metadata": warned_job.result().metadata.get("warnings", []), "logs": warned_job.logs()}
    sampler = SamplerV2(mode=backend)
    sampler.options.twirling.enable_gates = True
    measured = generate_preset_pass_manager(optimization_level=1, backend=backend).run(bell())
    sampler_job = sampler.run([measured], shots=100)
    sampler_result = sampler_job.result()
    seen["sampler_warnings"] = sampler_result.metadata.get("warnings", [])
    seen["twirled_counts"] = sampler_result[0].data.meas.get_counts()
    spans = sampler_result.metadata["execution"]["execution_spans"]
    seen["spans"] = {
        "count": len(spans),
        "start_before_stop": all(span.start <= span.stop for span in spans),
        "mask_shape": list(spans[0].mask(0).shape),
        "pub_idxs": spans[0].pub_idxs,
    }

    # Refused options: refused at submission with a code and the option's name.
    def kerneled() -> Any:
        sampler = SamplerV2(mode=backend)
        sampler.options.execution.meas_type = "kerneled"
        return sampler.run([measured], shots=10)

    seen["refused"] = {
        "rep_delay": _refusal(lambda: estimator(**{"execution.rep_delay": 0.01}).run([(isa, xxx)])),
        "kerneled": _refusal(kerneled),
        "pec": _refusal(lambda: estimator(**{"resilience.pec_mitigation": True}).run([(isa, xxx)])),
        "pea": _refusal(lambda: estimator(**{"resilience.zne.amplifier": "pea"}).run([(isa, xxx)])),
        "unknown": _refusal(lambda: estimator(experimental={"bogus_option": 1}).run([(isa, xxx)])),
        "private": _refusal(lambda: estimator(**{"environment.private": True}).run([(isa, xxx)])),
    }

    # Dry runs: the executor-based primitives submit to mock_manila (listed only on request).
    from qiskit_ibm_runtime.executor_estimator import Estimator as ExecutorEstimator
    from qiskit_ibm_runtime.executor_sampler import Sampler as ExecutorSampler

    dry_sampler = ExecutorSampler(mode=backend).run([measured], shots=50, dry_run=True)
    dry_counts = dry_sampler.result()[0].data.meas.get_counts()
    dry_estimator = ExecutorEstimator(mode=backend).run([(isa, xxx)], dry_run=True)
    seen["dry_run"] = {
        "sampler_backend": dry_sampler.backend().name,
        "sampler_shots": sum(dry_counts.values()),
        "estimator_shape": list(np.shape(dry_estimator.result()[0].data.evs)),
        "listed": sorted(b.name for b in service.backends()),
        "listed_with_mocks": sorted(b.name for b in service.backends(include_mocks=True)),
        "least_busy": service.least_busy(simulator=False).name,
    }

    # The noise learner: layers of the ISA circuit with Pauli-Lindblad errors; NoiseLearnerV3 refused.
    from qiskit_ibm_runtime import NoiseLearner

    learner = NoiseLearner(mode=backend)
    learner.options.max_layers_to_learn = 3
    learned = learner.run([isa]).result()
    seen["noise_learner"] = {
        "type": type(learned).__name__,
        "layers": [
            {
                "qubits": list(layer.qubits),
                "gates": dict(layer.circuit.count_ops()),
                "num_generators": len(layer.error.generators),
                "rates_min": float(min(layer.error.rates)),
                "rates_max": float(max(layer.error.rates)),
            }
            for layer in learned.data
        ],
        "protocol": learned.metadata.get("learning_protocol"),
    }
    from qiskit_ibm_runtime.noise_learner_v3 import NoiseLearnerV3

    seen["noise_learner_v3"] = _refusal(lambda: NoiseLearnerV3(mode=backend).run([]))

    # What else the client reads.
    seen["usage"] = default_usage = sampler_job.usage()
    seen["usage_positive"] = bool(default_usage and default_usage > 0)
    seen["dynamic_backends"] = sorted(b.name for b in service.backends(dynamic_circuits=True))
    return seen


def np_list(values: Any) -> list[float]:
    return [float(v) for v in values]


def main() -> None:
    name = sys.argv[1]
    service = QiskitRuntimeService()
    observed = SCENARIOS[name](service)
    observed["client_version"] = qiskit_ibm_runtime.__version__
    observed["qiskit_version"] = qiskit.__version__
    print(json.dumps(observed, default=str))


if __name__ == "__main__":
    main()
