"""Publishing an event: the event log row (for SSE replay) and one outbox row, in the transaction of
the state change it describes. The relay publishes that row to the public topic exchange and to the
per-tenant one (shared/messaging/relay.py, `publish_row`)."""

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.repositories.events import EventRepository
from shared.db.repositories.outbox import OutboxRepository
from shared.events.document import Event
from shared.messaging.topology import EVENTS


async def publish_event(db: AsyncSession, event: Event, user_id: str | None) -> None:
    await EventRepository(db).add(event, user_id)
    await OutboxRepository(db).add_event(EVENTS, event.routing_key(), event)


class Placed(Protocol):
    """What changes state: a job, a session or an experiment sequence, each on a backend and owned
    by an instance."""

    @property
    def backend(self) -> str: ...

    @property
    def instance_id(self) -> str | None: ...


async def publish_state_change(db: AsyncSession, subject: Placed, user_id: str | None, **fields: Any) -> None:
    """Publish the event of a state change of `subject`: `fields` are what is particular to its kind
    (type, ids, state, reason...); the backend and the owning instance are the subject's."""
    event = Event(backend=subject.backend, instance=subject.instance_id, **fields)
    await publish_event(db, event, user_id)


class Owned(Placed, Protocol):
    """A job or a session: a subject that keeps its owner's user id."""

    @property
    def user_id(self) -> str | None: ...


async def publish_owned_state_change(outbox: OutboxRepository, subject: Owned, **fields: Any) -> None:
    """publish_state_change, in the transaction of `outbox`, with the subject's owner as the user."""
    await publish_state_change(outbox.session, subject, subject.user_id, **fields)
