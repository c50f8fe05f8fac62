from typing import Any

from fastapi import APIRouter, Request

from services.api.apidocs.spec import DocumentedRoute, documented
from services.api.dependencies import context
from shared.kit.errors import ErrorCode as E

from .schemas import BackendDocument, BackendList, BackendStatus

UNKNOWN = [(404, E.BACKEND_NOT_FOUND)]
# How every document of fake_manila starts.
MANILA = {"backend_name": "fake_manila", "backend_version": "1.2.6"}

router = APIRouter(tags=["backends"], route_class=DocumentedRoute)


@router.get(
    "/backends",
    response_model=BackendList,
    **documented(
        example={
            "devices": [
                {
                    "name": "fake_manila",
                    "class": "device",
                    "backend_name": "fake_manila",
                    "qubits": 5,
                    "physical_qubits": 5,
                    "simulator": False,
                    "status": {"name": "online"},
                    "queue_length": 0,
                }
            ]
        }
    ),
)
async def list_backends(request: Request, include_mocks: bool = False) -> dict[str, Any]:
    """List backends

    The backends served here, with size, simulator flag, online state and queue length: what
    `service.backends()` reads.
    """
    states = await context(request).backends.states(include_mocks=include_mocks)
    return {
        "devices": [
            {
                "name": s.info.name,
                "class": "mock" if s.info.mock else "device",
                "backend_name": s.info.name,
                "qubits": s.info.num_qubits,
                "physical_qubits": s.info.num_qubits,
                "simulator": s.info.simulator,
                "status": {"name": "online" if s.online else "offline"},
                "queue_length": s.queue_length,
            }
            for s in states
        ]
    }


@router.get(
    "/backends/{name}/configuration",
    **documented(
        example={
            **MANILA,
            "n_qubits": 5,
            "basis_gates": ["cx", "id", "rz", "sx", "x"],
            "coupling_map": [[0, 1], [1, 0], [1, 2], [2, 1], [2, 3], [3, 2], [3, 4], [4, 3]],
            "simulator": False,
            "max_shots": 100000,
            "max_experiments": 300,
        },
        refusals=UNKNOWN,
    ),
)
async def backend_configuration(name: str, request: Request) -> BackendDocument:
    """Get a backend's configuration

    The IBM configuration document of the backend (basis gates, coupling map, limits), from which the client
    builds its Target.
    """
    return BackendDocument.model_validate(context(request).backends.configuration(name))


@router.get(
    "/backends/{name}/properties",
    **documented(
        example={
            **MANILA,
            "last_update_date": "2024-05-27T15:27:23-03:00",
            "qubits": [[{"date": "2024-05-27T04:30:14-03:00", "name": "T1", "unit": "us", "value": 131.53}]],
            "gates": [
                {
                    "qubits": [4, 3],
                    "gate": "cx",
                    "parameters": [
                        {
                            "date": "2024-05-27T04:49:03-03:00",
                            "name": "gate_error",
                            "unit": "",
                            "value": 0.0057,
                        }
                    ],
                    "name": "cx4_3",
                }
            ],
        },
        refusals=UNKNOWN,
    ),
)
async def backend_properties(name: str, request: Request) -> BackendDocument:
    """Get a backend's properties

    The IBM properties document (qubit T1/T2, gate and readout errors) that the noise model and the client's
    Target use; `{}`-like for the ideal simulator.
    """
    return BackendDocument.model_validate(context(request).backends.properties(name))


@router.get(
    "/backends/{name}/status",
    response_model=BackendStatus,
    **documented(
        example={
            **MANILA,
            "state": True,
            "status": "active",
            "message": "",
            "length_queue": 0,
        },
        refusals=UNKNOWN,
    ),
)
async def backend_status(name: str, request: Request) -> dict[str, Any]:
    """Get a backend's status

    Whether the backend takes jobs now (an executor serves it) and its queue length.
    """
    state = await context(request).backends.state(name)
    return {
        "backend_name": name,
        "backend_version": str(context(request).backends.configuration(name).get("backend_version", "1")),
        # `active` with state true is what the client expects of a backend it may submit to.
        "state": state.online,
        "status": "active" if state.online else "internal",
        "message": "" if state.online else "no executor serves this backend at the moment",
        "length_queue": state.queue_length,
    }
