"""Examples of the jobs resource for the OpenAPI document (shapes as the API really sends them)."""

from typing import Any

BELL_QASM2 = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n'
)

SAMPLER_JOB: dict[str, Any] = {
    "program_id": "sampler",
    "backend": "fake_manila",
    "params": {"pubs": [[BELL_QASM2, None, 1000]], "options": {}, "version": 2},
    "tags": ["bell"],
}

JOB_VIEW: dict[str, Any] = {
    "id": "d4rgm3c8c2sc73a8kdeg",
    "backend": "fake_manila",
    "state": {"status": "Completed", "reason": None, "reason_code": None},
    "status": "Completed",
    "created": "2026-11-30T02:40:00.120000Z",
    "started": "2026-11-30T02:40:00.410000Z",
    "finished": "2026-11-30T02:40:00.530000Z",
    "session_id": None,
    "program": {"id": "sampler"},
    "tags": ["bell"],
    "cost": None,
    "private": False,
    "runtime": "",
    "estimated_running_time_seconds": None,
    "name": None,
    "type": "SAMPLER",
    "deployment_id": None,
    "progress": 1.0,
    "started_at": "2026-11-30T02:40:00.410000Z",
    "finished_at": "2026-11-30T02:40:00.530000Z",
    "executed_by": "executor-fake_manila-1",
    "executed_on": "fake_manila",
    "params": None,
}

# A 4-shot Bell sampler result, exactly as RuntimeEncoder writes it.
SAMPLER_RESULT: dict[str, Any] = {
    "__type__": "PrimitiveResult",
    "__value__": {
        "pub_results": [
            {
                "__type__": "SamplerPubResult",
                "__value__": {
                    "data": {
                        "__type__": "DataBin",
                        "__value__": {
                            "field_names": ["meas"],
                            "shape": [],
                            "fields": {
                                "meas": {
                                    "__type__": "BitArray",
                                    "__value__": {
                                        "array": {
                                            "__type__": "ndarray",
                                            "__value__": "eJyb7BfqGxDJyFDGUK2eklqcXKRupaBeU2qorqOgnpZfVFKUm"
                                            "BefX5SSChJ3S8wpTgWKF2ckFqQC+RomOgqGmjoKtQpkAy5mBgZmAOUhG74=",
                                        },
                                        "num_bits": 2,
                                    },
                                }
                            },
                        },
                    },
                    "metadata": {"shots": 4, "circuit_metadata": {}},
                },
            }
        ],
        "metadata": {"version": 2},
    },
}

JOB_METRICS: dict[str, Any] = {
    "timestamps": {
        "created": "2026-11-30T02:40:00.120000Z",
        "running": "2026-11-30T02:40:00.410000Z",
        "finished": "2026-11-30T02:40:00.530000Z",
    },
    "bss": {"seconds": 0.12},
    "usage": {"quantum_seconds": 0.12, "seconds": 0.12, "status": "Completed"},
    "executions": 1000,
    "num_circuits": 1,
    "qiskit_version": "2.6.2",
    "attempts": 1,
}
