"""Providers and the devices they offer (qunicorn's model).

Every backend qruntime serves is a local simulation of the provider "IBM" (Qiskit Aer, ideal or with a
fake IBM device's noise). Providers that forward to remote hardware (IBM Quantum, AWS Braket) need a
user's token, which is stored encrypted; "AWS" is listed for that purpose and offers no device yet.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    name: str
    with_token: bool
    supported_languages: tuple[str, ...]
    serves_local_backends: bool
    description: str


PROVIDERS = {
    "IBM": Provider(
        name="IBM",
        with_token=True,
        supported_languages=("QASM2", "QASM3", "QPY"),
        serves_local_backends=True,
        description="Qiskit Aer simulations of the ideal simulator and of fake IBM devices; "
        "a token is only needed for IBM Quantum hardware (not yet forwarded).",
    ),
    "AWS": Provider(
        name="AWS",
        with_token=True,
        supported_languages=("QASM3",),
        serves_local_backends=False,
        description="Amazon Braket: credentials can be stored; forwarding jobs is not available yet.",
    ),
}
