"""job-ended NOTIFY: the id of each job that reaches a final state, on the commit that puts it there

A status read that waits for its job (`GET /jobs/{id}?wait=N`, and the plain read's linger) used to
wake on every committed change and read its job again: a cost of waiters times commits. With the
job's id in a notification of its own, only the reads of that job wake, once.

Revision ID: i14_job_ended_notify
Revises: i14_final_counts
"""

from alembic import op

revision, down_revision, branch_labels, depends_on = "i14_job_ended_notify", "i14_final_counts", None, None

_JOB_FINAL = "('DONE', 'ERROR', 'CANCELLED')"


def upgrade() -> None:
    op.execute(
        "CREATE FUNCTION qruntime_job_ended_notify() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_notify('qruntime_job_ended', NEW.id); RETURN NULL; END $$"
    )
    # The WHEN condition is checked without calling the function: only the final transition pays.
    op.execute(
        "CREATE TRIGGER jobs_ended_notify AFTER UPDATE OF status ON jobs FOR EACH ROW "
        f"WHEN (NEW.status IN {_JOB_FINAL} AND OLD.status IS DISTINCT FROM NEW.status) "
        "EXECUTE FUNCTION qruntime_job_ended_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_ended_notify ON jobs")
    op.execute("DROP FUNCTION qruntime_job_ended_notify()")
