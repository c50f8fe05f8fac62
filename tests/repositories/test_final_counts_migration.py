"""Migration i14_final_counts on a database of its own: it counts the history that is already there,
a TRUNCATE forgets what it counted, and it downgrades cleanly."""

import uuid

import asyncpg
from alembic import command

from shared.db.migrate import alembic_config, migrate
from shared.kit.settings import Settings
from tests.inprocess import PG_ADMIN_DSN, _in_thread, drop_database

BEFORE = "i14_outbox_notify"

HISTORY = """
INSERT INTO jobs (id, program_id, backend, status, params, num_pubs, total_shots, priority, tags, attempts)
SELECT 'j' || g, 'sampler', backend, status, '{}', 1, 100, 0, '[]'::jsonb, 0
FROM unnest(ARRAY['m1', 'm1', 'm1', 'm2', 'm1', 'm2'],
            ARRAY['DONE', 'DONE', 'ERROR', 'CANCELLED', 'QUEUED', 'RUNNING'])
     WITH ORDINALITY AS history(backend, status, g);
INSERT INTO sessions (id, backend, mode, state, accepting_jobs, max_ttl, interactive_ttl, active_ttl,
                      elapsed_time, timestamps)
VALUES ('s1', 'm1', 'batch', 'closed', false, 60, 60, 60, 0, '[]'), ('s2', 'm1', 'batch', 'open', true, 60, 60, 60, 0, '[]')
"""


async def counts(conn: asyncpg.Connection) -> set[tuple[str, str, str, int]]:
    rows = await conn.fetch("SELECT subject, backend, state, n FROM final_counts")
    return {tuple(row) for row in rows}  # type: ignore[misc]


async def test_the_history_is_counted_once_and_a_truncate_forgets_it():
    name = f"qrt_fcm_{uuid.uuid4().hex[:10]}"
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    settings = Settings(database_url=dsn.replace("postgresql://", "postgresql+asyncpg://", 1), _env_file=None)  # type: ignore[call-arg]
    config = alembic_config(settings)
    try:
        _in_thread(lambda: migrate(settings))  # creates the database
        _in_thread(lambda: command.downgrade(config, BEFORE))
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(HISTORY)
            _in_thread(lambda: command.upgrade(config, "head"))
            assert await counts(conn) == {
                ("job", "m1", "DONE", 2),
                ("job", "m1", "ERROR", 1),
                ("job", "m2", "CANCELLED", 1),
                ("session", "m1", "closed", 1),
            }
            assert await conn.fetchval("SELECT count(*) FROM final_count_changes") == 0
            await conn.execute("UPDATE jobs SET status = 'DONE' WHERE status = 'RUNNING'")
            assert await conn.fetch("SELECT backend, state, n FROM final_count_changes") == [
                ("m2", "DONE", 1)
            ]
            await conn.execute("TRUNCATE jobs CASCADE")
            assert await counts(conn) == {("session", "m1", "closed", 1)}
            assert await conn.fetchval("SELECT count(*) FROM final_count_changes") == 0
            _in_thread(lambda: command.downgrade(config, BEFORE))
            assert await conn.fetchval("SELECT to_regclass('final_counts')") is None
            assert (
                await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%final_count%'") == 0
            )
        finally:
            await conn.close()
    finally:
        drop_database(name)
