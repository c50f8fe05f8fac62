"""any_of: one statement text for lists of any length, the same rows as IN."""

from sqlalchemy import String, select
from sqlalchemy.dialects import postgresql

from shared.db.models import Job
from shared.db.repositories.lists import any_of
from tests.inprocess import add_job


async def test_any_of_selects_the_listed_rows_with_one_statement_text(db):
    jobs = [await add_job(db) for _ in range(4)]
    wanted = [jobs[0].id, jobs[2].id, "no-such-job"]
    found = set(await db.scalars(select(Job.id).where(any_of(Job.id, wanted, String()))))
    assert found == {jobs[0].id, jobs[2].id}
    assert list(await db.scalars(select(Job.id).where(any_of(Job.id, [], String())))) == []
    # What PostgreSQL prepares does not depend on how many values there are.
    dialect = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]
    texts = {
        str(select(Job.id).where(any_of(Job.id, ids, String())).compile(dialect=dialect))
        for ids in (["a"], ["a", "b"], [f"j{n}" for n in range(50)])
    }
    assert len(texts) == 1
