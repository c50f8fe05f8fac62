"""Quantum programs stored in deployments: OpenQASM 2, OpenQASM 3 or QPY (base64), parsed at creation."""

import base64
import binascii
import io

from qiskit import QuantumCircuit, qpy

from services.api.programs.bounds import QPY_HEADER_BYTES, WidthLimit, check_qpy_header
from services.api.programs.validation import check_width, parse_circuit
from shared.kit.errors import ErrorCode, InvalidInput

LANGUAGES = ("QASM2", "QASM3", "QPY")
MALFORMED = ErrorCode.MALFORMED_CIRCUIT
# qunicorn's languages that carry Python source: refused, because qruntime never executes request code.
PYTHON_LANGUAGES = {
    "PYTHON",
    "QISKIT-PYTHON",
    "BRAKET-PYTHON",
    "QRISP-PYTHON",
    "QUIL-PYTHON",
    "PYTHON-PYTHON",
}


def parse_program(text: str, language: str, where: str, width: WidthLimit) -> QuantumCircuit:
    """Parse a stored program, refusing one wider than `width` before it is built."""
    language = language.upper()
    if language in PYTHON_LANGUAGES:
        raise InvalidInput(
            MALFORMED,
            f"{where}: {language} programs are Python source, which qruntime never executes; "
            "export the circuit as OpenQASM 2 or 3, or as QPY, and deploy that.",
        )
    if language not in LANGUAGES:
        raise InvalidInput(
            MALFORMED,
            f"{where}: assembler_language must be one of {', '.join(LANGUAGES)}, not {language!r}.",
        )
    if language == "QPY":
        return check_width(_load_qpy(text, where, width), width, where)
    header = "OPENQASM 3" if language == "QASM3" else "OPENQASM 2"
    if not text.lstrip().startswith(header):
        raise InvalidInput(MALFORMED, f"{where}: a {language} program must start with '{header}'.")
    return check_width(parse_circuit(text, where, width), width, where)


def _load_qpy(text: str, where: str, width: WidthLimit) -> QuantumCircuit:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(MALFORMED, f"{where}: QPY programs must be base64 text.") from exc
    check_qpy_header(raw[:QPY_HEADER_BYTES], width, where)
    try:
        circuits = qpy.load(io.BytesIO(raw))
    except Exception as exc:
        message = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise InvalidInput(MALFORMED, f"{where}: the QPY data does not load: {message}") from exc
    if len(circuits) != 1 or not isinstance(circuits[0], QuantumCircuit):
        raise InvalidInput(MALFORMED, f"{where}: a QPY program must hold exactly one circuit.")
    return circuits[0]
