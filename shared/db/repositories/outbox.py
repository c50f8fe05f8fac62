"""The transactional outbox: messages written in the same transaction as the state change they announce.

After the transaction commits, its rows are handed to the committing process's publisher (when one
is running) so they leave at once; the relay's sweep publishes whatever was not confirmed within a
grace period (a process that died after its commit, a broker that was away, a process without a
publisher such as the CLI)."""

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import delete, event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from shared.db.driver import driver
from shared.db.models import OutboxMessage
from shared.db.repositories import events
from shared.db.repositories.clock import seconds_ago
from shared.db.repositories.together import together, write_both
from shared.events.document import Event
from shared.messaging.messages import Message

# A trigger on event rows of the outbox (migration i14_outbox_notify) notifies this channel: once per
# transaction that wrote events, on its commit.
NOTIFY_CHANNEL = "qruntime_outbox"
_WRITTEN_KEY = "outbox_written"
_AFTER_COMMIT_KEY = "outbox_after_commit"


@dataclass(frozen=True)
class CommittedMessage:
    """An outbox row as it was committed: what a publisher needs, detached from any session."""

    id: int
    message_id: uuid.UUID
    exchange: str
    routing_key: str
    body: dict[str, Any]
    priority: int


def hand_over_after_commit(
    sessions: async_sessionmaker[AsyncSession], receive: Callable[[list[CommittedMessage]], None]
) -> None:
    """Every transaction of `sessions` that writes outbox rows hands them to `receive` once it has
    committed (never for a rolled-back one). `receive` runs on the event loop and must not block."""
    info = dict(sessions.kw.get("info") or {})
    info[_AFTER_COMMIT_KEY] = receive
    sessions.configure(info=info)


@event.listens_for(Session, "after_commit")
def _hand_over_committed(session: Session) -> None:
    written: list[CommittedMessage] | None = session.info.pop(_WRITTEN_KEY, None)
    receive = session.info.get(_AFTER_COMMIT_KEY)
    if written and receive is not None:
        receive(written)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_WRITTEN_KEY, None)


# Sent without parameters, so planned at each call for the outbox as it is: prepared, its generic
# plan was made once per connection, a sequential scan while the outbox was nearly empty, and kept
# after it grew until an ANALYZE (sent rows stay KEEP_SENT_SECONDS: after a burst every mark read
# thousands of rows). The ids are the outbox's own integers, formatted as integers.
_MARK_SENT = "UPDATE outbox SET sent_at = now() WHERE id = ANY('{{{ids}}}'::bigint[]) AND sent_at IS NULL"


_LOCK_UNSENT = """
SELECT id, message_id, exchange, routing_key, body, priority FROM outbox
WHERE sent_at IS NULL
  AND (created_at <= now() - make_interval(secs => $1) OR exchange = ANY($2::varchar[]))
ORDER BY id
LIMIT $3
FOR UPDATE SKIP LOCKED"""


# Written on the driver (shared/db/driver.py), one statement for one row or for the rows written
# together (shared/db/repositories/together.py); ids follow the arrays' order.
_ADD_MANY = """
INSERT INTO outbox (message_id, exchange, routing_key, body, priority)
SELECT message_id, exchange, routing_key, body::jsonb, priority
FROM unnest($1::uuid[], $2::varchar[], $3::varchar[], $4::text[], $5::int[])
    AS rows(message_id, exchange, routing_key, body, priority)
RETURNING id, message_id"""


async def _write_many(db: AsyncSession, rows: list[CommittedMessage]) -> None:
    written = await (await driver(db)).fetch(_ADD_MANY, *_columns(rows))
    _remember(db, rows, written)


# A change's event rows and its outbox rows in one statement (one round trip on every job change).
_ADD_MANY_WITH_EVENTS = f"WITH added_events AS ({events.ADD_MANY_AT_6}) {_ADD_MANY}"


async def _write_many_with_events(
    db: AsyncSession, event_rows: list[tuple[Any, ...]], rows: list[CommittedMessage]
) -> None:
    written = await (await driver(db)).fetch(
        _ADD_MANY_WITH_EVENTS, *_columns(rows), *events.columns(event_rows)
    )
    _remember(db, rows, written)


write_both(events.write_many, _write_many, _write_many_with_events)


def _columns(rows: list[CommittedMessage]) -> list[list[Any]]:
    return [
        [row.message_id for row in rows],
        [row.exchange for row in rows],
        [row.routing_key for row in rows],
        [json.dumps(row.body) for row in rows],
        [row.priority for row in rows],
    ]


def _remember(db: AsyncSession, rows: list[CommittedMessage], written: Sequence[Any]) -> None:
    ids = {record["message_id"]: record["id"] for record in written}
    _remember_written(db, [replace(row, id=ids[row.message_id]) for row in rows])


def _remember_written(db: AsyncSession, rows: list[CommittedMessage]) -> None:
    """Rows for the committing process's publisher, handed over once the transaction commits."""
    if _AFTER_COMMIT_KEY in db.info:
        db.info.setdefault(_WRITTEN_KEY, []).extend(rows)


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, exchange: str, routing_key: str, message: Message, priority: int = 0) -> None:
        await self._add(message.message_id, exchange, routing_key, message.model_dump(mode="json"), priority)

    async def add_event(self, exchange: str, routing_key: str, event: Event) -> None:
        # A row on the public events exchange is also published to the per-tenant one (the relay's
        # publish_row); every copy keeps the body's event_id, which subscribers deduplicate on.
        await self._add(uuid.uuid4(), exchange, routing_key, event.model_dump(mode="json"), 0)

    async def _add(
        self, message_id: uuid.UUID, exchange: str, routing_key: str, body: dict[str, Any], priority: int
    ) -> None:
        row = CommittedMessage(0, message_id, exchange, routing_key, body, priority)
        kept = together(self.session)
        if kept is not None:
            kept.add(_write_many, row)
        else:
            await _write_many(self.session, [row])

    async def lock_unsent(
        self, limit: int, older_than_seconds: float = 0.0, any_age_on: Sequence[str] = ()
    ) -> list[CommittedMessage]:
        """The oldest unsent rows, locked for this transaction: those of the exchanges `any_age_on`
        whatever their age, the others only once committed at least `older_than_seconds` ago
        (younger ones are still being published by the process that committed them). On the
        driver: the event relay sweeps on every NOTIFY."""
        rows = await (await driver(self.session)).fetch(
            _LOCK_UNSENT, older_than_seconds, list(any_age_on), limit
        )
        return [
            CommittedMessage(
                row["id"],
                row["message_id"],
                row["exchange"],
                row["routing_key"],
                row["body"],
                row["priority"],
            )
            for row in rows
        ]

    async def mark_sent(self, ids: list[int]) -> None:
        if ids:
            await (await driver(self.session)).execute(
                _MARK_SENT.format(ids=",".join(str(int(i)) for i in ids))
            )

    async def delete_sent_before(self, seconds: float) -> int:
        result = await self.session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.sent_at.is_not(None),
                OutboxMessage.sent_at < seconds_ago(seconds),
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
