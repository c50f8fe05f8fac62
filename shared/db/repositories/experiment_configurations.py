"""SQL for an instance's experiment settings: its global parameters (one versioned namespace) and
its device configurations (named, versioned, at most one default per backend)."""

from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ExperimentDeviceConfiguration, ExperimentGlobalParameters


class ExperimentConfigurationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- global parameters ---------------------------------------------------------------------

    async def global_parameters(
        self, instance_id: str, lock: bool = False
    ) -> ExperimentGlobalParameters | None:
        query = select(ExperimentGlobalParameters).where(
            ExperimentGlobalParameters.instance_id == instance_id
        )
        if lock:
            query = query.with_for_update()
        return await self.session.scalar(query.execution_options(populate_existing=True))

    async def set_global_parameters(self, instance_id: str, parameters: dict[str, Any]) -> int:
        """Replace the whole namespace; returns its new version."""
        current = await self.global_parameters(instance_id, lock=True)
        if current is None:
            self.session.add(
                ExperimentGlobalParameters(instance_id=instance_id, parameters=parameters, version=1)
            )
            await self.session.flush()
            return 1
        result = await self.session.execute(
            update(ExperimentGlobalParameters)
            .where(ExperimentGlobalParameters.instance_id == instance_id)
            .values(
                parameters=parameters, version=ExperimentGlobalParameters.version + 1, updated_at=func.now()
            )
            .returning(ExperimentGlobalParameters.version)
            .execution_options(synchronize_session=False)
        )
        return int(result.scalar_one())

    # --- device configurations -----------------------------------------------------------------

    async def device_configuration(self, instance_id: str, name: str) -> ExperimentDeviceConfiguration | None:
        return await self.session.scalar(
            select(ExperimentDeviceConfiguration)
            .where(
                ExperimentDeviceConfiguration.instance_id == instance_id,
                ExperimentDeviceConfiguration.name == name,
            )
            .execution_options(populate_existing=True)
        )

    async def device_configurations(self, instance_id: str) -> list[ExperimentDeviceConfiguration]:
        rows = await self.session.scalars(
            select(ExperimentDeviceConfiguration)
            .where(ExperimentDeviceConfiguration.instance_id == instance_id)
            .order_by(ExperimentDeviceConfiguration.name)
            .execution_options(populate_existing=True)
        )
        return list(rows)

    async def default_configuration(
        self, instance_id: str, backend: str
    ) -> ExperimentDeviceConfiguration | None:
        return await self.session.scalar(
            select(ExperimentDeviceConfiguration).where(
                ExperimentDeviceConfiguration.instance_id == instance_id,
                ExperimentDeviceConfiguration.backend == backend,
                ExperimentDeviceConfiguration.is_default,
            )
        )

    async def put_device_configuration(
        self, row: ExperimentDeviceConfiguration
    ) -> ExperimentDeviceConfiguration:
        """Create or replace a configuration; a default one takes the default role from its backend's
        previous default."""
        if row.is_default:
            await self.session.execute(
                update(ExperimentDeviceConfiguration)
                .where(
                    ExperimentDeviceConfiguration.instance_id == row.instance_id,
                    ExperimentDeviceConfiguration.backend == row.backend,
                    ExperimentDeviceConfiguration.name != row.name,
                    ExperimentDeviceConfiguration.is_default,
                )
                .values(is_default=False)
            )
        existing = await self.device_configuration(row.instance_id, row.name)
        if existing is None:
            row.version = 1
            self.session.add(row)
            await self.session.flush()
            return row
        existing.backend = row.backend
        existing.options = row.options
        existing.shots = row.shots
        existing.seed = row.seed
        existing.is_default = row.is_default
        existing.version = existing.version + 1
        existing.updated_at = func.now()  # type: ignore[assignment]
        await self.session.flush()
        await self.session.refresh(existing)
        return existing

    async def delete_device_configuration(self, instance_id: str, name: str) -> bool:
        result = await self.session.execute(
            delete(ExperimentDeviceConfiguration).where(
                and_(
                    ExperimentDeviceConfiguration.instance_id == instance_id,
                    ExperimentDeviceConfiguration.name == name,
                )
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
