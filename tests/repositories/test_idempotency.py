"""IdempotencyRepository: a submission's key is claimed once per user and scope, answered, pruned."""

from sqlalchemy import select, update

from shared.db.models import IdempotencyKey
from shared.db.repositories.idempotency import IdempotencyRepository
from tests.inprocess import ago, new_id

DAY = 86400.0


async def test_first_claim_wins_and_a_repeat_sees_the_answer(db):
    keys = IdempotencyRepository(db)
    user, key = f"u-{new_id()}", new_id()
    assert await keys.claim(user, "jobs", key, "digest-a", DAY) is None  # ours: go on and store
    await keys.answer(user, "jobs", key, {"id": "job-1", "backend": "aer_simulator"})
    await db.flush()
    earlier = await keys.claim(user, "jobs", key, "digest-a", DAY)
    assert earlier is not None and earlier.request_digest == "digest-a"
    assert earlier.response == {"id": "job-1", "backend": "aer_simulator"}
    # Same key, other body: the caller sees the earlier digest and refuses (409 in the service).
    other = await keys.claim(user, "jobs", key, "digest-b", DAY)
    assert other is not None and other.request_digest == "digest-a"
    # Keys are per user and per scope.
    assert await keys.claim(f"u-{new_id()}", "jobs", key, "digest-b", DAY) is None
    assert await keys.claim(user, "sessions", key, "digest-b", DAY) is None


async def test_an_expired_claim_is_replaced_and_old_keys_are_pruned(db):
    keys = IdempotencyRepository(db)
    user, key = f"u-{new_id()}", new_id()
    assert await keys.claim(user, "jobs", key, "old", DAY) is None
    await db.execute(update(IdempotencyKey).where(IdempotencyKey.key == key).values(created_at=ago(2 * DAY)))
    assert await keys.claim(user, "jobs", key, "new", DAY) is None  # the old claim had expired
    kept = await db.scalar(select(IdempotencyKey.request_digest).where(IdempotencyKey.key == key))
    assert kept == "new"
    stale = new_id()
    assert await keys.claim(user, "jobs", stale, "x", DAY) is None
    await db.execute(
        update(IdempotencyKey).where(IdempotencyKey.key == stale).values(created_at=ago(2 * DAY))
    )
    assert await keys.delete_older_than(DAY) >= 1
    assert await db.scalar(select(IdempotencyKey).where(IdempotencyKey.key == stale)) is None
    assert await db.scalar(select(IdempotencyKey).where(IdempotencyKey.key == key)) is not None
