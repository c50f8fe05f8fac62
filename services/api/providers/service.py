"""Providers, their devices (the backends served here) and users' encrypted provider credentials."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.backends.service import BackendService, BackendState
from services.api.providers.catalog import PROVIDERS, Provider
from services.api.providers.secrets_box import SecretsBox
from shared.backends.catalog import AER_SIMULATOR
from shared.db.engine import unit_of_work
from shared.db.repositories.credentials import CredentialRepository
from shared.identity.service import Principal
from shared.kit.errors import ErrorCode, InvalidInput, NotFound

from .schemas import CredentialStatus, DeviceList, DeviceView, ProviderView


class ProviderService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], backends: BackendService, secrets: SecretsBox
    ) -> None:
        self.sessions = sessions
        self.backends = backends
        self.secrets = secrets

    def provider(self, name: str) -> Provider:
        provider = PROVIDERS.get(name.upper())
        if provider is None:
            raise NotFound(
                ErrorCode.NOT_FOUND, f"Provider {name} does not exist; known: {', '.join(PROVIDERS)}."
            )
        return provider

    async def providers(self) -> list[ProviderView]:
        names = [s.info.name for s in await self.backends.states()]
        return [
            ProviderView(
                name=p.name,
                with_token=p.with_token,
                supported_languages=list(p.supported_languages),
                description=p.description,
                devices=names if p.serves_local_backends else [],
            )
            for p in PROVIDERS.values()
        ]

    async def devices(
        self,
        provider: str | None = None,
        min_qubits: int | None = None,
        is_simulator: bool | None = None,
        is_local: bool | None = None,
    ) -> DeviceList:
        if provider is not None and not self.provider(provider).serves_local_backends:
            return DeviceList(devices=[], count=0)
        views = [_device(state) for state in await self.backends.states()]
        chosen = [
            d
            for d in views
            if (min_qubits is None or d.num_qubits >= min_qubits)
            and (is_simulator is None or d.is_simulator == is_simulator)
            and (is_local is None or d.is_local == is_local)
        ]
        return DeviceList(devices=chosen, count=len(chosen))

    async def device(self, device_id: str) -> DeviceView:
        self.backends.info(device_id)
        return _device(await self.backends.state(device_id))

    async def put_credential(self, name: str, token: str, principal: Principal) -> None:
        provider = self.provider(name)
        if not provider.with_token:
            raise InvalidInput(ErrorCode.INVALID_REQUEST, f"Provider {provider.name} takes no token.")
        async with unit_of_work(self.sessions) as session:
            await CredentialRepository(session).put(
                principal.user_id, provider.name, self.secrets.seal(token)
            )

    async def credential_status(self, name: str, principal: Principal) -> CredentialStatus:
        provider = self.provider(name)
        async with unit_of_work(self.sessions) as session:
            stored = await CredentialRepository(session).get(principal.user_id, provider.name)
        # The token itself is never returned, not even to its owner.
        return CredentialStatus(
            provider=provider.name,
            configured=stored is not None,
            updated_at=stored.updated_at if stored else None,
        )

    async def delete_credential(self, name: str, principal: Principal) -> None:
        provider = self.provider(name)
        async with unit_of_work(self.sessions) as session:
            await CredentialRepository(session).delete(principal.user_id, provider.name)


def _device(state: BackendState) -> DeviceView:
    info = state.info
    return DeviceView(
        id=info.name,
        name=info.name,
        num_qubits=info.num_qubits,
        # Everything served here is a simulation; fake devices simulate a real chip's noise.
        is_simulator=True,
        is_local=True,
        provider="IBM",
        noise="ideal" if info.name == AER_SIMULATOR else info.name,
        status="online" if state.online else "offline",
        queue_length=state.queue_length,
    )
