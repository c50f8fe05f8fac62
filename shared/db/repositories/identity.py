"""SQL for users, API keys, instances and memberships."""

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.driver import driver
from shared.db.models import ApiKey, Instance, InstanceMember, Job, User
from shared.db.repositories.locks import lock_row
from shared.jobs.states import JobStatus


class IdentityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: User | ApiKey | Instance) -> None:
        self.session.add(row)
        await self.session.flush()

    async def user_by_name(self, name: str) -> User | None:
        return await self.session.scalar(select(User).where(User.name == name))

    async def user(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def users(self) -> list[User]:
        return list(await self.session.scalars(select(User).order_by(User.created_at)))

    async def count_users(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(User)) or 0)

    async def key_with_user(self, key_id: str) -> tuple[ApiKey, User] | None:
        row = (
            await self.session.execute(
                select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.id == key_id)
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def touch_key(self, key_id: str) -> None:
        await self.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=func.now()))

    async def revoke_key(self, key_id: str) -> ApiKey | None:
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=func.now())
            .returning(ApiKey)
        )
        return result.scalars().first()

    async def instance(self, instance_id: str) -> Instance | None:
        return await self.session.get(Instance, instance_id)

    async def concurrency_limit(self, instance_id: str) -> int | None:
        """The instance's limit on queued and running jobs (None: none, or no such instance); on the
        driver, since every submission asks."""
        return await (await driver(self.session)).fetchval(  # type: ignore[no-any-return]
            "SELECT max_concurrent_jobs FROM instances WHERE id = $1", instance_id
        )

    async def instance_by_name(self, name: str) -> Instance | None:
        return await self.session.scalar(select(Instance).where(Instance.name == name))

    async def instance_by_crn(self, crn: str) -> Instance | None:
        return await self.session.scalar(select(Instance).where(Instance.crn == crn))

    async def instances(self) -> list[Instance]:
        return list(await self.session.scalars(select(Instance).order_by(Instance.created_at)))

    async def instances_of(self, user_id: str) -> list[Instance]:
        return list(
            await self.session.scalars(
                select(Instance)
                .join(InstanceMember, InstanceMember.instance_id == Instance.id)
                .where(InstanceMember.user_id == user_id)
                .order_by(Instance.created_at)
            )
        )

    async def is_member(self, instance_id: str, user_id: str) -> bool:
        found = await self.session.scalar(
            select(InstanceMember.user_id).where(
                InstanceMember.instance_id == instance_id, InstanceMember.user_id == user_id
            )
        )
        return found is not None

    async def add_member(self, instance_id: str, user_id: str) -> None:
        await self.session.execute(
            insert(InstanceMember).values(instance_id=instance_id, user_id=user_id).on_conflict_do_nothing()
        )

    async def lock_instance(self, instance_id: str) -> Instance | None:
        """Serialises submissions per instance, so a concurrency limit cannot be overrun by a race."""
        return await lock_row(self.session, Instance, Instance.id == instance_id)

    async def unfinished_jobs(self, instance_id: str) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(Job)
            .where(
                Job.instance_id == instance_id,
                Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
            )
        )
        return int(count or 0)

    async def allocation_and_usage(
        self, instance_id: str, since: datetime
    ) -> tuple[float | None, float] | None:
        """The instance's allocation (None: unlimited) and its billed seconds since `since`, as
        `usage_seconds` counts them: one statement on the driver, since the official client asks
        before every submission. None: no such instance."""
        row = await (await driver(self.session)).fetchrow(_ALLOCATION_AND_USAGE, instance_id, since)
        return None if row is None else (row["allocation"], float(row["used"]))

    async def usage_seconds(self, instance_id: str, since: datetime) -> float:
        """Execution time of the instance's finished jobs in the window; cancelled jobs do not count.
        Read from the hourly rollup: the hour in which the window starts counts whole."""
        total = await (await driver(self.session)).fetchval(_USAGE, instance_id, since)
        return float(total or 0.0)

    async def instances_over_allocation(self, since: datetime) -> list[str]:
        """Instances whose billed usage since `since` (from the hourly rollup) reached their allocation.
        On the driver: the scheduling pass asks this once a pass."""
        rows = await (await driver(self.session)).fetch(_OVER_ALLOCATION, since)
        return [row[0] for row in rows]


def _billed_since(since: str) -> str:
    """SQL: the seconds the row of `instances` in scope billed since `since` (a parameter's
    placeholder), by the hourly rollup: the hour in which `since` falls counts whole."""
    return f"""(SELECT coalesce(sum(billed_seconds), 0.0) FROM usage_rollup
       WHERE usage_rollup.instance_key = instances.id AND usage_rollup.hour >= date_trunc('hour', {since}::timestamptz))"""


def _allocation_used_up(since: str) -> str:
    """SQL: the row of `instances` in scope has billed its allocation since `since` (a parameter's
    placeholder), by the hourly rollup; the scheduling pass and a lone job's placement ask it."""
    return f"""instances.usage_allocation_seconds IS NOT NULL
  AND {_billed_since(since)} >= instances.usage_allocation_seconds"""


_USAGE = f"SELECT {_billed_since('$2')} FROM instances WHERE id = $1"

_ALLOCATION_AND_USAGE = f"""
SELECT usage_allocation_seconds AS allocation, {_billed_since("$2")} AS used
FROM instances WHERE id = $1"""

_OVER_ALLOCATION = f"""
SELECT instances.id FROM instances
WHERE {_allocation_used_up("$1")}"""
