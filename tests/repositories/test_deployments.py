"""DeploymentRepository: deployments, their ordered programs, and the jobs that hold them."""

from sqlalchemy import func, select

from shared.db.models import Deployment, QuantumProgram
from shared.db.repositories.deployments import DeploymentRepository
from tests.inprocess import add_deployment, add_job, ago, new_id


def program(deployment_id: str, position: int) -> QuantumProgram:
    return QuantumProgram(
        id=new_id(),
        deployment_id=deployment_id,
        position=position,
        assembler_language="QASM2",
        quantum_circuit=f"circuit {position}",
        num_qubits=2,
        registers=[{"name": "c", "size": 2}],
    )


async def test_add_get_programs_in_order(db):
    repo = DeploymentRepository(db)
    deployment = Deployment(id=new_id(), name="bell", user_id="du1")
    await repo.add(deployment, [program(deployment.id, 1), program(deployment.id, 0)])
    assert (await repo.get(deployment.id)).name == "bell"
    assert await repo.get("missing") is None
    assert [p.position for p in await repo.programs(deployment.id)] == [0, 1]


async def test_find_by_user_and_name_newest_first(db):
    repo = DeploymentRepository(db)
    old = await add_deployment(db, "fu1", "a", created_at=ago(20))
    new = await add_deployment(db, "fu1", "b", created_at=ago(10))
    await add_deployment(db, "fu2", "a")
    rows, total = await repo.find("fu1", None, 10, 0)
    assert [d.id for d in rows] == [new.id, old.id] and total == 2
    assert [d.id for d in (await repo.find("fu1", "a", 10, 0))[0]] == [old.id]
    page, total = await repo.find("fu1", None, 1, 1)
    assert [d.id for d in page] == [old.id] and total == 2
    assert (await repo.find(None, "a", 10, 0))[1] >= 2


async def test_replace_programs_renames_and_swaps(db):
    repo = DeploymentRepository(db)
    deployment = await add_deployment(db, "ru1", "first")
    await repo.add(await repo.get(deployment.id), [program(deployment.id, 0)])
    await repo.replace_programs(
        deployment.id, "second", [program(deployment.id, 0), program(deployment.id, 1)]
    )
    db.expunge_all()
    assert (await repo.get(deployment.id)).name == "second"
    assert len(await repo.programs(deployment.id)) == 2


async def test_job_count_lock_and_delete(db):
    repo = DeploymentRepository(db)
    deployment = await add_deployment(db, "ju1")
    await repo.add(await repo.get(deployment.id), [program(deployment.id, 0)])
    assert await repo.job_count(deployment.id) == 0
    await add_job(db, deployment_id=deployment.id)
    assert await repo.job_count(deployment.id) == 1
    assert (await repo.lock(deployment.id)).id == deployment.id
    assert await repo.lock("missing") is None
    unused = await add_deployment(db, "ju1")
    await repo.add(await repo.get(unused.id), [program(unused.id, 0)])
    await repo.delete(unused.id)
    db.expunge_all()
    assert await repo.get(unused.id) is None
    # Its programs go with it (ON DELETE CASCADE).
    left = await db.scalar(
        select(func.count()).select_from(QuantumProgram).where(QuantumProgram.deployment_id == unused.id)
    )
    assert left == 0
