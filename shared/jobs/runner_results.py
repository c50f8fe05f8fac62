"""RUNNER results in qunicorn's format: per program a COUNTS and a PROBABILITIES result whose keys are
hexadecimal values per classical register, registers separated by a space in the circuit's register
order (e.g. "0x1 0x0"), with metadata {format: "hex", shots, registers: [{name, size}]}."""

from collections import Counter
from typing import Any

from qiskit import QuantumCircuit


def registers_of(circuit: QuantumCircuit) -> list[dict[str, Any]]:
    return [{"name": register.name, "size": register.size} for register in circuit.cregs]


def hex_counts(circuit: QuantumCircuit, data: Any, shots: int) -> dict[str, int]:
    """Joint per-shot outcomes of all registers of one sampler pub result, keyed in hex."""
    if not circuit.cregs:
        return {"": shots}
    per_register = [getattr(data, register.name).get_bitstrings() for register in circuit.cregs]
    keys = (" ".join(hex(int(bits, 2)) for bits in outcome) for outcome in zip(*per_register, strict=True))
    return dict(Counter(keys))


def runner_results(
    circuits: list[QuantumCircuit], data_bins: list[Any], shots: list[int], program_ids: list[str]
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for index, (circuit, data, pub_shots, program_id) in enumerate(
        zip(circuits, data_bins, shots, program_ids, strict=True)
    ):
        counts = hex_counts(circuit, data, pub_shots)
        metadata = {"format": "hex", "shots": pub_shots, "registers": registers_of(circuit)}
        base = {"program_index": index, "program_id": program_id, "metadata": metadata}
        results.append({**base, "result_type": "COUNTS", "data": counts})
        total = sum(counts.values()) or 1
        probabilities = {key: value / total for key, value in counts.items()}
        results.append({**base, "result_type": "PROBABILITIES", "data": probabilities})
    return {"results": results}


def runner_error_results(program_ids: list[str], message: str) -> dict[str, Any]:
    return {
        "results": [
            {
                "program_index": index,
                "program_id": program_id,
                "result_type": "ERROR",
                "data": {"exception_message": message},
                "metadata": {},
            }
            for index, program_id in enumerate(program_ids)
        ]
    }
