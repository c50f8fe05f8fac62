"""Rows written together: inside `written_together(db)`, the event and outbox rows that a change
adds are kept and written when the block ends, one statement per table, or one statement for two
tables where a writer for both is registered (`write_both`): a job's change writes its event and
outbox rows in one round trip, and a dispatch of fifty jobs announces its claim in that one statement
instead of two hundred round trips. Outside such a block every row is written at once. Rows keep the
order they were added in, so ids follow it."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

_KEY = "written_together"

Writer = Callable[[AsyncSession, list[Any]], Awaitable[None]]
BothWriter = Callable[[AsyncSession, list[Any], list[Any]], Awaitable[None]]

# (first, second) -> one statement that writes the rows of both.
_BOTH: dict[tuple[Writer, Writer], BothWriter] = {}


def write_both(first: Writer, second: Writer, both: BothWriter) -> None:
    """Register `both(db, first_rows, second_rows)`, which writes in one statement what `first` and
    `second` would write in two (their rows in the same order)."""
    _BOTH[(first, second)] = both


@dataclass
class Together:
    rows: dict[Writer, list[Any]] = field(default_factory=dict)

    def add(self, write: Writer, row: Any) -> None:
        self.rows.setdefault(write, []).append(row)


def together(db: AsyncSession) -> Together | None:
    """The block of rows written together that `db` is in, if any."""
    return db.info.get(_KEY)  # type: ignore[no-any-return]


@asynccontextmanager
async def written_together(db: AsyncSession) -> AsyncIterator[None]:
    """Keep the rows added inside and write them at the end (not when the block raises: its
    transaction is rolled back anyway). Inside another such block, that one writes them."""
    if _KEY in db.info:
        yield
        return
    kept = Together()
    db.info[_KEY] = kept
    try:
        yield
    finally:
        del db.info[_KEY]
    pending = dict(kept.rows)
    for (first, second), both in _BOTH.items():
        if first in pending and second in pending:
            await both(db, pending.pop(first), pending.pop(second))
    for write, rows in pending.items():
        await write(db, rows)
