"""usage rollup and pruning indexes: costs that do not grow with history

Fair share and usage allocations summed every finished job of the window (28 days) on every
scheduling pass and every usage request. Usage now lands in an hourly rollup per instance, kept by a
trigger on `jobs` in the transaction that finishes (or inserts) a finished job, so every writer
(executor, api cancel, scheduler reaper, a bulk load with SQL) counts without knowing about it. Sent
outbox rows are pruned by sent_at: it gets an index.

Revision ID: i14_usage_rollup
Revises: i15_experiments
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision, branch_labels, depends_on = "i14_usage_rollup", "i15_experiments", None, None

# ran_seconds: every started job, what fair share counts (a cancelled job used the backend too).
# billed_seconds: DONE and ERROR jobs' execution_seconds, what usage allocations count.
_TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION jobs_usage_rollup() RETURNS trigger AS $$
BEGIN
    IF NEW.finished_at IS NULL OR NEW.started_at IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.finished_at IS NOT NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO usage_rollup AS u (instance_key, hour, ran_seconds, billed_seconds)
    VALUES (
        coalesce(NEW.instance_id, ''),
        date_trunc('hour', NEW.finished_at),
        greatest(0, coalesce(NEW.execution_seconds, extract(epoch FROM NEW.finished_at - NEW.started_at))),
        CASE WHEN NEW.status IN ('DONE', 'ERROR') THEN coalesce(NEW.execution_seconds, 0) ELSE 0 END
    )
    ON CONFLICT (instance_key, hour) DO UPDATE
    SET ran_seconds = u.ran_seconds + EXCLUDED.ran_seconds,
        billed_seconds = u.billed_seconds + EXCLUDED.billed_seconds;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""

_BACKFILL = """
INSERT INTO usage_rollup (instance_key, hour, ran_seconds, billed_seconds)
SELECT coalesce(instance_id, ''),
       date_trunc('hour', finished_at),
       sum(greatest(0, coalesce(execution_seconds, extract(epoch FROM finished_at - started_at)))),
       sum(CASE WHEN status IN ('DONE', 'ERROR') THEN coalesce(execution_seconds, 0) ELSE 0 END)
FROM jobs
WHERE finished_at IS NOT NULL AND started_at IS NOT NULL
GROUP BY 1, 2
"""


def upgrade() -> None:
    op.create_table(
        "usage_rollup",
        # '' stands for jobs without an instance (the anonymous owner), so the key can be a primary key.
        sa.Column("instance_key", sa.String(length=255), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ran_seconds", sa.Float(), nullable=False, server_default="0"),
        sa.Column("billed_seconds", sa.Float(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("instance_key", "hour"),
    )
    op.create_index("usage_rollup_hour", "usage_rollup", ["hour"])
    op.execute(_TRIGGER_FUNCTION)
    op.execute(
        "CREATE TRIGGER jobs_usage_rollup AFTER INSERT OR UPDATE OF finished_at ON jobs "
        "FOR EACH ROW EXECUTE FUNCTION jobs_usage_rollup()"
    )
    op.execute(_BACKFILL)
    op.create_index("outbox_sent_at", "outbox", ["sent_at"], postgresql_where=sa.text("sent_at IS NOT NULL"))
    # The scheduler's estimate of a job's cost reads a backend's last 100 run times: without this it
    # walks the whole jobs_created_at index past every other backend's history.
    op.create_index(
        "jobs_backend_ran",
        "jobs",
        ["backend", "created_at"],
        postgresql_where=sa.text("execution_seconds IS NOT NULL"),
    )
    # Jobs that run now: counted live by fair share (the rollup has them once they finish).
    op.create_index(
        "jobs_running_instance",
        "jobs",
        ["instance_id"],
        postgresql_where=sa.text("status = 'RUNNING'"),
    )


def downgrade() -> None:
    op.drop_index("jobs_running_instance", table_name="jobs")
    op.drop_index("jobs_backend_ran", table_name="jobs")
    op.drop_index("outbox_sent_at", table_name="outbox")
    op.execute("DROP TRIGGER IF EXISTS jobs_usage_rollup ON jobs")
    op.execute("DROP FUNCTION IF EXISTS jobs_usage_rollup()")
    op.drop_table("usage_rollup")
