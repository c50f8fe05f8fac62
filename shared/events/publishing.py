"""Publishing an event: the event log row (for SSE replay) and two outbox rows, the public topic
exchange and the per-tenant one, all in the transaction of the state change they describe."""

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.repositories.events import EventRepository
from shared.db.repositories.outbox import OutboxRepository
from shared.events.document import Event
from shared.messaging.topology import EVENTS, TENANT_EVENTS


async def publish_event(db: AsyncSession, event: Event, user_id: str | None) -> None:
    await EventRepository(db).add(event, user_id)
    outbox = OutboxRepository(db)
    await outbox.add_event(EVENTS, event.routing_key(), event)
    await outbox.add_event(TENANT_EVENTS, event.tenant_routing_key(), event)
