"""Rows written together: inside `written_together(db)`, the event and outbox rows that a change
adds are kept and written when the block ends, one statement per table (a dispatch of fifty jobs
announces its claim in two statements instead of two hundred round trips). Outside such a block
every row is written at once. Rows keep the order they were added in, so ids follow it."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

_KEY = "written_together"

Writer = Callable[[AsyncSession, list[Any]], Awaitable[None]]


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
    for write, rows in kept.rows.items():
        await write(db, rows)
