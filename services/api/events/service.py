"""Server-Sent Events: a job's, a session's or an experiment sequence's events as they happen, resumable with Last-Event-ID.

The stream reads the event log (written in the same transaction as every state change), so a
reconnect replays exactly what was missed, and it ends once the object reached a final state or
after a quiet spell. Streams wait on the process's EventHub, never on a poll of their own."""

import asyncio
import json
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.events.hub import EventHub, StreamSlot
from shared.db.engine import unit_of_work
from shared.db.models import EventRecord
from shared.db.repositories.events import EventRepository
from shared.events.document import Event

KEEPALIVE_SECONDS = 15.0


def sse_frame(record: EventRecord) -> str:
    data = json.dumps(record.body, separators=(",", ":"))
    return f"id: {record.id}\nevent: {record.body.get('type', 'message')}\ndata: {data}\n\n"


async def stream(
    sessions: async_sessionmaker[AsyncSession],
    hub: EventHub,
    slot: StreamSlot,
    kind: str,
    object_id: str,
    after: int,
    idle_timeout: float,
) -> AsyncIterator[str]:
    """Frames for `kind` ("job", "session" or "sequence") `object_id` with event ids above `after`, until final
    or until nothing happened for `idle_timeout` seconds (the client reconnects with Last-Event-ID)."""
    wake = hub.watch(kind, object_id)
    try:
        # Tells the client how long to wait before reconnecting.
        yield "retry: 1000\n\n"
        quiet = 0.0
        look = True  # read the log now: at the start, after a wake-up, after a full page
        while True:
            if look:
                wake.clear()
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
                    quiet = 0.0
                    continue
            try:
                await asyncio.wait_for(wake.wait(), timeout=min(KEEPALIVE_SECONDS, idle_timeout))
                look = True
                continue
            except TimeoutError:
                quiet += min(KEEPALIVE_SECONDS, idle_timeout)
                look = False  # nothing woke it: nothing new for it, no query
            if quiet >= idle_timeout:
                yield ": idle, closing; reconnect with Last-Event-ID to resume\n\n"
                return
            yield ": keep-alive\n\n"
    finally:
        hub.unwatch(kind, object_id, wake)
        slot.release()
