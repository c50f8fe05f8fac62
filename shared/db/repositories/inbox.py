"""The inbox: which message ids a consumer has processed, written in the transaction of the effect."""

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, text
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

    async def record(self, consumer: str, message_ids: Sequence[uuid.UUID]) -> None:
        """Record several processed messages in one statement (a redelivered one is already there)."""
        if not message_ids:
            return
        await self.session.execute(
            insert(InboxMessage)
            .values([{"consumer": consumer, "message_id": message_id} for message_id in message_ids])
            .on_conflict_do_nothing()
        )

    async def delete_processed_before(self, seconds: float) -> int:
        """Forget messages processed more than `seconds` ago: a broker redelivers within minutes."""
        result = await self.session.execute(
            delete(InboxMessage).where(
                InboxMessage.processed_at
                < text("now() - make_interval(secs => :secs)").bindparams(secs=seconds)
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
