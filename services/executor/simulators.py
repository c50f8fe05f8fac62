"""The simulators a backend's child runs on, prepared once per child.

qiskit-aer and qiskit-ibm-runtime would otherwise redo work with the device's noise model on every
call (architecture.md, decision 36): this module keeps the noise model's document, gives each run
the part of it that the run's qubits can meet, and hands `run_quantum_program` a simulator it need
not copy."""

import copy
import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from qiskit import QuantumCircuit
from qiskit.circuit.library import PauliGate
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, QuantumError

View = TypeVar("View", bound="QubitsNoiseModel")

# Views of a device's noise model kept per child, one per set of qubits used lately.
KEPT_VIEWS = 64
# NoiseModel's methods that change it (qiskit-aer 0.18): each must drop what was kept from it.
MUTATORS = (
    "add_all_qubit_quantum_error",
    "add_quantum_error",
    "add_all_qubit_readout_error",
    "add_readout_error",
    "add_basis_gates",
    "reset",
)


class DeviceNoiseModel(NoiseModel):
    """A device's noise model, built once per child. qiskit-aer turns the noise model into a
    dictionary (and through JSON) on every run, which cost 41 ms of each call on fake_manila (a
    one-gate circuit took 63 ms with the noise model, 0.3 ms without): the dictionary is made once
    here and handed to every run.

    The document must never outlive a change: a mutator clears it, and a deep copy (qiskit-aer
    copies the noise model to add the errors a circuit carries as instructions) is a plain
    NoiseModel that converts itself afresh."""

    def __init__(self, built: NoiseModel) -> None:
        # NoiseModel.from_backend builds a NoiseModel, not a subclass: take over what it built.
        self.__dict__.update(built.__dict__)
        self._documents: dict[bool, dict[str, Any]] = {}
        # Keyed by a set of qubits (on_qubits) or by a layout, an ordered tuple (laid_out).
        self._on: OrderedDict[frozenset[int] | tuple[int, ...], QubitsNoiseModel] = OrderedDict()

    @classmethod
    def of_device(cls, device: Any) -> "DeviceNoiseModel":
        """The device's noise model as `NoiseModel.from_backend` builds it, each error's mixture
        with its equal terms merged (`merged_terms`)."""
        built = NoiseModel.from_backend(device)
        # qiskit-aer 0.18 keeps a model's errors in these two tables and offers no public way to
        # replace one; tests/unit/test_program_simulator.py checks every error is the same channel.
        for errors in built._local_quantum_errors.values():
            for qubits, error in errors.items():
                errors[qubits] = merged_terms(error)
        for name, error in built._default_quantum_errors.items():
            built._default_quantum_errors[name] = merged_terms(error)
        return cls(built)

    def to_dict(self, serializable: bool = False) -> dict[str, Any]:
        if serializable not in self._documents:
            self._documents[serializable] = super().to_dict(serializable=serializable)
        return self._documents[serializable]

    def on_qubits(self, qubits: frozenset[int]) -> "QubitsNoiseModel":
        """This noise model as the simulator needs it for circuits on `qubits` only. The views of the
        sets used last are kept (a bounded number: layouts vary, memory must not grow with them)."""
        return self._kept(qubits, lambda: QubitsNoiseModel(self, qubits))

    def laid_out(self, layout: tuple[int, ...]) -> "LaidOutNoiseModel":
        """This noise model for circuits whose qubit i is the device's qubit `layout[i]`."""
        return self._kept(layout, lambda: LaidOutNoiseModel(self, layout))

    def _kept(self, key: frozenset[int] | tuple[int, ...], make: Callable[[], View]) -> View:
        view = self._on.get(key)
        if view is None:
            view = self._on[key] = make()
            if len(self._on) > KEPT_VIEWS:
                self._on.popitem(last=False)
        else:
            self._on.move_to_end(key)
        return view  # type: ignore[return-value]  # a key's view is always of the kind its maker makes

    def __deepcopy__(self, memo: dict[int, Any]) -> NoiseModel:
        plain = NoiseModel.__new__(NoiseModel)
        memo[id(self)] = plain
        for name, value in self.__dict__.items():
            if name not in ("_documents", "_on", "_device"):
                plain.__dict__[name] = copy.deepcopy(value, memo)
        return plain

    def _changed(self) -> None:
        self._documents.clear()
        self._on.clear()


def _clearing(name: str) -> Callable[..., None]:
    """NoiseModel's mutator `name`, which first drops what was kept from the model."""
    mutate = getattr(NoiseModel, name)

    @functools.wraps(mutate)
    def method(self: DeviceNoiseModel, *args: Any, **kwargs: Any) -> None:
        self._changed()
        mutate(self, *args, **kwargs)

    return method


for _name in MUTATORS:
    setattr(DeviceNoiseModel, _name, _clearing(_name))


# A one-qubit Pauli as its (x, z) bits: products are XORs (a term's global phase cancels in the channel).
_PAULI_BITS = {"I": (0, 0), "X": (1, 0), "Z": (0, 1), "Y": (1, 1)}
_PAULI_LABEL = {bits: label for label, bits in _PAULI_BITS.items()}
# Per qubit: reset or not, then the Pauli applied after the last reset.
_Term = tuple[tuple[bool, tuple[int, int]], ...]


def merged_terms(error: QuantumError) -> QuantumError:
    """The same channel with fewer terms. A fake device's gate error is a depolarizing error
    composed with each qubit's thermal relaxation: 144 terms for a two-qubit gate, most of them the
    same map (a Pauli times Z is another Pauli; a reset erases the Pauli before it). qiskit-aer
    parses every term in C++ on every run and builds the density-matrix method's superoperators
    from them, 32 ms a call on fake_manila; with the terms merged (1,023 to 246) it takes 5.6 ms.
    An error whose terms are not all Paulis and resets is returned as it is."""
    width = error.num_qubits
    weights: dict[_Term, float] = {}
    for circuit, probability in zip(error.circuits, error.probabilities, strict=True):
        term = _pauli_reset_term(circuit, width)
        if term is None:
            return error
        weights[term] = weights.get(term, 0.0) + probability
    if len(weights) == len(error.probabilities):
        return error
    mixture = []
    for term, probability in weights.items():
        circuit = QuantumCircuit(width)
        for qubit, (reset, _) in enumerate(term):
            if reset:
                circuit.reset(qubit)
        # Qiskit's labels put qubit 0 last.
        circuit.append(PauliGate("".join(_PAULI_LABEL[bits] for _, bits in reversed(term))), range(width))
        mixture.append((circuit, probability))
    return QuantumError(mixture)


def _pauli_reset_term(circuit: QuantumCircuit, width: int) -> _Term | None:
    """What one term of a mixture does to each qubit, in normal form; None for other operations."""
    state: list[tuple[bool, tuple[int, int]]] = [(False, (0, 0))] * width
    for instruction in circuit.data:
        name = instruction.operation.name
        qubits = [circuit.find_bit(qubit).index for qubit in instruction.qubits]
        if name == "reset":
            for qubit in qubits:
                state[qubit] = (True, (0, 0))
            continue
        if name in ("id", "x", "y", "z"):
            labels = ["I" if name == "id" else name.upper()]
        elif name == "pauli":
            labels = list(reversed(instruction.operation.params[0]))
        else:
            return None
        for qubit, label in zip(qubits, labels, strict=True):
            reset, (x, z) = state[qubit]
            dx, dz = _PAULI_BITS[label]
            state[qubit] = (reset, (x ^ dx, z ^ dz))
    return tuple(state)


class QubitsNoiseModel(DeviceNoiseModel):
    """The device's noise model for circuits that touch only `qubits`: the same model, whose document
    for qiskit-aer leaves out the errors of gates and readouts on other qubits, which such circuits
    cannot meet. qiskit-aer parses the whole document on every call (28 ms for fake_manila's 5
    qubits, 393 ms for fake_sherbrooke's 127, whatever the circuit); a 2-qubit job now pays for
    2 qubits. Errors on every qubit (none in a fake device's model) are kept."""

    def __init__(self, device: DeviceNoiseModel, qubits: frozenset[int]) -> None:
        super().__init__(device)
        self._device = device
        self.qubits = qubits

    def to_dict(self, serializable: bool = False) -> dict[str, Any]:
        if serializable not in self._documents:
            # Filtered from the device's kept document: a new set of qubits costs a pass over its
            # errors, not a conversion of the whole model (about a second for 127 qubits).
            whole = self._device.to_dict(serializable=serializable)
            errors = [self._numbered(error) for error in whole["errors"] if self._meets(error)]
            self._documents[serializable] = {**whole, "errors": errors}
        return self._documents[serializable]

    def _meets(self, error: dict[str, Any]) -> bool:
        return all(set(qubits) <= self.qubits for qubits in error.get("gate_qubits", ()))

    def _numbered(self, error: dict[str, Any]) -> dict[str, Any]:
        """An error of the device's document as this view's circuits number their qubits."""
        return error

    def _changed(self) -> None:
        # A view shares the device model's tables: a change made here would reach the device model
        # behind its kept document's back.
        raise TypeError("a noise model for some qubits is read-only; change the device's noise model")


class LaidOutNoiseModel(QubitsNoiseModel):
    """The device's noise model for circuits on fewer qubits than the device, whose qubit i is the
    device's qubit `layout[i]`: the errors of those device qubits, renumbered. The estimator runs
    a circuit on the qubits it uses (estimation.py); a 2-qubit circuit on fake_kolkata is then a
    2-qubit simulation with those two qubits' noise, not a 27-qubit one."""

    def __init__(self, device: DeviceNoiseModel, layout: tuple[int, ...]) -> None:
        super().__init__(device, frozenset(layout))
        self.layout = layout
        self._number = {qubit: index for index, qubit in enumerate(layout)}

    def _numbered(self, error: dict[str, Any]) -> dict[str, Any]:
        if "gate_qubits" not in error:
            return error
        renumbered = [type(qubits)(self._number[q] for q in qubits) for qubits in error["gate_qubits"]]
        return {**error, "gate_qubits": renumbered}


def qubits_of(circuits: Any) -> frozenset[int] | None:
    """The qubits the circuits act on, barriers aside (no noise model puts an error on a barrier);
    None when not all are QuantumCircuits."""
    listed = circuits if isinstance(circuits, list | tuple) else [circuits]
    if not all(isinstance(circuit, QuantumCircuit) for circuit in listed):
        return None
    used: set[int] = set()
    for circuit in listed:
        for instruction in circuit.data:
            if instruction.operation.name != "barrier":
                used.update(circuit.find_bit(qubit).index for qubit in instruction.qubits)
    return frozenset(used)


class DeviceSimulator(AerSimulator):
    """A fake device's simulator: each run gets the device's noise model for the qubits its
    circuits use (a control-flow operation lists every qubit of its blocks)."""

    # Set on a copy made by ProgramSimulator.on_layout: the device qubit of each circuit qubit.
    qubit_layout: tuple[int, ...] | None = None

    def run(self, circuits: Any, parameter_binds: Any = None, **run_options: Any) -> Any:
        noise = self.options.noise_model
        if "noise_model" not in run_options and isinstance(noise, DeviceNoiseModel):
            if self.qubit_layout is not None:
                run_options["noise_model"] = noise.laid_out(self.qubit_layout)
            elif (qubits := qubits_of(circuits)) is not None:
                run_options["noise_model"] = noise.on_qubits(qubits)
        return super().run(circuits, parameter_binds=parameter_binds, **run_options)


def device_simulator(cls: type[AerSimulator], device: Any, threads: int, noise: NoiseModel) -> AerSimulator:
    return cls.from_backend(device, noise_model=noise, max_parallel_threads=threads)


class ProgramSimulator(DeviceSimulator):
    """The simulator handed to qiskit-ibm-runtime's `run_quantum_program` (the executor program, the
    estimator and twirled sampling). That function deep-copies the simulator it is given on every
    call, only to set the call's seed on the copy: with a device's noise model that copy was most of
    a small job's time (51 of the 129 ms an estimator job took on fake_manila). This second simulator,
    built once beside the main one, is its own copy: each call sets its own seed (None included)
    on it, and nothing else uses it, so the main simulator's options stay as they were."""

    def __deepcopy__(self, memo: dict[int, Any]) -> "ProgramSimulator":
        return self

    def on_layout(self, layout: tuple[int, ...]) -> "ProgramSimulator":
        """This simulator for circuits whose qubit i is the device's qubit `layout[i]` (on the ideal
        simulator, which has no noise, any layout is the same). A shallow copy: the options and the
        noise model are shared, as the one simulator's are between calls."""
        laid_out = copy.copy(self)
        laid_out.qubit_layout = layout
        return laid_out
