"""The backend catalog: which backends exist and what they are.

`aer_simulator` is the ideal simulator; every other name is a fake IBM device from
`qiskit_ibm_runtime.fake_provider` (e.g. `fake_manila`), simulated with its noise model.
"""

from dataclasses import dataclass
from functools import cache
from typing import Any

AER_SIMULATOR = "aer_simulator"


@dataclass(frozen=True)
class BackendInfo:
    name: str
    num_qubits: int
    simulator: bool  # ideal simulator: no noise, any connectivity


class UnknownBackend(LookupError):
    pass


@cache
def fake_device(name: str) -> Any:
    """The fake IBM device of this name (its configuration, properties and noise data)."""
    import warnings

    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return FakeProviderForBackendV2().backend(name)
        except Exception as exc:  # the provider raises QiskitBackendNotFoundError
            raise UnknownBackend(name) from exc


def backend_info(name: str, aer_max_qubits: int) -> BackendInfo:
    if name == AER_SIMULATOR:
        return BackendInfo(name=name, num_qubits=aer_max_qubits, simulator=True)
    if not name.startswith("fake_"):
        raise UnknownBackend(name)
    device = fake_device(name)
    return BackendInfo(name=name, num_qubits=int(device.num_qubits), simulator=False)


def build_catalog(names: list[str], aer_max_qubits: int) -> dict[str, BackendInfo]:
    return {name: backend_info(name, aer_max_qubits) for name in names}
