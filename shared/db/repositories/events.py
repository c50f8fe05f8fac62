"""SQL for the event log."""

from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.driver import driver
from shared.db.models import EventRecord
from shared.db.repositories.clock import seconds_ago
from shared.db.repositories.together import together
from shared.events.document import Event

_ADD_MANY_PATTERN = """
INSERT INTO events (event_id, job_id, session_id, user_id, instance_id, body)
SELECT event_id, job_id, session_id, user_id, instance_id, body::jsonb
FROM unnest(${0}::uuid[], ${1}::varchar[], ${2}::varchar[], ${3}::varchar[], ${4}::varchar[], ${5}::text[])
    AS rows(event_id, job_id, session_id, user_id, instance_id, body)"""
_ADD_MANY = _ADD_MANY_PATTERN.format(*range(1, 7))
# The same statement with its arrays at parameters $6 to $11, for a statement that writes outbox rows
# first (shared/db/repositories/outbox.py).
ADD_MANY_AT_6 = _ADD_MANY_PATTERN.format(*range(6, 12))


def columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


async def write_many(db: AsyncSession, rows: list[tuple[Any, ...]]) -> None:
    """One statement for one row or for the rows written together (shared/db/repositories/together.py)."""
    await (await driver(db)).execute(_ADD_MANY, *columns(rows))


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, event: Event, user_id: str | None) -> None:
        # On the driver (shared/db/driver.py): every change of a job writes one.
        row = (
            event.event_id,
            event.job_id,
            event.session_id,
            user_id,
            event.instance,
            event.model_dump_json(),
        )
        kept = together(self.session)
        if kept is not None:
            kept.add(write_many, row)
        else:
            await write_many(self.session, [row])

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

    async def latest_id(self) -> int:
        return int(await self.session.scalar(select(func.coalesce(func.max(EventRecord.id), 0))) or 0)

    async def owners_since(
        self, after: int, also: list[int], limit: int
    ) -> list[tuple[int, str | None, str | None, str | None]]:
        """Ids and owning job, session and experiment sequence of events above `after` (and of the
        ids in `also`, events whose transaction may commit after a higher id did)."""
        where = EventRecord.id > after
        if also:
            where = or_(where, EventRecord.id.in_(also))
        rows = await self.session.execute(
            select(
                EventRecord.id,
                EventRecord.job_id,
                EventRecord.session_id,
                EventRecord.body["sequence_id"].astext,
            )
            .where(where)
            .order_by(EventRecord.id)
            .limit(limit)
        )
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    async def delete_older_than(self, days: float) -> None:
        cutoff = seconds_ago(days * 86400)
        await self.session.execute(delete(EventRecord).where(EventRecord.created_at < cutoff))
