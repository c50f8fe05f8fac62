from fastapi import APIRouter, Query, Request, Response

from services.api.auth import CurrentPrincipal
from services.api.boundary import INT32_MAX
from services.api.dependencies import context

from .schemas import CredentialPut, CredentialStatus, DeviceList, DeviceView, ProviderView

router = APIRouter(tags=["providers and devices"])


@router.get("/providers", response_model=list[ProviderView])
async def list_providers(request: Request) -> list[ProviderView]:
    return await context(request).providers.providers()


@router.put("/providers/{name}/credentials", status_code=204)
async def put_credential(
    name: str, body: CredentialPut, request: Request, principal: CurrentPrincipal
) -> Response:
    await context(request).providers.put_credential(name, body.token, principal)
    return Response(status_code=204)


@router.get("/providers/{name}/credentials", response_model=CredentialStatus)
async def credential_status(name: str, request: Request, principal: CurrentPrincipal) -> CredentialStatus:
    return await context(request).providers.credential_status(name, principal)


@router.delete("/providers/{name}/credentials", status_code=204)
async def delete_credential(name: str, request: Request, principal: CurrentPrincipal) -> Response:
    await context(request).providers.delete_credential(name, principal)
    return Response(status_code=204)


@router.get("/devices", response_model=DeviceList)
async def list_devices(
    request: Request,
    provider: str | None = None,
    min_qubits: int | None = Query(default=None, ge=0, le=INT32_MAX),
    is_simulator: bool | None = None,
    is_local: bool | None = None,
) -> DeviceList:
    return await context(request).providers.devices(provider, min_qubits, is_simulator, is_local)


@router.get("/devices/{device_id}", response_model=DeviceView)
async def get_device(device_id: str, request: Request) -> DeviceView:
    return await context(request).providers.device(device_id)
