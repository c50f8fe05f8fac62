"""From a finished job's PrimitiveResult to the data of each of the points it ran.

A sequence's job has one pub whose parameter sweep is its points, in order:
- sampler: ``{"counts": {...}}`` (the circuit's first classical register), and with several
  registers also ``{"registers": {name: counts, ...}}``;
- estimator: ``{"evs": [...], "stds": [...]}``, one entry per observable.
"""

import json
from typing import Any

import numpy as np
from qiskit_ibm_runtime import RuntimeDecoder


class ResultShapeError(ValueError):
    """The job's result does not hold the points it should."""


def point_data(result_text: str, program: str, num_points: int) -> list[dict[str, Any]]:
    result = json.loads(result_text, cls=RuntimeDecoder)
    try:
        pub = result[0]
    except (IndexError, TypeError, KeyError) as exc:
        raise ResultShapeError("the job's result holds no pub") from exc
    if program == "estimator":
        evs = np.asarray(pub.data.evs, dtype=float).reshape(num_points, -1)
        stds = np.asarray(pub.data.stds, dtype=float).reshape(num_points, -1)
        return [{"evs": evs[i].tolist(), "stds": stds[i].tolist()} for i in range(num_points)]
    names = list(pub.data.keys())
    if not names:
        raise ResultShapeError("the circuit has no classical register to count")
    registers = {name: getattr(pub.data, name) for name in names}
    first = registers[names[0]]
    size = int(np.prod(first.shape)) if first.shape else 1
    if size != num_points:
        raise ResultShapeError(f"the job's result has {size} points, not {num_points}")
    points: list[dict[str, Any]] = []
    for index in range(num_points):
        at = (index,) if first.shape else ()
        item: dict[str, Any] = {"counts": _counts(first, at)}
        if len(names) > 1:
            item["registers"] = {name: _counts(bits, at) for name, bits in registers.items()}
        points.append(item)
    return points


def _counts(bits: Any, at: tuple[int, ...]) -> dict[str, int]:
    counts = bits.get_counts(at) if at else bits.get_counts()
    return {key: int(value) for key, value in sorted(counts.items())}
