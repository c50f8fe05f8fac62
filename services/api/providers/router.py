from fastapi import APIRouter, Query, Request

from services.api.apidocs.spec import DocumentedRoute, documented
from services.api.auth import CurrentPrincipal
from services.api.boundary import INT32_MAX
from services.api.dependencies import context
from shared.kit.errors import ErrorCode as E

from .schemas import CredentialPut, CredentialStatus, DeviceList, DeviceView, ProviderView

DEVICE = {
    "id": "fake_manila",
    "name": "fake_manila",
    "num_qubits": 5,
    "is_simulator": True,
    "is_local": True,
    "provider": "IBM",
    "noise": "fake_manila",
    "status": "online",
    "queue_length": 0,
}


router = APIRouter(tags=["providers and devices"], route_class=DocumentedRoute)


@router.get(
    "/providers",
    **documented(
        example=[
            {
                "name": "IBM",
                "with_token": True,
                "supported_languages": ["QASM2", "QASM3", "QPY"],
                "description": "Qiskit Aer simulations of the ideal simulator and of fake IBM devices; "
                "a token is only needed for IBM Quantum hardware (not yet forwarded).",
                "devices": ["aer_simulator", "fake_manila"],
            }
        ]
    ),
)
async def list_providers(request: Request) -> list[ProviderView]:
    """List providers

    Where programs can run: each provider, whether it takes a token, the program languages it accepts and its
    devices.
    """
    return await context(request).providers.providers()


@router.put(
    "/providers/{name}/credentials",
    **documented(request_example={"token": "<provider token>"}, refusals=[E.NOT_FOUND], status=204),
)
async def put_credential(
    name: str, body: CredentialPut, request: Request, principal: CurrentPrincipal
) -> None:
    """Store a provider token

    Store the caller's token for a provider that takes one, encrypted at rest (QRUNTIME_SECRETS_KEY); it is
    never returned.
    """
    await context(request).providers.put_credential(name, body.token, principal)


@router.get(
    "/providers/{name}/credentials",
    **documented(
        example={"provider": "IBM", "configured": True, "updated_at": "2026-11-30T02:30:00Z"},
        refusals=[E.NOT_FOUND],
    ),
)
async def credential_status(name: str, request: Request, principal: CurrentPrincipal) -> CredentialStatus:
    """Is a provider token stored?

    Whether the caller has a token stored for the provider, and when it was last set (never the token).
    """
    return await context(request).providers.credential_status(name, principal)


@router.delete(
    "/providers/{name}/credentials",
    **documented(refusals=[E.NOT_FOUND], status=204),
)
async def delete_credential(name: str, request: Request, principal: CurrentPrincipal) -> None:
    """Delete a provider token

    Forget the caller's token for the provider.
    """
    await context(request).providers.delete_credential(name, principal)


@router.get(
    "/devices",
    **documented(example={"devices": [DEVICE], "count": 1}),
)
async def list_devices(
    request: Request,
    provider: str | None = None,
    min_qubits: int | None = Query(default=None, ge=0, le=INT32_MAX),
    is_simulator: bool | None = None,
    is_local: bool | None = None,
) -> DeviceList:
    """List devices

    Devices programs can run on, filtered by provider, minimum number of qubits, simulator or not, local or
    not; `count` is the number of matches.
    """
    return await context(request).providers.devices(provider, min_qubits, is_simulator, is_local)


@router.get(
    "/devices/{device_id}",
    **documented(example=DEVICE, refusals=[(404, E.BACKEND_NOT_FOUND)]),
)
async def get_device(device_id: str, request: Request) -> DeviceView:
    """Get a device

    One device, its size, noise model, status and queue length.
    """
    return await context(request).providers.device(device_id)
