"""final counts: jobs and sessions per backend and final state, without counting the history

The state gauges of /metrics and `qruntime status` counted every job and every session, grouped by
backend and state, every 10 s in the api and in every scheduler: a cost that grew with history.
Unfinished jobs and unclosed sessions are still counted live (partial indexes); what has reached a
final state is counted by triggers in the transaction that moves it there.

The triggers only insert: one row of +1 or -1 into `final_count_changes`, so two transactions that
finish jobs never wait for each other on a shared counter row. The relay's clean-up folds the
changes into `final_counts`; readers add what is not folded yet.

Revision ID: i14_final_counts
Revises: i14_outbox_notify
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision, branch_labels, depends_on = "i14_final_counts", "i14_outbox_notify", None, None

_JOB_FINAL = "('DONE', 'ERROR', 'CANCELLED')"


def _count_function(name: str, subject: str, column: str, final: str) -> str:
    """A row trigger's function: -1 for the old row when it was final, +1 for the new one when it is."""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.{column} {final} THEN
        INSERT INTO final_count_changes (subject, backend, state, n) VALUES ('{subject}', OLD.backend, OLD.{column}, -1);
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.{column} {final} THEN
        INSERT INTO final_count_changes (subject, backend, state, n) VALUES ('{subject}', NEW.backend, NEW.{column}, 1);
    END IF;
    RETURN NULL;
END $$
"""


_JOB_FUNCTION = _count_function("jobs_final_count", "job", "status", f"IN {_JOB_FINAL}")
_SESSION_FUNCTION = _count_function("sessions_final_count", "session", "state", "= 'closed'")

# A truncated table has no final rows left to count.
_FORGET_FUNCTION = """
CREATE FUNCTION final_counts_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM final_counts WHERE subject = TG_ARGV[0];
    DELETE FROM final_count_changes WHERE subject = TG_ARGV[0];
    RETURN NULL;
END $$
"""

# The WHEN conditions are checked without calling the function: a dispatch or a start costs nothing.
_TRIGGERS = [
    ("jobs", "jobs_final_count_insert", "AFTER INSERT", f"NEW.status IN {_JOB_FINAL}", "jobs_final_count()"),
    (
        "jobs",
        "jobs_final_count_update",
        "AFTER UPDATE OF status, backend",
        f"(OLD.status, OLD.backend) IS DISTINCT FROM (NEW.status, NEW.backend)"
        f" AND (OLD.status IN {_JOB_FINAL} OR NEW.status IN {_JOB_FINAL})",
        "jobs_final_count()",
    ),
    ("jobs", "jobs_final_count_delete", "AFTER DELETE", f"OLD.status IN {_JOB_FINAL}", "jobs_final_count()"),
    (
        "sessions",
        "sessions_final_count_insert",
        "AFTER INSERT",
        "NEW.state = 'closed'",
        "sessions_final_count()",
    ),
    (
        "sessions",
        "sessions_final_count_update",
        "AFTER UPDATE OF state, backend",
        "(OLD.state, OLD.backend) IS DISTINCT FROM (NEW.state, NEW.backend)"
        " AND (OLD.state = 'closed' OR NEW.state = 'closed')",
        "sessions_final_count()",
    ),
    (
        "sessions",
        "sessions_final_count_delete",
        "AFTER DELETE",
        "OLD.state = 'closed'",
        "sessions_final_count()",
    ),
]

# Runs after the triggers exist: creating them locked both tables against writers until this
# migration commits, so the history counted here and the changes counted from now on do not overlap.
_BACKFILL = f"""
INSERT INTO final_counts (subject, backend, state, n)
SELECT 'job', backend, status, count(*) FROM jobs WHERE status IN {_JOB_FINAL} GROUP BY backend, status
UNION ALL
SELECT 'session', backend, state, count(*) FROM sessions WHERE state = 'closed' GROUP BY backend, state
"""


def upgrade() -> None:
    op.create_table(
        "final_counts",
        sa.Column("subject", sa.String(length=16), nullable=False),  # 'job' or 'session'
        sa.Column("backend", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "backend", "state"),
    )
    op.create_table(
        "final_count_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("subject", sa.String(length=16), nullable=False),
        sa.Column("backend", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(_JOB_FUNCTION)
    op.execute(_SESSION_FUNCTION)
    op.execute(_FORGET_FUNCTION)
    for table, name, timing, condition, function in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW WHEN ({condition}) EXECUTE FUNCTION {function}"
        )
    for table, subject in (("jobs", "job"), ("sessions", "session")):
        op.execute(
            f"CREATE TRIGGER {table}_final_count_truncate AFTER TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION final_counts_forget('{subject}')"
        )
    op.execute(_BACKFILL)


def downgrade() -> None:
    for table, name, *_ in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for table in ("jobs", "sessions"):
        op.execute(f"DROP TRIGGER {table}_final_count_truncate ON {table}")
    op.execute("DROP FUNCTION final_counts_forget()")
    op.execute("DROP FUNCTION sessions_final_count()")
    op.execute("DROP FUNCTION jobs_final_count()")
    op.drop_table("final_count_changes")
    op.drop_table("final_counts")
