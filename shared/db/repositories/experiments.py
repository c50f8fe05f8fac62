"""SQL for the experiment store: the path tree, sequences, points and the jobs that run them (global
parameters and device configurations: experiment_configurations.py, reached as `.configurations`).
Everything is scoped by instance (the tree's owner).

Read methods meant for other features too (the web console): `tree`, `children`, `get_sequence`,
`list_sequences`, `points`, `point_counts`, `sequence_jobs`."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import (
    ExperimentJob,
    ExperimentPath,
    ExperimentPoint,
    ExperimentSequence,
    Job,
)
from shared.db.repositories.experiment_configurations import ExperimentConfigurationRepository
from shared.db.repositories.locks import lock_row
from shared.experiments.states import SequenceState, sequence_sources_of
from shared.jobs.states import JobStatus, sources_of


@dataclass(frozen=True)
class TreeEntry:
    path: str
    created_at: datetime
    is_sequence: bool
    state: SequenceState | None


@dataclass(frozen=True)
class PointCounts:
    total: int
    done: int


def _under(prefix: str) -> Any:
    """Paths strictly below `prefix` (no LIKE: "_" in a name must not be a wildcard)."""
    start = prefix.rstrip("/") + "/"
    return func.left(ExperimentPath.path, len(start)) == start


def _points_of(sequence_id: int) -> Select[ExperimentPoint]:
    """The points of a sequence, by index."""
    return (
        select(ExperimentPoint)
        .where(ExperimentPoint.sequence_id == sequence_id)
        .order_by(ExperimentPoint.index)
    )


class ExperimentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def configurations(self) -> ExperimentConfigurationRepository:
        """Global parameters and device configurations, in the same unit of work."""
        return ExperimentConfigurationRepository(self.session)

    # --- paths ---------------------------------------------------------------------------------

    async def get_path(self, instance_id: str, path: str) -> ExperimentPath | None:
        return await self.session.scalar(
            select(ExperimentPath).where(
                ExperimentPath.instance_id == instance_id, ExperimentPath.path == path
            )
        )

    async def add_path(self, instance_id: str, path: str, parent_id: int | None) -> ExperimentPath:
        row = ExperimentPath(instance_id=instance_id, path=path, parent_id=parent_id)
        self.session.add(row)
        await self.session.flush()
        await self.session.refresh(row)
        return row

    async def children(self, instance_id: str, parent_id: int | None) -> list[TreeEntry]:
        """The direct children of a path (None: of the root), by name."""
        parent = (
            ExperimentPath.parent_id.is_(None) if parent_id is None else ExperimentPath.parent_id == parent_id
        )
        rows = await self.session.execute(
            select(ExperimentPath.path, ExperimentPath.created_at, ExperimentSequence.state)
            .outerjoin(ExperimentSequence, ExperimentSequence.path_id == ExperimentPath.id)
            .where(ExperimentPath.instance_id == instance_id, parent)
            .order_by(ExperimentPath.path)
        )
        return [_entry(*row) for row in rows]

    async def tree(self, instance_id: str, under: str | None = None) -> list[TreeEntry]:
        """Every path of the instance (below `under`, if given) in path order, with sequence states."""
        query = (
            select(ExperimentPath.path, ExperimentPath.created_at, ExperimentSequence.state)
            .outerjoin(ExperimentSequence, ExperimentSequence.path_id == ExperimentPath.id)
            .where(ExperimentPath.instance_id == instance_id)
            .order_by(ExperimentPath.path)
        )
        if under is not None and under != "/":
            query = query.where(or_(ExperimentPath.path == under, _under(under)))
        return [_entry(*row) for row in await self.session.execute(query)]

    async def sequences_under(self, instance_id: str, path: str) -> list[tuple[str, SequenceState]]:
        """The sequences at `path` or below it, with their states."""
        rows = await self.session.execute(
            select(ExperimentPath.path, ExperimentSequence.state)
            .join(ExperimentSequence, ExperimentSequence.path_id == ExperimentPath.id)
            .where(
                ExperimentPath.instance_id == instance_id,
                or_(ExperimentPath.path == path, _under(path)),
            )
            .with_for_update(of=ExperimentSequence)
        )
        return [(p, SequenceState(s)) for p, s in rows]

    async def delete_path(self, path_id: int) -> None:
        """The path and, by cascade, every descendant, sequence and point."""
        await self.session.execute(delete(ExperimentPath).where(ExperimentPath.id == path_id))

    async def move(self, instance_id: str, source: ExperimentPath, target: str, parent_id: int | None) -> int:
        """Rename `source` to `target` and every descendant with it; returns how many paths moved."""
        old = source.path
        await self.session.execute(
            update(ExperimentPath).where(ExperimentPath.id == source.id).values(parent_id=parent_id)
        )
        moved = await self.session.execute(
            update(ExperimentPath)
            .where(
                ExperimentPath.instance_id == instance_id, or_(ExperimentPath.id == source.id, _under(old))
            )
            .values(path=literal(target) + func.substr(ExperimentPath.path, len(old) + 1))
            .execution_options(synchronize_session=False)
        )
        return int(moved.rowcount)  # type: ignore[attr-defined]

    # --- sequences -----------------------------------------------------------------------------

    async def get_sequence(
        self, instance_id: str, path: str, lock: bool = False
    ) -> tuple[ExperimentPath, ExperimentSequence] | None:
        query = (
            select(ExperimentPath, ExperimentSequence)
            .join(ExperimentSequence, ExperimentSequence.path_id == ExperimentPath.id)
            .where(ExperimentPath.instance_id == instance_id, ExperimentPath.path == path)
            .execution_options(populate_existing=True)
        )
        if lock:
            query = query.with_for_update(of=ExperimentSequence)
        row = (await self.session.execute(query)).first()
        return None if row is None else (row[0], row[1])

    async def is_sequence(self, path_id: int) -> bool:
        found = await self.session.scalar(
            select(ExperimentSequence.path_id).where(ExperimentSequence.path_id == path_id)
        )
        return found is not None

    async def add_sequence(self, sequence: ExperimentSequence) -> ExperimentSequence:
        self.session.add(sequence)
        await self.session.flush()
        await self.session.refresh(sequence)
        return sequence

    async def edit_draft(self, path_id: int, **values: Any) -> ExperimentSequence | None:
        """Change a DRAFT's fields; None when it is not a draft (any more)."""
        result = await self.session.execute(
            update(ExperimentSequence)
            .where(
                ExperimentSequence.path_id == path_id, ExperimentSequence.state == SequenceState.DRAFT.value
            )
            .values(version=ExperimentSequence.version + 1, updated_at=func.now(), **values)
            .returning(ExperimentSequence)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return result.scalars().first()

    async def transition(
        self, path_id: int, target: SequenceState, **values: Any
    ) -> ExperimentSequence | None:
        """Conditional UPDATE from a state the transition table allows; None when none matched."""
        sources = [s.value for s in sequence_sources_of(target)]
        result = await self.session.execute(
            update(ExperimentSequence)
            .where(ExperimentSequence.path_id == path_id, ExperimentSequence.state.in_(sources))
            .values(
                state=target.value,
                version=ExperimentSequence.version + 1,
                updated_at=func.now(),
                **values,
            )
            .returning(ExperimentSequence)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return result.scalars().first()

    async def list_sequences(
        self,
        instance_id: str,
        state: SequenceState | None,
        under: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[tuple[ExperimentPath, ExperimentSequence]], int]:
        where = [ExperimentPath.instance_id == instance_id]
        if state is not None:
            where.append(ExperimentSequence.state == state.value)
        if under is not None and under != "/":
            where.append(or_(ExperimentPath.path == under, _under(under)))
        base = (
            select(ExperimentPath, ExperimentSequence)
            .join(ExperimentSequence, ExperimentSequence.path_id == ExperimentPath.id)
            .where(*where)
        )
        total = await self.session.scalar(select(func.count()).select_from(base.subquery()))
        rows = await self.session.execute(base.order_by(ExperimentPath.path).limit(limit).offset(offset))
        return [(row[0], row[1]) for row in rows], int(total or 0)

    # --- points and jobs -----------------------------------------------------------------------

    async def add_points(self, points: Sequence[ExperimentPoint]) -> None:
        self.session.add_all(points)
        await self.session.flush()

    async def add_jobs(self, links: Sequence[ExperimentJob]) -> None:
        self.session.add_all(links)
        await self.session.flush()

    async def assign_points(self, sequence_id: int, ranges: Sequence[tuple[str, int, int]]) -> None:
        """Points [first, first + count) run in job `job_id`, for each (job_id, first, count)."""
        for job_id, first, count in ranges:
            await self.session.execute(
                update(ExperimentPoint)
                .where(
                    ExperimentPoint.sequence_id == sequence_id,
                    ExperimentPoint.index >= first,
                    ExperimentPoint.index < first + count,
                )
                .values(job_id=job_id)
                .execution_options(synchronize_session=False)
            )

    async def points(self, sequence_id: int, offset: int, limit: int) -> list[ExperimentPoint]:
        """Points that have their data, by index."""
        with_data = _points_of(sequence_id).where(ExperimentPoint.data.is_not(None))
        return list(await self.session.scalars(with_data.offset(offset).limit(limit)))

    async def all_points(self, sequence_id: int) -> list[ExperimentPoint]:
        return list(await self.session.scalars(_points_of(sequence_id)))

    async def point_counts(self, sequence_ids: Sequence[int]) -> dict[int, PointCounts]:
        rows = await self.session.execute(
            select(
                ExperimentPoint.sequence_id,
                func.count(),
                func.count(ExperimentPoint.data),
            )
            .where(ExperimentPoint.sequence_id.in_(list(sequence_ids)))
            .group_by(ExperimentPoint.sequence_id)
        )
        return {sid: PointCounts(int(total), int(done)) for sid, total, done in rows}

    async def sequence_jobs(self, sequence_id: int) -> list[tuple[str, str]]:
        """(job id, job status) of the jobs that run the sequence, in point order."""
        rows = await self.session.execute(
            select(ExperimentJob.job_id, Job.status)
            .join(Job, Job.id == ExperimentJob.job_id, isouter=True)
            .where(ExperimentJob.sequence_id == sequence_id)
            .order_by(ExperimentJob.first_point)
        )
        return [(job_id, status or "DELETED") for job_id, status in rows]

    async def links_of_jobs(self, job_ids: Sequence[str]) -> list[ExperimentJob]:
        rows = await self.session.scalars(
            select(ExperimentJob).where(ExperimentJob.job_id.in_(list(job_ids)))
        )
        return list(rows)

    async def lock_sequence(self, sequence_id: int) -> ExperimentSequence | None:
        return await lock_row(self.session, ExperimentSequence, ExperimentSequence.path_id == sequence_id)

    async def path_of(self, path_id: int) -> str | None:
        return await self.session.scalar(select(ExperimentPath.path).where(ExperimentPath.id == path_id))

    async def unfinished_jobs(self, sequence_id: int) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(ExperimentJob)
            .join(Job, Job.id == ExperimentJob.job_id)
            .where(
                ExperimentJob.sequence_id == sequence_id,
                Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
            )
        )
        return int(count or 0)

    async def cancel_jobs(self, sequence_id: int, reason: str, reason_code: int | None) -> list[Job]:
        """The sequence's queued and running jobs -> CANCELLED, in id order (the executor running one
        stops it through the database)."""
        job_ids = select(ExperimentJob.job_id).where(ExperimentJob.sequence_id == sequence_id)
        locked = await self.session.scalars(
            select(Job.id)
            .where(
                Job.id.in_(job_ids),
                Job.status.in_([s.value for s in sources_of(JobStatus.CANCELLED)]),
            )
            .order_by(Job.id)
            .with_for_update()
        )
        ids = list(locked)
        if not ids:
            return []
        result = await self.session.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.status.in_([s.value for s in sources_of(JobStatus.CANCELLED)]))
            .values(
                status=JobStatus.CANCELLED,
                reason=reason,
                reason_code=reason_code,
                finished_at=func.now(),
            )
            .returning(Job)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return list(result.scalars().all())

    async def mark_points_started(self, job_id: str, started_at: datetime | None) -> None:
        await self.session.execute(
            update(ExperimentPoint)
            .where(ExperimentPoint.job_id == job_id, ExperimentPoint.started_at.is_(None))
            .values(started_at=started_at or func.now())
        )

    async def record_data(
        self,
        sequence_id: int,
        first_point: int,
        data: Sequence[dict[str, Any]],
        started_at: datetime | None,
        finished_at: datetime | None,
    ) -> None:
        """The data of points first_point, first_point + 1, ... (one UPDATE per point, one round trip)."""
        if not data:
            return
        table: Any = ExperimentPoint.__table__
        statement = (
            update(table)
            .where(table.c.sequence_id == bindparam("b_sequence"), table.c.index == bindparam("b_index"))
            .values(
                data=bindparam("b_data", type_=table.c.data.type),
                started_at=func.coalesce(table.c.started_at, started_at, func.now()),
                finished_at=finished_at or func.now(),
            )
        )
        await self.session.execute(
            statement,
            [
                {"b_sequence": sequence_id, "b_index": first_point + offset, "b_data": item}
                for offset, item in enumerate(data)
            ],
        )

    async def delete_points(self, sequence_id: int, undone_only: bool) -> None:
        where = [ExperimentPoint.sequence_id == sequence_id]
        if undone_only:
            where.append(ExperimentPoint.data.is_(None))
        await self.session.execute(delete(ExperimentPoint).where(*where))

    async def forget_jobs(self, sequence_id: int) -> None:
        await self.session.execute(delete(ExperimentJob).where(ExperimentJob.sequence_id == sequence_id))


def _entry(path: str, created_at: datetime, state: str | None) -> TreeEntry:
    return TreeEntry(
        path=path,
        created_at=created_at,
        is_sequence=state is not None,
        state=None if state is None else SequenceState(state),
    )
