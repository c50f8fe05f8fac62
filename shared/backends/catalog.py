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
    mock: bool = False  # a mock device (dry runs): random data of the right shape


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


def _device_json(name: str, which: str) -> dict[str, Any]:
    import json
    import os

    device = fake_device(name)
    filename = device.conf_filename if which == "conf" else device.props_filename
    with open(os.path.join(device.dirname, filename)) as handle:
        data: dict[str, Any] = json.load(handle)
    # Served under our name; the client also overwrites it with the name in the path.
    data["backend_name"] = name
    return data


@cache
def configuration(name: str, aer_max_qubits: int, max_shots: int) -> dict[str, Any]:
    """The legacy QasmBackendConfiguration JSON the official client builds its target from.

    Fake devices serve their own file (`simulator: false`, so sessions and ISA rules apply as on a
    real device). The ideal simulator gets a minimal valid configuration with no coupling map (an
    all-to-all target) and `simulator: true` (the client then skips sessions and ISA checks)."""
    if name != AER_SIMULATOR:
        conf = _device_json(name, "conf")
        conf["simulator"] = False
        conf["max_shots"] = max_shots
        conf["supported_features"] = _supported_features(conf)
        return conf
    return {
        "backend_name": AER_SIMULATOR,
        "backend_version": "0.18",
        "n_qubits": aer_max_qubits,
        "basis_gates": [
            "id",
            "rz",
            "sx",
            "x",
            "cx",
            "cz",
            "ecr",
            "h",
            "s",
            "sdg",
            "t",
            "tdg",
            "swap",
            "ccx",
            "u",
        ],
        "gates": [],
        "local": False,
        "simulator": True,
        "conditional": True,
        "open_pulse": False,
        "memory": True,
        "max_shots": max_shots,
        "max_experiments": 300,
        "coupling_map": None,
        "supported_instructions": [
            "measure",
            "reset",
            "delay",
            "barrier",
            "if_else",
            "for_loop",
            "while_loop",
        ],
        "online_date": "2024-01-01T00:00:00+00:00",
        "description": "Ideal (noise-free) qiskit-aer simulator",
        "processor_type": {"family": "simulator"},
        "supported_features": ["qasm3", "parameters", "dynamic_circuits"],
    }


def _supported_features(conf: dict[str, Any]) -> list[str]:
    """The device's own list, plus `dynamic_circuits` when it runs if_else (as IBM lists it), so
    `service.backends(dynamic_circuits=True)` finds the fake devices that simulate them."""
    features = list(conf.get("supported_features") or [])
    if "if_else" in (conf.get("supported_instructions") or []) and "dynamic_circuits" not in features:
        features.append("dynamic_circuits")
    return features


@cache
def rep_delay_range(name: str) -> tuple[float, float] | None:
    """The device's allowed rep_delay in seconds (its configuration gives microseconds)."""
    if name == AER_SIMULATOR:
        return None
    limits = _device_json(name, "conf").get("rep_delay_range")
    if not limits:
        return None
    return float(limits[0]) * 1e-6, float(limits[1]) * 1e-6


@cache
def properties(name: str) -> dict[str, Any]:
    """Calibration data (errors, durations) for fake devices; the ideal simulator has none."""
    if name == AER_SIMULATOR:
        return {}
    return _device_json(name, "props")


# Mock devices: what the 0.50+ client's `dry_run=True` submits to. IBM names the mock of `ibm_fez`
# `mock_fez`; here the mock of `fake_manila` is `mock_manila`. A mock is listed only to clients that
# ask for mocks, and its jobs return data of the right shape, random, without simulating.
MOCK_PREFIX = "mock_"


def mock_name(name: str) -> str | None:
    """The mock of a served fake device (`fake_manila` -> `mock_manila`); the ideal simulator has none."""
    return MOCK_PREFIX + name.removeprefix("fake_") if name.startswith("fake_") else None


def device_of_mock(name: str) -> str | None:
    """The fake device a mock name stands for (`mock_manila` -> `fake_manila`), else None."""
    return "fake_" + name.removeprefix(MOCK_PREFIX) if name.startswith(MOCK_PREFIX) else None
