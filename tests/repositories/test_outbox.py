"""OutboxRepository: rows written with the change they announce, one NOTIFY per transaction,
handed to the committing process's publisher after the commit."""

import asyncio
import contextlib
import uuid

import asyncpg
import pytest
from sqlalchemy import func, select, text, update

from shared.db.engine import asyncpg_dsn, unit_of_work
from shared.db.models import OutboxMessage
from shared.db.repositories.outbox import (
    NOTIFY_CHANNEL,
    CommittedMessage,
    OutboxRepository,
    hand_over_after_commit,
)
from shared.events.document import Event
from shared.messaging.messages import JobSubmitted
from tests.inprocess import ago


async def unsent(db):
    return list(await db.scalars(select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))))


async def test_add_and_add_event_write_rows(db):
    outbox = OutboxRepository(db)
    message = JobSubmitted(job_id="j1", backend="aer_simulator")
    await outbox.add("commands", "scheduler", message, priority=3)
    event = Event(
        type="job.state_changed", job_id="j1", backend="aer_simulator", state="queued", status="Queued"
    )
    await outbox.add_event("events", "job.j1", event)
    await outbox.add_event("tenant-events", "job.j1", event)
    await db.flush()
    rows = await unsent(db)
    assert [(r.exchange, r.routing_key) for r in rows] == [
        ("commands", "scheduler"),
        ("events", "job.j1"),
        ("tenant-events", "job.j1"),
    ]
    assert rows[0].message_id == message.message_id and rows[0].priority == 3
    assert rows[0].body["job_id"] == "j1"
    # Two copies of one event: two message ids, one event id.
    assert rows[1].message_id != rows[2].message_id
    assert rows[1].body["event_id"] == rows[2].body["event_id"] == str(event.event_id)


async def test_lock_unsent_mark_sent_and_prune(db):
    outbox = OutboxRepository(db)
    for n in range(3):
        await outbox.add("commands", f"k{n}", JobSubmitted(job_id=f"j{n}", backend="b"))
    await db.flush()
    locked = await outbox.lock_unsent(limit=2)
    assert [m.routing_key for m in locked] == ["k0", "k1"]
    await outbox.mark_sent([locked[0].id])
    assert [m.routing_key for m in await outbox.lock_unsent(limit=10)] == ["k1", "k2"]
    # Sent long ago: pruned; sent just now or never sent: kept.
    await outbox.mark_sent([locked[1].id])
    await db.execute(update(OutboxMessage).where(OutboxMessage.id == locked[0].id).values(sent_at=ago(7200)))
    assert await outbox.delete_sent_before(3600) == 1
    remaining = await db.scalar(select(func.count()).select_from(OutboxMessage))
    assert remaining == 2
    assert await outbox.delete_sent_before(3600) == 0


async def test_a_committed_transaction_notifies_once_and_a_rolled_back_one_never(migrated_database_url):
    """The trigger on event rows: one notification per committing transaction that wrote events,
    however many rows and statements; none for a rollback, none for work rows alone."""
    dsn = asyncpg_dsn(migrated_database_url)
    listener, writer = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    heard: list[str] = []
    insert = (
        "INSERT INTO outbox (message_id, exchange, routing_key, body, priority) VALUES ($1, $2, $3, '{}', 0)"
    )
    try:
        await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(args[2]))
        async with writer.transaction():
            await writer.executemany(insert, [(uuid.uuid4(), "events", "n1"), (uuid.uuid4(), "events", "n2")])
            await writer.execute(insert, uuid.uuid4(), "commands", "n3")
        with contextlib.suppress(RuntimeError):
            async with writer.transaction():
                await writer.execute(insert, uuid.uuid4(), "events", "n4")
                raise RuntimeError("rolled back")
        async with writer.transaction():
            await writer.execute(insert, uuid.uuid4(), "dispatch", "n5")
        await asyncio.sleep(0.3)
        assert heard == [NOTIFY_CHANNEL]
    finally:
        await writer.execute("DELETE FROM outbox WHERE routing_key IN ('n1', 'n2', 'n3', 'n4', 'n5')")
        await listener.close()
        await writer.close()


async def test_committed_rows_are_handed_over_and_rolled_back_ones_are_not(db_factory):
    received: list[CommittedMessage] = []
    hand_over_after_commit(db_factory, received.extend)
    async with unit_of_work(db_factory) as db:
        outbox = OutboxRepository(db)
        await outbox.add("commands", "a", JobSubmitted(job_id="a", backend="b"), priority=2)
        await outbox.add("dispatch", "b", JobSubmitted(job_id="b", backend="b"))
        assert received == []  # not before the commit
    assert [(m.exchange, m.routing_key, m.priority, m.body["job_id"]) for m in received] == [
        ("commands", "a", 2, "a"),
        ("dispatch", "b", 0, "b"),
    ]
    async with unit_of_work(db_factory) as db:
        stored = {m.id: m.message_id for m in await unsent(db)}
    assert {m.id: m.message_id for m in received} == stored

    received.clear()
    with pytest.raises(RuntimeError):
        async with unit_of_work(db_factory) as db:
            await OutboxRepository(db).add("commands", "c", JobSubmitted(job_id="c", backend="b"))
            raise RuntimeError("the unit of work fails")
    async with unit_of_work(db_factory) as db:
        await db.execute(update(OutboxMessage).values(sent_at=ago(0)))  # a commit without outbox rows
    assert received == []


async def test_lock_unsent_leaves_young_rows_to_their_publisher(db):
    outbox = OutboxRepository(db)
    await outbox.add("commands", "old", JobSubmitted(job_id="old", backend="b"))
    await outbox.add("commands", "young", JobSubmitted(job_id="young", backend="b"))
    await db.flush()
    await db.execute(
        update(OutboxMessage).where(OutboxMessage.routing_key == "old").values(created_at=ago(5))
    )
    assert [m.routing_key for m in await outbox.lock_unsent(10, older_than_seconds=2)] == ["old"]
    # Events leave in commit order whatever their age; young work is its committer's to publish.
    await outbox.add_event(
        "events", "job.e", Event(type="job.state_changed", job_id="e", backend="b", state="queued")
    )
    await db.flush()
    swept = await outbox.lock_unsent(10, older_than_seconds=2, any_age_on=("events", "tenant-events"))
    assert [m.routing_key for m in swept] == ["old", "job.e"]
    # mark_sent leaves a row that was already marked (by another publisher) as it was.
    first = (await outbox.lock_unsent(10))[0]
    earlier = ago(100)
    await db.execute(update(OutboxMessage).where(OutboxMessage.id == first.id).values(sent_at=earlier))
    await outbox.mark_sent([first.id])
    assert await db.scalar(select(OutboxMessage.sent_at).where(OutboxMessage.id == first.id)) == earlier


async def test_marking_rows_sent_never_scans_the_whole_outbox_after_it_grew(db):
    """A statement prepared while the outbox was nearly empty kept a sequential scan as its generic
    plan on that connection until an ANALYZE: after a burst, every mark read every row kept (sent
    rows stay an hour). Marking is planned for the outbox as it is at each call."""
    outbox = OutboxRepository(db)
    await outbox.add("commands", "k", JobSubmitted(job_id="j", backend="b"))
    await db.flush()
    (first,) = await outbox.lock_unsent(limit=1)
    for _ in range(8):  # as a relay does after each publish, on a table of one row
        await outbox.mark_sent([first.id])
    await db.execute(
        text(
            "INSERT INTO outbox (message_id, exchange, routing_key, body, priority, sent_at) "
            "SELECT gen_random_uuid(), 'events', 'job.x', '{}'::jsonb, 0, now() FROM generate_series(1, 20000)"
        )
    )
    await outbox.add("commands", "k2", JobSubmitted(job_id="j2", backend="b"))
    await db.flush()
    (second,) = await outbox.lock_unsent(limit=1)
    scans = text("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'outbox'")
    before = await db.scalar(scans)
    await outbox.mark_sent([second.id])
    assert await db.scalar(scans) == before
    assert await unsent(db) == []
