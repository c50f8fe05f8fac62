"""What a job page shows of a job's inputs and results: a short summary of each pub and the data to
plot (counts per classical register, or expectation values and their standard deviations)."""

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_PLOTS = 8


@dataclass(frozen=True)
class Plot:
    """One chart: counts (histogram) or expectation values with error bars."""

    title: str
    counts: dict[str, int] = field(default_factory=dict)
    evs: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)


def _decode(text: str) -> Any:
    from qiskit_ibm_runtime import RuntimeDecoder

    return json.loads(text, cls=RuntimeDecoder)


def _describe(value: Any) -> str:
    from qiskit import QuantumCircuit

    if isinstance(value, QuantumCircuit):
        ops = sum(value.count_ops().values())
        return f"circuit {value.name}: {value.num_qubits} qubits, {ops} operations, depth {value.depth()}"
    if value is None:
        return "none"
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, np.ndarray):
        return f"array {tuple(value.shape)}"
    if isinstance(value, list | tuple):
        return f"{len(value)} values"
    if isinstance(value, dict):
        return f"{len(value)} entries"
    return type(value).__name__


def summarize_inputs(params_text: str) -> list[str]:
    """One line per pub (or per program of a deployment job)."""
    try:
        params = _decode(params_text)
    except Exception as exc:
        return [f"The inputs could not be decoded ({type(exc).__name__})."]
    if not isinstance(params, dict):
        return [_describe(params)]
    lines = []
    pubs = params.get("pubs")
    if isinstance(pubs, list):
        for index, pub in enumerate(pubs[:50]):
            parts = pub if isinstance(pub, list | tuple) else [pub]
            lines.append(f"pub {index}: " + "; ".join(_describe(p) for p in parts))
        if len(pubs) > 50:
            lines.append(f"… and {len(pubs) - 50} more pubs")
    for key, value in params.items():
        if key != "pubs":
            lines.append(f"{key}: {_describe(value)}")
    return lines


def _counts_of(value: Any) -> dict[str, int] | None:
    get_counts = getattr(value, "get_counts", None)
    if callable(get_counts):
        try:
            counts = get_counts()
        except Exception:
            return None
        return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else None
    return None


def _flat(value: Any) -> list[float]:
    return [float(v) for v in np.asarray(value, dtype=float).ravel()]


def plots_of_result(body: str) -> list[Plot]:
    """Charts for a result body: a histogram per pub and register, or the expectation values."""
    try:
        result = _decode(body)
    except Exception:
        return []
    plots: list[Plot] = []
    if isinstance(result, dict) and isinstance(result.get("results"), list):
        # A deployment job (qunicorn's RUNNER format): counts keyed by hexadecimal values.
        for item in result["results"]:
            if item.get("result_type") == "COUNTS" and isinstance(item.get("data"), dict):
                counts = {str(k): int(v) for k, v in item["data"].items()}
                plots.append(Plot(f"program {item.get('program_index', len(plots))}: counts", counts))
        return plots[:MAX_PLOTS]
    try:
        pub_results = list(result)
    except TypeError:
        return []
    for index, pub_result in enumerate(pub_results):
        data = getattr(pub_result, "data", None)
        if data is None:
            continue
        if hasattr(data, "evs"):
            stds = getattr(data, "stds", None)
            evs = _flat(data.evs)
            plots.append(
                Plot(
                    f"pub {index}: expectation values",
                    evs=evs,
                    stds=_flat(stds) if stds is not None else [0.0] * len(evs),
                )
            )
            continue
        names = list(data.keys()) if hasattr(data, "keys") else []
        for name in names:
            register_counts = _counts_of(getattr(data, name, None))
            if register_counts is not None:
                plots.append(Plot(f"pub {index}, register {name}: counts", register_counts))
        if len(plots) >= MAX_PLOTS:
            break
    return plots[:MAX_PLOTS]
