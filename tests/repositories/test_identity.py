"""IdentityRepository: users, keys, instances, memberships, and the usage counted against limits."""

from sqlalchemy import select

from shared.db.models import ApiKey, Instance, User
from shared.db.repositories.identity import IdentityRepository
from shared.jobs.states import JobStatus
from tests.inprocess import add_instance, add_job, add_key, add_user, ago


async def test_users(db):
    repo = IdentityRepository(db)
    before = await repo.count_users()
    user = User(id="iu-1", name="identity-ann", role="admin", active=True)
    await repo.add(user)
    assert await repo.count_users() == before + 1
    assert (await repo.user_by_name("identity-ann")).id == "iu-1"
    assert (await repo.user("iu-1")).role == "admin"
    assert await repo.user_by_name("nobody-here") is None and await repo.user("nobody") is None
    assert "identity-ann" in [u.name for u in await repo.users()]


async def test_keys_touch_and_revoke_once(db):
    repo = IdentityRepository(db)
    user = await add_user(db)
    key, _ = await add_key(db, user)
    found = await repo.key_with_user(key.id)
    assert found is not None and found[0].id == key.id and found[1].id == user.id
    assert await repo.key_with_user("no-such-key") is None
    await repo.touch_key(key.id)
    assert await db.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key.id)) is not None
    revoked = await repo.revoke_key(key.id)
    assert revoked is not None and revoked.revoked_at is not None
    assert await repo.revoke_key(key.id) is None  # already revoked: nothing changes
    assert await repo.revoke_key("no-such-key") is None


async def test_instances_and_members(db):
    repo = IdentityRepository(db)
    ann, bob = await add_user(db), await add_user(db)
    first = Instance(id="ii-1", name="identity-lab", crn="crn:test:ii-1")
    await repo.add(first)
    second = await add_instance(db, members=(ann,))
    assert (await repo.instance("ii-1")).name == "identity-lab"
    assert (await repo.instance_by_name("identity-lab")).id == "ii-1"
    assert (await repo.instance_by_crn("crn:test:ii-1")).id == "ii-1"
    assert await repo.instance("none") is None and await repo.instance_by_crn("crn:none") is None
    assert await repo.instance_by_name("none") is None
    assert {"ii-1", second.id} <= {i.id for i in await repo.instances()}
    assert await repo.is_member(second.id, ann.id) and not await repo.is_member(second.id, bob.id)
    await repo.add_member("ii-1", ann.id)
    await repo.add_member("ii-1", ann.id)  # twice is fine
    assert [i.id for i in await repo.instances_of(ann.id)] == ["ii-1", second.id] or [
        i.id for i in await repo.instances_of(ann.id)
    ] == [second.id, "ii-1"]
    assert await repo.instances_of(bob.id) == []
    assert (await repo.lock_instance("ii-1")).id == "ii-1"
    assert await repo.lock_instance("none") is None


async def test_unfinished_jobs_and_usage(db):
    repo = IdentityRepository(db)
    instance = await add_instance(db, allocation=10.0)
    spare = await add_instance(db, allocation=100.0)
    unlimited = await add_instance(db)
    await add_job(db, instance_id=instance.id)
    await add_job(db, instance_id=instance.id, status=JobStatus.RUNNING)
    await add_job(
        db,
        instance_id=instance.id,
        status=JobStatus.DONE,
        execution_seconds=6.0,
        started_at=ago(20),
        finished_at=ago(10),
    )
    await add_job(
        db,
        instance_id=instance.id,
        status=JobStatus.ERROR,
        execution_seconds=5.0,
        started_at=ago(20),
        finished_at=ago(10),
    )
    # Cancelled jobs and jobs before the window do not count.
    await add_job(
        db,
        instance_id=instance.id,
        status=JobStatus.CANCELLED,
        execution_seconds=50.0,
        started_at=ago(20),
        finished_at=ago(10),
    )
    await add_job(
        db,
        instance_id=instance.id,
        status=JobStatus.DONE,
        execution_seconds=70.0,
        started_at=ago(9100),
        finished_at=ago(9000),
    )
    await add_job(
        db,
        instance_id=spare.id,
        status=JobStatus.DONE,
        execution_seconds=1.0,
        started_at=ago(20),
        finished_at=ago(10),
    )
    await add_job(
        db,
        instance_id=unlimited.id,
        status=JobStatus.DONE,
        execution_seconds=99.0,
        started_at=ago(20),
        finished_at=ago(10),
    )
    assert await repo.unfinished_jobs(instance.id) == 2
    assert await repo.usage_seconds(instance.id, since=ago(3600)) == 11.0
    assert await repo.usage_seconds(unlimited.id, since=ago(3600)) == 99.0
    # The same in one statement on the driver, with the allocation: what the usage route reads.
    assert await repo.allocation_and_usage(instance.id, since=ago(3600)) == (10.0, 11.0)
    assert await repo.allocation_and_usage(unlimited.id, since=ago(3600)) == (None, 99.0)
    assert await repo.allocation_and_usage(spare.id, since=ago(3600)) == (100.0, 1.0)
    assert await repo.allocation_and_usage("no-such-instance", since=ago(3600)) is None
    over = await repo.instances_over_allocation(since=ago(3600))
    assert instance.id in over and spare.id not in over and unlimited.id not in over


async def test_concurrency_limit(db):
    repo = IdentityRepository(db)
    limited = await add_instance(db, max_concurrent_jobs=3)
    unlimited = await add_instance(db)
    assert await repo.concurrency_limit(limited.id) == 3
    assert await repo.concurrency_limit(unlimited.id) is None
    assert await repo.concurrency_limit("no-such-instance") is None
