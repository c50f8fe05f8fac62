"""The backends the official client discovers: their list, configuration, properties and status."""

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.backends import catalog as catalog_data
from shared.backends.catalog import BackendInfo
from shared.db.engine import single_statement, unit_of_work
from shared.db.repositories.overview import OverviewRepository
from shared.kit.errors import ErrorCode, NotFound
from shared.kit.settings import Settings


@dataclass(frozen=True)
class BackendState:
    info: BackendInfo
    online: bool
    queue_length: int


class BackendService:
    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], catalog: dict[str, BackendInfo]
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.catalog = catalog

    def info(self, name: str) -> BackendInfo:
        info = self.catalog.get(catalog_data.device_of_mock(name) or name)
        if info is None:
            raise NotFound(ErrorCode.BACKEND_NOT_FOUND, f"Backend {name} is not served here.")
        return info

    async def states(self, include_mocks: bool = False) -> list[BackendState]:
        async with unit_of_work(self.sessions) as session:
            repo = OverviewRepository(session)
            live = await repo.live_executors(self.settings.executor_lease_seconds)
            queues = await repo.queue_lengths()
        states = [
            BackendState(info, name in live, queues.get(name, 0)) for name, info in self.catalog.items()
        ]
        if include_mocks:
            # A mock runs on its device's executor, without simulating: it answers when that one does.
            states += [
                _as_mock(s, mock)
                for s in list(states)
                if (mock := catalog_data.mock_name(s.info.name)) is not None
            ]
        return states

    async def state(self, name: str) -> BackendState:
        """One backend's state, in one statement (the official client asks before every submission)."""
        info = self.info(name)
        async with single_statement(self.sessions) as session:
            online, queued = await OverviewRepository(session).backend_state(
                info.name, self.settings.executor_lease_seconds
            )
        state = BackendState(info, online, queued)
        return state if info.name == name else _as_mock(state, name)

    def configuration(self, name: str) -> dict[str, Any]:
        real = self.info(name).name
        conf = catalog_data.configuration(real, self.settings.aer_max_qubits, self.settings.max_shots)
        return conf if real == name else {**conf, "backend_name": name}

    def properties(self, name: str) -> dict[str, Any]:
        real = self.info(name).name
        props = catalog_data.properties(real)
        return props if real == name else {**props, "backend_name": name}


def _as_mock(device: BackendState, name: str) -> BackendState:
    """The mock `name` of a device: it answers when the device's executor does, and nothing queues for it."""
    return BackendState(replace(device.info, name=name, mock=True), device.online, 0)
