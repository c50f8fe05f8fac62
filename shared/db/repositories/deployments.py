"""SQL for deployments and their programs."""

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Deployment, Job, QuantumProgram


class DeploymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, deployment: Deployment, programs: list[QuantumProgram]) -> None:
        self.session.add(deployment)
        await self.session.flush()
        self.session.add_all(programs)
        await self.session.flush()

    async def get(self, deployment_id: str) -> Deployment | None:
        return await self.session.get(Deployment, deployment_id)

    async def programs(self, deployment_id: str) -> list[QuantumProgram]:
        rows = await self.session.scalars(
            select(QuantumProgram)
            .where(QuantumProgram.deployment_id == deployment_id)
            .order_by(QuantumProgram.position)
        )
        return list(rows)

    async def find(
        self, user_id: str | None, name: str | None, limit: int, offset: int
    ) -> tuple[list[Deployment], int]:
        conditions = []
        if user_id is not None:
            conditions.append(Deployment.user_id == user_id)
        if name:
            conditions.append(Deployment.name == name)
        total = await self.session.scalar(select(func.count()).select_from(Deployment).where(*conditions))
        rows = await self.session.scalars(
            select(Deployment)
            .where(*conditions)
            .order_by(Deployment.created_at.desc(), Deployment.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return list(rows), int(total or 0)

    async def replace_programs(self, deployment_id: str, name: str, programs: list[QuantumProgram]) -> None:
        await self.session.execute(
            delete(QuantumProgram).where(QuantumProgram.deployment_id == deployment_id)
        )
        await self.session.execute(
            update(Deployment).where(Deployment.id == deployment_id).values(name=name, updated_at=func.now())
        )
        self.session.add_all(programs)
        await self.session.flush()

    async def job_count(self, deployment_id: str) -> int:
        count = await self.session.scalar(
            select(func.count()).select_from(Job).where(Job.deployment_id == deployment_id)
        )
        return int(count or 0)

    async def lock(self, deployment_id: str) -> Deployment | None:
        return await self.session.scalar(
            select(Deployment).where(Deployment.id == deployment_id).with_for_update()
        )

    async def delete(self, deployment_id: str) -> None:
        await self.session.execute(delete(Deployment).where(Deployment.id == deployment_id))
