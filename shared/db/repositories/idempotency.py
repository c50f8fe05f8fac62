"""Idempotency keys of submissions: claimed in the submission's own transaction, so the key, the job
(or session) and the answer are committed together or not at all."""

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import IdempotencyKey
from shared.db.repositories.clock import seconds_ago


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(
        self, user_id: str, scope: str, key: str, request_digest: str, ttl_seconds: float
    ) -> IdempotencyKey | None:
        """Claim the key for this request; None when it is ours now (go on and store the submission),
        else the earlier claim (with its answer). A concurrent claim of the same key waits here until
        the other transaction ends (the primary key), then sees its row. A claim older than the
        retention is replaced."""
        await self.session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id,
                IdempotencyKey.scope == scope,
                IdempotencyKey.key == key,
                IdempotencyKey.created_at < seconds_ago(ttl_seconds),
            )
        )
        inserted = await self.session.scalar(
            insert(IdempotencyKey)
            .values(user_id=user_id, scope=scope, key=key, request_digest=request_digest)
            .on_conflict_do_nothing()
            .returning(IdempotencyKey.key)
        )
        if inserted is not None:
            return None
        return await self.session.scalar(
            select(IdempotencyKey)
            .where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.scope == scope, IdempotencyKey.key == key
            )
            .execution_options(populate_existing=True)
        )

    async def answer(self, user_id: str, scope: str, key: str, response: dict[str, Any]) -> None:
        await self.session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.scope == scope, IdempotencyKey.key == key
            )
            .values(response=response)
        )

    async def delete_older_than(self, seconds: float) -> int:
        result = await self.session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.created_at < seconds_ago(seconds))
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
