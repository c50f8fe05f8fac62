from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ProviderCredential


class CredentialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def put(self, user_id: str, provider: str, token_encrypted: str) -> None:
        statement = insert(ProviderCredential).values(
            user_id=user_id, provider=provider, token_encrypted=token_encrypted
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[ProviderCredential.user_id, ProviderCredential.provider],
                set_={"token_encrypted": statement.excluded.token_encrypted, "updated_at": func.now()},
            )
        )

    async def get(self, user_id: str, provider: str) -> ProviderCredential | None:
        return await self.session.scalar(
            select(ProviderCredential).where(
                ProviderCredential.user_id == user_id, ProviderCredential.provider == provider
            )
        )

    async def delete(self, user_id: str, provider: str) -> bool:
        result = await self.session.execute(
            delete(ProviderCredential)
            .where(ProviderCredential.user_id == user_id, ProviderCredential.provider == provider)
            .returning(ProviderCredential.provider)
        )
        return result.first() is not None
