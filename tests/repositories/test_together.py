"""Rows written together: kept inside the block and written at its end, one statement per table, in
the order they were added; nothing written when the block raises."""

import pytest
from sqlalchemy import select

from shared.db.engine import unit_of_work
from shared.db.models import EventRecord, OutboxMessage
from shared.db.repositories.events import EventRepository
from shared.db.repositories.outbox import CommittedMessage, OutboxRepository, hand_over_after_commit
from shared.db.repositories.together import together, written_together
from shared.events.document import Event
from shared.messaging.messages import JobSubmitted


def _event(job_id: str) -> Event:
    return Event(type="job.state_changed", job_id=job_id, backend="b", state="queued", status="Queued")


async def _outbox_keys(db) -> list[str]:
    rows = await db.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
    return [row.routing_key for row in rows]


async def test_rows_are_written_at_the_end_in_order(db):
    outbox, events = OutboxRepository(db), EventRepository(db)
    assert together(db) is None
    async with written_together(db):
        assert together(db) is not None
        async with written_together(db):  # a block inside another: the outer one writes
            await outbox.add("commands", "k1", JobSubmitted(job_id="j1", backend="b"))
            await events.add(_event("j1"), "u1")
        await outbox.add_event("events", "k2", _event("j2"))
        await events.add(_event("j2"), None)
        assert await _outbox_keys(db) == []  # kept, not written yet
    assert together(db) is None
    assert await _outbox_keys(db) == ["k1", "k2"]
    written = list(await db.scalars(select(EventRecord).order_by(EventRecord.id)))
    assert [(e.job_id, e.user_id) for e in written] == [("j1", "u1"), ("j2", None)]
    assert written[0].body["job_id"] == "j1"


async def test_nothing_is_written_when_the_block_raises(db):
    with pytest.raises(RuntimeError):
        async with written_together(db):
            await OutboxRepository(db).add("commands", "lost", JobSubmitted(job_id="j", backend="b"))
            raise RuntimeError("the change failed")
    assert await _outbox_keys(db) == []
    assert together(db) is None


async def test_rows_written_together_are_handed_over_with_their_ids(db_factory):
    received: list[CommittedMessage] = []
    hand_over_after_commit(db_factory, received.extend)
    async with unit_of_work(db_factory) as db, written_together(db):
        outbox = OutboxRepository(db)
        await outbox.add("commands", "a", JobSubmitted(job_id="a", backend="b"), priority=2)
        await outbox.add_event("events", "job.a", _event("a"))
    assert [(m.exchange, m.routing_key, m.priority) for m in received] == [
        ("commands", "a", 2),
        ("events", "job.a", 0),
    ]
    async with unit_of_work(db_factory) as db:
        stored = {m.id: m.message_id for m in await db.scalars(select(OutboxMessage))}
    assert {m.id: m.message_id for m in received} == stored
    assert received[0].id < received[1].id
