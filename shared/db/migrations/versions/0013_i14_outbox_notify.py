"""outbox NOTIFY by a trigger on event rows: one per committing transaction that wrote events

Revision ID: i14_outbox_notify
Revises: i11_result_digest
"""

from alembic import op

revision, down_revision, branch_labels, depends_on = "i14_outbox_notify", "i11_result_digest", None, None


def upgrade() -> None:
    # PostgreSQL folds identical notifications of one transaction into one, delivered on commit,
    # and costs no round trip. Only event rows notify: every state change writes one, and they are
    # what the event relay and the api's waiters (SSE, `?wait`) wake for; work rows (commands,
    # dispatches) are published by the process that commits them.
    op.execute(
        "CREATE FUNCTION qruntime_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_notify('qruntime_outbox', ''); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH ROW "
        "WHEN (NEW.exchange = 'events') EXECUTE FUNCTION qruntime_outbox_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION qruntime_outbox_notify()")
