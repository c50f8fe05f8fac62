"""One database wake-up per api process for all its Server-Sent Event streams.

The outbox NOTIFY (LISTEN in the relay) wakes the hub; the hub reads which jobs and sessions have
new events (one query, whatever the number of streams) and wakes only the streams that follow
them. With no NOTIFY the hub looks every few seconds (a lost notification only delays). Streams
never poll the database on a timer of their own.

An event id can commit after a higher one (two transactions), so ids skipped over are looked for
again for a while before they are taken for rolled-back sequence values.

Streams per user are capped per process (`QRUNTIME_SSE_MAX_STREAMS_PER_USER`, 429 with code 1013
beyond it).
"""

import asyncio
import logging
import time
import weakref
from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.engine import unit_of_work
from shared.db.repositories.events import EventRepository
from shared.kit.errors import ErrorCode, QRuntimeError
from shared.messaging.relay import ChangeFeed

log = logging.getLogger(__name__)

FALLBACK_SECONDS = 5.0
GAP_SECONDS = 30.0
BATCH = 1000
MAX_GAP = 1000


class EventHub:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], changes: ChangeFeed) -> None:
        self.sessions = sessions
        self.changes = changes
        self._watchers: dict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)
        self._cursor: int | None = None
        self._gaps: dict[int, float] = {}
        self.polls = 0  # database reads so far (observable in tests)

    def watch(self, kind: str, object_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._watchers[(kind, object_id)].add(event)
        return event

    def unwatch(self, kind: str, object_id: str, event: asyncio.Event) -> None:
        watchers = self._watchers.get((kind, object_id))
        if watchers is not None:
            watchers.discard(event)
            if not watchers:
                del self._watchers[(kind, object_id)]

    async def run(self) -> None:
        while True:
            more = False
            try:
                more = await self._poll()
            except Exception as exc:  # the database is away: streams wait, nothing is lost
                log.debug("event hub: %s", exc)
            if not more:
                await self.changes.wait(FALLBACK_SECONDS)

    async def _poll(self) -> bool:
        if not self._watchers:
            # Nobody listens: no query. A new stream reads its own backlog when it starts.
            self._cursor = None
            self._gaps.clear()
            return False
        self.polls += 1
        async with unit_of_work(self.sessions) as session:
            repo = EventRepository(session)
            if self._cursor is None:
                self._cursor = await repo.latest_id()
                # Whatever committed before the cursor was set is looked for by every stream once.
                for watchers in self._watchers.values():
                    for event in watchers:
                        event.set()
                return False
            rows = await repo.owners_since(self._cursor, list(self._gaps), BATCH)
        now = time.monotonic()
        for event_id, job_id, session_id, sequence_id in rows:
            self._gaps.pop(event_id, None)
            for kind, owner in (("job", job_id), ("session", session_id), ("sequence", sequence_id)):
                if owner is not None:
                    self._wake(kind, owner)
        expected = self._cursor + 1
        for event_id in sorted(row[0] for row in rows if row[0] > self._cursor):
            if event_id - expected <= MAX_GAP:
                for missing in range(expected, event_id):
                    self._gaps[missing] = now
            expected = event_id + 1
        self._cursor = max(self._cursor, expected - 1)
        for event_id, since in list(self._gaps.items()):
            if now - since > GAP_SECONDS:
                del self._gaps[event_id]
        return len(rows) == BATCH

    def _wake(self, kind: str, object_id: str) -> None:
        for event in self._watchers.get((kind, object_id), ()):
            event.set()


class StreamSlot:
    """One open stream of a user; released when the stream ends (or is dropped unstarted)."""

    def __init__(self, slots: "StreamSlots", user_id: str) -> None:
        self._release = weakref.finalize(self, slots._release, user_id)

    def release(self) -> None:
        self._release()


class StreamSlots:
    def __init__(self, max_per_user: int) -> None:
        self.max_per_user = max_per_user
        self._open: dict[str, int] = defaultdict(int)

    def acquire(self, user_id: str) -> StreamSlot:
        if self._open[user_id] >= self.max_per_user:
            raise QRuntimeError(
                ErrorCode.TOO_MANY_STREAMS,
                f"You have {self.max_per_user} event streams open, the limit "
                "(QRUNTIME_SSE_MAX_STREAMS_PER_USER); close one first.",
                status=429,
            )
        self._open[user_id] += 1
        return StreamSlot(self, user_id)

    def _release(self, user_id: str) -> None:
        self._open[user_id] -= 1
        if self._open[user_id] <= 0:
            del self._open[user_id]
