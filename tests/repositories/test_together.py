"""Rows written together: kept inside the block and written at its end, one statement per table, in
the order they were added; nothing written when the block raises."""

import pytest
from sqlalchemy import select

from shared.db.engine import unit_of_work
from shared.db.models import EventRecord, OutboxMessage
from shared.db.repositories import events as events_module
from shared.db.repositories import outbox as outbox_module
from shared.db.repositories import together as together_module
from shared.db.repositories.events import EventRepository
from shared.db.repositories.outbox import CommittedMessage, OutboxRepository, hand_over_after_commit
from shared.db.repositories.together import together, write_both, written_together
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


async def test_a_registered_pair_of_writers_is_written_in_one_call(db, monkeypatch):
    monkeypatch.setattr(together_module, "_BOTH", dict(together_module._BOTH))  # restored afterwards
    calls: list[tuple[object, ...]] = []

    async def first(_db, rows):
        calls.append(("first", rows))

    async def second(_db, rows):
        calls.append(("second", rows))

    async def both(_db, first_rows, second_rows):
        calls.append(("both", first_rows, second_rows))

    write_both(first, second, both)
    async with written_together(db):
        kept = together(db)
        kept.add(second, 1)
        kept.add(first, 2)
        kept.add(first, 3)
    assert calls == [("both", [2, 3], [1])]
    calls.clear()
    async with written_together(db):
        together(db).add(first, 4)  # alone: its own writer
    assert calls == [("first", [4])]


async def test_a_changes_event_and_outbox_rows_take_one_statement(db, monkeypatch):
    statements: list[str] = []
    real_driver = events_module.driver

    async def counting_driver(session):
        connection = await real_driver(session)

        class Counting:
            async def execute(self, sql, *args):
                statements.append(sql)
                return await connection.execute(sql, *args)

            async def fetch(self, sql, *args):
                statements.append(sql)
                return await connection.fetch(sql, *args)

        return Counting()

    monkeypatch.setattr(outbox_module, "driver", counting_driver)
    monkeypatch.setattr(events_module, "driver", counting_driver)
    async with written_together(db):
        await OutboxRepository(db).add_event("events", "job.one", _event("one"))
        await EventRepository(db).add(_event("one"), "u1")
        await OutboxRepository(db).add("commands", "one", JobSubmitted(job_id="one", backend="b"))
    assert len(statements) == 1 and "INSERT INTO events" in statements[0]
    assert await _outbox_keys(db) == ["job.one", "one"]
    written = list(await db.scalars(select(EventRecord).where(EventRecord.job_id == "one")))
    assert [(e.user_id, e.body["state"]) for e in written] == [("u1", "queued")]
