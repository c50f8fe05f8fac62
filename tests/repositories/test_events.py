"""EventRepository: the event log Server-Sent Events replay from."""

from sqlalchemy import func, select, update

from shared.db.models import EventRecord
from shared.db.repositories.events import EventRepository, columns, write_many
from shared.events.document import Event
from tests.inprocess import ago


def job_event(job_id: str, state: str, session_id: str | None = None) -> Event:
    return Event(
        type="job.state_changed",
        job_id=job_id,
        session_id=session_id,
        backend="b",
        state=state,
        instance="i1",
    )


async def test_add_and_read_a_jobs_events_in_order_after_a_point(db):
    events = EventRepository(db)
    await events.add(job_event("ej1", "queued", "es1"), "u1")
    await events.add(job_event("ej2", "queued"), None)
    await events.add(job_event("ej1", "running", "es1"), "u1")
    await db.flush()
    records = await events.of_job("ej1", after=0)
    assert [r.body["state"] for r in records] == ["queued", "running"]
    assert records[0].user_id == "u1" and records[0].instance_id == "i1" and records[0].session_id == "es1"
    assert [r.body["state"] for r in await events.of_job("ej1", after=records[0].id)] == ["running"]
    assert len(await events.of_job("ej1", after=0, limit=1)) == 1
    assert await events.of_job("ej1", after=records[1].id) == []


async def test_of_session_includes_the_sessions_jobs(db):
    events = EventRepository(db)
    await events.add(Event(type="session.state_changed", session_id="es9", backend="b", state="open"), "u1")
    await events.add(job_event("ej9", "queued", "es9"), "u1")
    await events.add(job_event("ej8", "queued"), "u1")
    await db.flush()
    assert [r.body["type"] for r in await events.of_session("es9", 0)] == [
        "session.state_changed",
        "job.state_changed",
    ]


async def test_delete_older_than(db):
    events = EventRepository(db)
    await events.add(job_event("old", "queued"), None)
    await events.add(job_event("new", "queued"), None)
    await db.flush()
    await db.execute(update(EventRecord).where(EventRecord.job_id == "old").values(created_at=ago(3 * 86400)))
    await events.delete_older_than(days=2)
    assert (
        await db.scalar(select(func.count()).select_from(EventRecord).where(EventRecord.job_id == "old")) == 0
    )
    assert len(await events.of_job("new", 0)) == 1


async def test_of_sequence_reads_an_experiment_sequences_events(db):
    events = EventRepository(db)
    await events.add(job_event("sq1", "queued"), None)
    await db.flush()
    # The sequence id travels in the event body; stamp it as the experiments code does.
    await db.execute(
        update(EventRecord)
        .where(EventRecord.job_id == "sq1")
        .values(body=EventRecord.body.op("||")(func.jsonb_build_object("sequence_id", "seq-a")))
    )
    await events.add(job_event("sq2", "queued"), None)
    await db.flush()
    found = await events.of_sequence("seq-a", after=0)
    assert [r.job_id for r in found] == ["sq1"]
    assert await events.of_sequence("seq-b", after=0) == []


async def test_latest_id_and_owners_since_tell_the_hub_what_changed(db):
    events = EventRepository(db)
    before = await events.latest_id()
    await events.add(job_event("hub-j1", "queued", "hub-s1"), "u1")
    await events.add(job_event("hub-j2", "queued"), "u1")
    await db.flush()
    latest = await events.latest_id()
    assert latest >= before + 2
    owners = await events.owners_since(before, [], limit=10)
    assert [(job, session) for _, job, session, _ in owners] == [("hub-j1", "hub-s1"), ("hub-j2", None)]
    first_id = owners[0][0]
    # An id below the point is read again when asked for (its transaction may have committed late).
    again = await events.owners_since(latest, [first_id], limit=10)
    assert [row[1] for row in again] == ["hub-j1"]
    assert await events.owners_since(before, [], limit=1) == owners[:1]


async def test_write_many_writes_rows_given_as_tuples_in_one_statement(db):
    first, second = job_event("ew1", "queued"), job_event("ew2", "done")
    rows = [
        (e.event_id, e.job_id, e.session_id, "u9", e.instance, e.model_dump_json()) for e in (first, second)
    ]
    assert columns(rows)[1] == ["ew1", "ew2"]  # one list a column, rows in order
    await write_many(db, rows)
    written = list(
        await db.scalars(
            select(EventRecord).where(EventRecord.job_id.in_(["ew1", "ew2"])).order_by(EventRecord.id)
        )
    )
    assert [(r.job_id, r.user_id, r.body["state"]) for r in written] == [
        ("ew1", "u9", "queued"),
        ("ew2", "u9", "done"),
    ]
