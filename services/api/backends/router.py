from typing import Any

from fastapi import APIRouter, Request

from services.api.dependencies import context

router = APIRouter(tags=["backends"])


@router.get("/backends")
async def list_backends(request: Request, include_mocks: bool = False) -> dict[str, Any]:
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


@router.get("/backends/{name}/configuration")
async def backend_configuration(name: str, request: Request) -> dict[str, Any]:
    return context(request).backends.configuration(name)


@router.get("/backends/{name}/properties")
async def backend_properties(name: str, request: Request) -> dict[str, Any]:
    return context(request).backends.properties(name)


@router.get("/backends/{name}/status")
async def backend_status(name: str, request: Request) -> dict[str, Any]:
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
