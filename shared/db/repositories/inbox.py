"""The inbox: which message ids a consumer has processed, written in the transaction of the effect."""

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import InboxMessage


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def first_time(self, consumer: str, message_id: uuid.UUID) -> bool:
        """Record the message; False when it was already processed (a redelivery or duplicate)."""
        result = await self.session.execute(
            insert(InboxMessage)
            .values(consumer=consumer, message_id=message_id)
            .on_conflict_do_nothing()
            .returning(InboxMessage.message_id)
        )
        return result.first() is not None
