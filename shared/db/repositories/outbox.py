"""The transactional outbox: messages written in the same transaction as the state change they announce."""

import uuid
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import OutboxMessage
from shared.db.repositories.clock import seconds_ago
from shared.events.document import Event
from shared.messaging.messages import Message

NOTIFY_CHANNEL = "qruntime_outbox"
_NOTIFIED_KEY = "outbox_notified_in"


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, exchange: str, routing_key: str, message: Message, priority: int = 0) -> None:
        await self._add(message.message_id, exchange, routing_key, message.model_dump(mode="json"), priority)

    async def add_event(self, exchange: str, routing_key: str, event: Event) -> None:
        # The same event goes to two exchanges: each copy is its own outbox row (its own message id),
        # while the body keeps the event_id subscribers deduplicate on.
        await self._add(uuid.uuid4(), exchange, routing_key, event.model_dump(mode="json"), 0)

    async def _add(
        self, message_id: uuid.UUID, exchange: str, routing_key: str, body: dict[str, Any], priority: int
    ) -> None:
        self.session.add(
            OutboxMessage(
                message_id=message_id,
                exchange=exchange,
                routing_key=routing_key,
                body=body,
                priority=priority,
            )
        )
        # Delivered on commit: wakes the relays at once. One per transaction is enough, and leaves the
        # rows to be inserted together at the next flush instead of one by one before each NOTIFY.
        transaction = self.session.sync_session.get_transaction()
        if self.session.info.get(_NOTIFIED_KEY) is not transaction:
            self.session.info[_NOTIFIED_KEY] = transaction
            await self.session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))

    async def lock_unsent(self, limit: int) -> list[OutboxMessage]:
        rows = await self.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.sent_at.is_(None))
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(rows)

    async def mark_sent(self, ids: list[int]) -> None:
        await self.session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(sent_at=text("now()"))
        )

    async def delete_sent_before(self, seconds: float) -> int:
        result = await self.session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.sent_at.is_not(None),
                OutboxMessage.sent_at < seconds_ago(seconds),
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
