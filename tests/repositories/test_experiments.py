"""ExperimentRepository: the path tree, sequences and their conditional state changes, points and the
jobs that run them, on the real schema."""

import secrets

from sqlalchemy import func, select

from shared.db.models import (
    ExperimentJob,
    ExperimentPath,
    ExperimentPoint,
    ExperimentSequence,
    Job,
)
from shared.db.repositories.experiments import ExperimentRepository, PointCounts
from shared.experiments.states import SequenceState
from shared.jobs.states import JobStatus
from tests.inprocess import ago

DRAFT, PREPARING, RUNNING = SequenceState.DRAFT, SequenceState.PREPARING, SequenceState.RUNNING
FINISHED, CRASHED = SequenceState.FINISHED, SequenceState.CRASHED


def owner() -> str:
    return f"inst-{secrets.token_hex(4)}"


async def add_tree(repo, instance_id, *paths):
    """Paths (each after its parent) -> their rows, by path."""
    rows: dict[str, ExperimentPath] = {}
    for path in paths:
        parent = path.rsplit("/", 1)[0]
        rows[path] = await repo.add_path(instance_id, path, rows[parent].id if parent in rows else None)
    return rows


async def add_sequence(repo, instance_id, path_row, state=DRAFT, **values):
    sequence = ExperimentSequence(
        path_id=path_row.id,
        instance_id=instance_id,
        state=state,
        backend="aer_simulator",
        program="sampler",
        circuit="OPENQASM 3.0;",
        iteration={"steps": []},
        **values,
    )
    return await repo.add_sequence(sequence)


async def test_paths_children_and_tree(db):
    repo, me, other = ExperimentRepository(db), owner(), owner()
    rows = await add_tree(repo, me, "/lab", "/lab/a_b", "/lab/axb", "/lab/a_b/deep", "/lab2")
    await add_tree(repo, other, "/lab")
    await add_sequence(repo, me, rows["/lab/axb"], state=RUNNING)
    assert (await repo.get_path(me, "/lab/a_b")).id == rows["/lab/a_b"].id
    assert await repo.get_path(me, "/nowhere") is None
    assert [e.path for e in await repo.children(me, None)] == ["/lab", "/lab2"]
    children = await repo.children(me, rows["/lab"].id)
    assert [(e.path, e.is_sequence, e.state) for e in children] == [
        ("/lab/a_b", False, None),
        ("/lab/axb", True, RUNNING),
    ]
    assert len(await repo.tree(me)) == 5 and len(await repo.tree(me, "/")) == 5
    # "_" is not a wildcard: /lab/a_b's subtree does not take in /lab/axb.
    assert [e.path for e in await repo.tree(me, "/lab/a_b")] == ["/lab/a_b", "/lab/a_b/deep"]
    assert [e.path for e in await repo.tree(me, "/lab")] == ["/lab", "/lab/a_b", "/lab/a_b/deep", "/lab/axb"]
    assert await repo.sequences_under(me, "/lab") == [("/lab/axb", RUNNING)]
    assert await repo.sequences_under(me, "/lab/a_b") == []
    assert await repo.path_of(rows["/lab/a_b/deep"].id) == "/lab/a_b/deep"
    assert await repo.path_of(-1) is None


async def test_move_renames_the_subtree_only(db):
    repo, me = ExperimentRepository(db), owner()
    rows = await add_tree(repo, me, "/a", "/a/b", "/a/b/c", "/ab", "/z")
    moved = await repo.move(me, rows["/a/b"], "/z/b", rows["/z"].id)
    assert moved == 2
    assert [e.path for e in await repo.tree(me)] == ["/a", "/ab", "/z", "/z/b", "/z/b/c"]
    assert [e.path for e in await repo.children(me, rows["/z"].id)] == ["/z/b"]


async def test_delete_path_cascades_to_descendants_sequences_and_points(db):
    repo, me = ExperimentRepository(db), owner()
    rows = await add_tree(repo, me, "/a", "/a/s", "/keep")
    sequence = await add_sequence(repo, me, rows["/a/s"])
    await repo.add_points([ExperimentPoint(sequence_id=sequence.path_id, index=0, parameters={"x": 1.0})])
    await repo.delete_path(rows["/a"].id)
    assert [e.path for e in await repo.tree(me)] == ["/keep"]
    left = await db.scalar(
        select(func.count())
        .select_from(ExperimentPoint)
        .where(ExperimentPoint.sequence_id == sequence.path_id)
    )
    assert left == 0


async def test_sequences_get_edit_and_list(db):
    repo, me = ExperimentRepository(db), owner()
    rows = await add_tree(repo, me, "/a", "/a/s1", "/a/s2", "/b", "/b/s3")
    s1 = await add_sequence(repo, me, rows["/a/s1"])
    await add_sequence(repo, me, rows["/a/s2"], state=RUNNING)
    await add_sequence(repo, me, rows["/b/s3"])
    assert s1.state is DRAFT and s1.version == 1 and s1.created_at is not None
    path_row, found = await repo.get_sequence(me, "/a/s1")
    assert path_row.path == "/a/s1" and found.path_id == s1.path_id
    assert (await repo.get_sequence(me, "/a/s1", lock=True))[1].path_id == s1.path_id
    assert await repo.get_sequence(me, "/a") is None
    assert await repo.is_sequence(s1.path_id) and not await repo.is_sequence(rows["/a"].id)

    edited = await repo.edit_draft(s1.path_id, shots=300)
    assert edited.shots == 300 and edited.version == 2
    # A sequence that is not a draft is not edited.
    assert await repo.edit_draft(rows["/a/s2"].id, shots=5) is None
    assert (await repo.get_sequence(me, "/a/s2"))[1].shots is None

    listed, total = await repo.list_sequences(me, None, None, 10, 0)
    assert [p.path for p, _ in listed] == ["/a/s1", "/a/s2", "/b/s3"] and total == 3
    assert [p.path for p, _ in (await repo.list_sequences(me, RUNNING, None, 10, 0))[0]] == ["/a/s2"]
    assert [p.path for p, _ in (await repo.list_sequences(me, None, "/b", 10, 0))[0]] == ["/b/s3"]
    page, total = await repo.list_sequences(me, None, "/", 1, 1)
    assert [p.path for p, _ in page] == ["/a/s2"] and total == 3
    assert await repo.list_sequences(owner(), None, None, 10, 0) == ([], 0)


async def test_transition_follows_the_table_and_refuses_other_moves(db):
    repo, me = ExperimentRepository(db), owner()
    rows = await add_tree(repo, me, "/s")
    sequence = await add_sequence(repo, me, rows["/s"])
    # DRAFT cannot become RUNNING directly: nothing changes.
    assert await repo.transition(sequence.path_id, RUNNING) is None
    unchanged = (await repo.get_sequence(me, "/s"))[1]
    assert unchanged.state is DRAFT and unchanged.version == 1
    preparing = await repo.transition(sequence.path_id, PREPARING, expected_points=3)
    assert preparing.state is PREPARING and preparing.version == 2 and preparing.expected_points == 3
    assert (await repo.transition(sequence.path_id, RUNNING)).state is RUNNING
    assert (await repo.transition(sequence.path_id, FINISHED, reason="done")).reason == "done"
    assert await repo.transition(sequence.path_id, CRASHED) is None  # final: only reset leaves it
    assert (await repo.lock_sequence(sequence.path_id)).state is FINISHED
    assert (await repo.transition(sequence.path_id, DRAFT)).state is DRAFT
    assert await repo.lock_sequence(-1) is None


async def test_points_jobs_and_data(db):
    repo, me = ExperimentRepository(db), owner()
    rows = await add_tree(repo, me, "/s")
    sequence = await add_sequence(repo, me, rows["/s"], state=RUNNING)
    sid = sequence.path_id
    await repo.add_points(
        [ExperimentPoint(sequence_id=sid, index=i, parameters={"x": float(i)}) for i in range(4)]
    )
    job_a = Job(
        id=f"ja-{secrets.token_hex(4)}",
        program_id="sampler",
        backend="aer_simulator",
        status=JobStatus.RUNNING,
        params="{}",
        num_pubs=1,
        total_shots=1,
    )
    job_b = Job(
        id=f"jb-{secrets.token_hex(4)}",
        program_id="sampler",
        backend="aer_simulator",
        status=JobStatus.QUEUED,
        params="{}",
        num_pubs=1,
        total_shots=1,
    )
    db.add_all([job_a, job_b])
    await db.flush()
    await repo.add_jobs(
        [
            ExperimentJob(job_id=job_b.id, sequence_id=sid, first_point=2, num_points=2),
            ExperimentJob(job_id=job_a.id, sequence_id=sid, first_point=0, num_points=2),
        ]
    )
    await repo.assign_points(sid, [(job_a.id, 0, 2), (job_b.id, 2, 2)])
    assert [p.job_id for p in await repo.all_points(sid)] == [job_a.id, job_a.id, job_b.id, job_b.id]
    assert await repo.sequence_jobs(sid) == [(job_a.id, "RUNNING"), (job_b.id, "QUEUED")]
    assert {link.job_id for link in await repo.links_of_jobs([job_a.id, "missing"])} == {job_a.id}
    assert await repo.unfinished_jobs(sid) == 2

    started = ago(60)
    await repo.mark_points_started(job_a.id, started)
    await repo.mark_points_started(job_a.id, None)  # only points not yet started are stamped
    assert [p.started_at for p in await repo.all_points(sid)][:2] == [started, started]
    assert await repo.points(sid, 0, 10) == []  # none has data yet
    await repo.record_data(sid, 0, [{"counts": {"0": 1}}, {"counts": {"1": 1}}], None, None)
    await repo.record_data(sid, 2, [], None, None)  # nothing to write
    db.expire_all()
    with_data = await repo.points(sid, 0, 10)
    assert [(p.index, p.data) for p in with_data] == [(0, {"counts": {"0": 1}}), (1, {"counts": {"1": 1}})]
    assert with_data[0].started_at == started and with_data[0].finished_at is not None
    assert [p.index for p in await repo.points(sid, 1, 10)] == [1]
    assert await repo.point_counts([sid, -1]) == {sid: PointCounts(total=4, done=2)}

    cancelled = await repo.cancel_jobs(sid, "interrupted", 1234)
    assert [j.id for j in cancelled] == sorted([job_a.id, job_b.id])
    assert all(j.status is JobStatus.CANCELLED and j.reason_code == 1234 for j in cancelled)
    assert await repo.cancel_jobs(sid, "again", None) == []  # already final: nothing changes
    assert await repo.unfinished_jobs(sid) == 0

    await repo.delete_points(sid, undone_only=True)
    assert [p.index for p in await repo.all_points(sid)] == [0, 1]
    await repo.delete_points(sid, undone_only=False)
    assert await repo.all_points(sid) == []
    await repo.forget_jobs(sid)
    assert await repo.sequence_jobs(sid) == []
    # The jobs themselves stay.
    assert await db.scalar(select(func.count()).select_from(Job).where(Job.id.in_([job_a.id, job_b.id]))) == 2


async def test_sequence_jobs_names_a_deleted_job(db):
    repo, me = ExperimentRepository(db), owner()
    sequence = await add_sequence(repo, me, (await add_tree(repo, me, "/s"))["/s"])
    await repo.add_jobs(
        [ExperimentJob(job_id="gone", sequence_id=sequence.path_id, first_point=0, num_points=1)]
    )
    assert await repo.sequence_jobs(sequence.path_id) == [("gone", "DELETED")]
