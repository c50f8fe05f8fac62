"""Server-Sent Events: a job's, a session's or an experiment sequence's events as they happen, resumable with Last-Event-ID.

The stream reads the event log (written in the same transaction as every state change), so a
reconnect replays exactly what was missed, and it ends once the object reached a final state."""

import json
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.engine import unit_of_work
from shared.db.models import EventRecord
from shared.db.repositories.events import EventRepository
from shared.events.document import Event
from shared.messaging.relay import ChangeFeed

KEEPALIVE_SECONDS = 15.0
# A safety net under the change feed (a missed NOTIFY only delays an event by this much).
POLL_SECONDS = 1.0


def sse_frame(record: EventRecord) -> str:
    data = json.dumps(record.body, separators=(",", ":"))
    return f"id: {record.id}\nevent: {record.body.get('type', 'message')}\ndata: {data}\n\n"


async def stream(
    sessions: async_sessionmaker[AsyncSession],
    changes: ChangeFeed,
    kind: str,
    object_id: str,
    after: int,
) -> AsyncIterator[str]:
    """Frames for `kind` ("job", "session" or "sequence") `object_id` with event ids above `after`, until final."""
    idle = 0.0
    # Tells the client how long to wait before reconnecting.
    yield "retry: 1000\n\n"
    while True:
        async with unit_of_work(sessions) as session:
            repo = EventRepository(session)
            of = {"job": repo.of_job, "session": repo.of_session, "sequence": repo.of_sequence}[kind]
            records = await of(object_id, after)
        for record in records:
            after = record.id
            yield sse_frame(record)
            if Event.model_validate(record.body).ends_stream_of(kind):
                return
        if records:
            idle = 0.0
            continue
        await changes.wait(POLL_SECONDS)
        idle += POLL_SECONDS
        if idle >= KEEPALIVE_SECONDS:
            idle = 0.0
            yield ": keep-alive\n\n"
