"""SQL for the event log."""

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import EventRecord
from shared.db.repositories.clock import seconds_ago
from shared.events.document import Event


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, event: Event, user_id: str | None) -> None:
        self.session.add(
            EventRecord(
                event_id=event.event_id,
                job_id=event.job_id,
                session_id=event.session_id,
                user_id=user_id,
                instance_id=event.instance,
                body=event.model_dump(mode="json"),
            )
        )

    async def of_job(self, job_id: str, after: int, limit: int = 100) -> list[EventRecord]:
        return await self._after(EventRecord.job_id == job_id, after, limit)

    async def of_session(self, session_id: str, after: int, limit: int = 100) -> list[EventRecord]:
        """The session's own events and those of its jobs."""
        return await self._after(EventRecord.session_id == session_id, after, limit)

    async def of_sequence(self, sequence_id: str, after: int, limit: int = 100) -> list[EventRecord]:
        """An experiment sequence's state changes (index events_sequence)."""
        return await self._after(EventRecord.body["sequence_id"].astext == sequence_id, after, limit)

    async def _after(self, belongs: ColumnElement[bool], after: int, limit: int) -> list[EventRecord]:
        rows = await self.session.scalars(
            select(EventRecord).where(belongs, EventRecord.id > after).order_by(EventRecord.id).limit(limit)
        )
        return list(rows)

    async def delete_older_than(self, days: float) -> None:
        cutoff = seconds_ago(days * 86400)
        await self.session.execute(delete(EventRecord).where(EventRecord.created_at < cutoff))
