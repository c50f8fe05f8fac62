"""Cheap checks of a circuit's declared size and includes, made before any parser builds anything.

A 150-byte `qreg q[100000000];` makes a parser allocate a hundred million qubits, and an OpenQASM 2
`include "/etc/passwd";` makes it read a file. Both are refused here from the program text (or the
QPY header) alone: register sizes are summed and compared with the backend (or the deployment cap),
and only the standard include files are allowed. The parser that runs afterwards is also told not to
look for files (an empty include path), and runs in a worker process with time and memory budgets.
"""

import itertools
import re
import struct
from dataclasses import dataclass

from shared.kit.errors import ErrorCode, InvalidInput

# The only files a program may include: built into the parsers, never read from disk.
STANDARD_INCLUDES = {"2": frozenset({"qelib1.inc"}), "3": frozenset({"stdgates.inc"})}

# OpenQASM 3 has line and block comments; OpenQASM 2 (as qiskit reads it) line comments only.
_COMMENTS = {
    "2": re.compile(r"//[^\n]*"),
    "3": re.compile(r"//[^\n]*|/\*.*?(?:\*/|\Z)", re.DOTALL),
}
_INCLUDE = re.compile(r"\binclude\b\s*(\"[^\"\n]*\"?|[^;\s]*)")
# OpenQASM 2 and 3 (3 keeps qreg/creg as legacy syntax): the designator is whatever is in brackets.
_LEGACY_REGISTER = re.compile(r"\b(qreg|creg)\s+[A-Za-z_]\w*\s*\[([^\]]*)\]")
_SIZED_DECLARATION = re.compile(r"\b(qubit|bit)\s*\[([^\]]*)\]")
_SINGLE_DECLARATION = re.compile(r"\b(qubit|bit)\s+[A-Za-z_]\w*\s*[;=]")
_PHYSICAL_QUBIT = re.compile(r"\$(\d+)")
_MAX_DIGITS = 9


@dataclass(frozen=True)
class WidthLimit:
    """How wide a circuit may be, and who says so (named in refusals)."""

    max_qubits: int
    max_clbits: int
    source: str  # e.g. "fake_manila" or "the deployment limit"


def _size(designator: str, where: str) -> int:
    text = designator.strip()
    if not text.isdigit() or not text.isascii():
        raise InvalidInput(
            ErrorCode.MALFORMED_CIRCUIT,
            f"{where}: register sizes must be whole-number literals (found [{text[:20]}]).",
        )
    if len(text) > _MAX_DIGITS:
        return 10**_MAX_DIGITS
    return int(text)


def check_program_text(text: str, version: str, limit: WidthLimit, where: str) -> None:
    """Refuse an OpenQASM program that includes a non-standard file or declares more qubits or
    classical bits than `limit` allows, before it is parsed."""
    code = _COMMENTS[version].sub(" ", text)
    allowed = STANDARD_INCLUDES[version]
    for match in _INCLUDE.finditer(code):
        name = match.group(1).strip('"')
        if name not in allowed:
            raise InvalidInput(
                ErrorCode.MALFORMED_CIRCUIT,
                f"{where}: an OpenQASM {version} program may include only "
                f"{' or '.join(sorted(allowed))}; no other file is ever read.",
            )
    # qreg/creg and qubit/bit: the quantum keyword starts with q; a declaration without [size] is one.
    declarations = [_LEGACY_REGISTER, *([_SIZED_DECLARATION, _SINGLE_DECLARATION] if version == "3" else [])]
    qubits = clbits = 0
    for match in itertools.chain.from_iterable(pattern.finditer(code) for pattern in declarations):
        size = _size(match.group(2), where) if match.re.groups == 2 else 1
        if match.group(1).startswith("q"):
            qubits += size
        else:
            clbits += size
    if version == "3":
        physical = [
            int(m.group(1)) if len(m.group(1)) <= _MAX_DIGITS else 10**_MAX_DIGITS
            for m in _PHYSICAL_QUBIT.finditer(code)
        ]
        if physical:
            qubits = max(qubits, max(physical) + 1)
    check_counts(qubits, clbits, limit, where)


def check_counts(qubits: int, clbits: int, limit: WidthLimit, where: str) -> None:
    if qubits > limit.max_qubits:
        raise InvalidInput(
            ErrorCode.INVALID_FOR_BACKEND,
            f"{where}: the circuit declares {qubits} qubits but {limit.source} allows at most "
            f"{limit.max_qubits}.",
        )
    if clbits > limit.max_clbits:
        raise InvalidInput(
            ErrorCode.INVALID_FOR_BACKEND,
            f"{where}: the circuit declares {clbits} classical bits but {limit.source} allows at most "
            f"{limit.max_clbits}.",
        )


# QPY (qiskit.qpy's documented binary format): file header, then per program a circuit header whose
# fixed part holds num_qubits and num_clbits.
_QPY_MAGIC = b"QISKIT"
_FILE_HEADER = "!6sBBBBQ"  # before version 10
_FILE_HEADER_V10 = "!6sBBBBQc"
_CIRCUIT_HEADER = {1: "!HdIIQIQ", 2: "!H1cHIIQIQ", 12: "!H1cHIIQIQI"}
QPY_HEADER_BYTES = 256  # enough of the inflated payload to read the headers of one circuit


def check_qpy_header(data: bytes, limit: WidthLimit, where: str) -> None:
    """Refuse a QPY payload (the start of it suffices) that is not one circuit or whose circuit
    header declares more qubits or classical bits than `limit` allows, before it is loaded."""
    if len(data) < 7 or not data.startswith(_QPY_MAGIC):
        return  # not QPY: the loader refuses it in its own words
    version = data[6]
    file_format = _FILE_HEADER_V10 if version >= 10 else _FILE_HEADER
    try:
        header = struct.unpack_from(file_format, data, 0)
        offset = struct.calcsize(file_format)
        num_programs = header[5]
        if num_programs != 1:
            raise InvalidInput(
                ErrorCode.MALFORMED_CIRCUIT, f"{where}: a QPY circuit value must hold exactly one circuit."
            )
        if version >= 5:
            if data[offset : offset + 1] != b"q":
                raise InvalidInput(ErrorCode.MALFORMED_CIRCUIT, f"{where}: the QPY data is not a circuit.")
            offset += 1
        if version >= 16:
            (program_offset,) = struct.unpack_from("!Q", data, offset)
            offset = program_offset
        circuit_format = _CIRCUIT_HEADER[12 if version >= 12 else 2 if version >= 2 else 1]
        fields = struct.unpack_from(circuit_format, data, offset)
    except (struct.error, IndexError) as exc:
        raise InvalidInput(ErrorCode.MALFORMED_CIRCUIT, f"{where}: the QPY header is truncated.") from exc
    num_qubits, num_clbits = (fields[2], fields[3]) if version < 2 else (fields[3], fields[4])
    check_counts(num_qubits, num_clbits, limit, where)
