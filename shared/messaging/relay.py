"""The outbox relay: publishes committed outbox rows with publisher confirms, then marks them sent.

Every process runs one, and rows leave by one of two ways:

- Work (commands to the scheduler, dispatches to executors) is published by the process that
  committed it, right after the commit (handed over by `hand_over_after_commit`): a job crosses no
  extra hop. Work messages are wake-ups and claims that consumers check against the database, so
  their order between processes does not matter.
- Events go out in commit order, which subscribers rely on per object (a job's `running` before its
  `done`, even when two processes changed it a moment apart). One relay at a time, the event relay
  (a session advisory lock on its LISTEN connection, held while it has a broker), sweeps them in id
  order each time the outbox NOTIFY says something committed; the other relays stay asleep.

The event relay's sweep also publishes, in id order, any work row still unsent after a grace period
(a process that died after its commit, a broker that was away, a process without a relay such as the
CLI). Every sweep holds a transaction-scoped lock, so two never overlap. A message is marked sent only
after the broker confirmed it, so a crash at any point re-sends rather than loses (consumers are
idempotent).
"""

import asyncio
import json
import logging
import uuid
from collections import deque
from contextlib import suppress
from dataclasses import dataclass

import aio_pika
import aiormq
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.engine import asyncpg_dsn, single_statement, unit_of_work
from shared.db.repositories.events import EventRepository
from shared.db.repositories.idempotency import IdempotencyRepository
from shared.db.repositories.locks import release_event_relay_lock, try_event_relay_lock, try_relay_lock
from shared.db.repositories.outbox import (
    NOTIFY_CHANNEL,
    CommittedMessage,
    OutboxRepository,
    hand_over_after_commit,
)
from shared.db.repositories.overview import OverviewRepository
from shared.events.document import tenant_routing_key
from shared.jobs.endings import JOB_ENDED_CHANNEL, JobEndings
from shared.kit.settings import Settings
from shared.kit.supervision import first_of, process_health, sleep_unless
from shared.messaging.connection import BrokerLost, describe, is_broker_error, keep_connected
from shared.messaging.topology import COMMANDS, DISPATCH, EVENTS, EXCHANGES, TENANT_EVENTS, Topology

log = logging.getLogger(__name__)

BATCH_SIZE = 200
# What the committing processes publish themselves is swept only after this: a row younger than it
# is on its way. Longer than a publish with confirm takes, short enough that nothing waits long.
SWEEP_GRACE_SECONDS = 1.0
# Rows handed over while the broker is away, or beyond this many, are left to the sweep.
MAX_HANDED_OVER = 10_000
# Published rows are marked sent together, at most this long after their publish (well within the
# sweep's grace, so the sweep does not send them again): one UPDATE for many commits.
MARK_SENT_DELAY_SECONDS = 0.1
# Published by the process that commits them; everything else waits for the event relay's sweep.
WORK_EXCHANGES = frozenset({COMMANDS, DISPATCH})
EVENT_EXCHANGES = (EVENTS, TENANT_EVENTS)
LEADERSHIP_RETRY_SECONDS = 1.0
# The event relay sweeps this long after the first NOTIFY, so that the events of the commits in
# between leave in one sweep: tens of milliseconds on an event, one transaction instead of several.
EVENT_GATHER_SECONDS = 0.05
KEEP_SENT_SECONDS = 3600.0
PUBLISH_TIMEOUT = 30.0  # a batch whose confirms do not come back within this is taken as a lost broker
IDEMPOTENCY_RETENTION_SECONDS = 24 * 3600.0
HEALTH_NAME = "broker"
DATABASE_HEALTH_NAME = "database"


@dataclass(frozen=True)
class Exchange:
    """An exchange the relay publishes to, on aiormq's channel (see `publish_row`)."""

    name: str
    channel: aiormq.Channel


# The per-tenant copy of a public event gets a message id of its own, the same at every re-send.
_TENANT_COPY = uuid.UUID("6f1d7a56-5d0e-4b8e-9d7c-0c6a3c1e2b41")


async def publish_row(exchanges: dict[str, Exchange], row: CommittedMessage) -> None:
    """Publish one outbox row and wait for the broker's confirm (raises DeliveryError when a
    mandatory message could not be routed). A row of the public events exchange is published to
    the per-tenant exchange too, with the owning instance first in its routing key (decision 14):
    one row, two messages, both confirmed before the row is marked sent."""
    body = json.dumps(row.body).encode()
    sends = [_publish_message(exchanges[row.exchange], row, body, row.routing_key, row.message_id)]
    if row.exchange == EVENTS:
        sends.append(
            _publish_message(
                exchanges[TENANT_EVENTS],
                row,
                body,
                tenant_routing_key(row.body.get("instance"), row.routing_key),
                uuid.uuid5(_TENANT_COPY, str(row.message_id)),
            )
        )
    await asyncio.gather(*sends)


async def _publish_message(
    exchange: Exchange, row: CommittedMessage, body: bytes, routing_key: str, message_id: uuid.UUID
) -> None:
    properties = aio_pika.Message(
        body=body,
        content_type="application/json",
        message_id=str(message_id),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=row.priority,
        type=str(row.body.get("type", "")),
    ).properties
    # On aiormq's channel, without waiting for the frame to be written: aio-pika's publish waits,
    # holding the channel's lock, so a batch left one frame per turn of the event loop and one send
    # each, about twice the CPU per publish here and in RabbitMQ (bench/publish_cost.py). The
    # confirm is still awaited and the channel's write queue is bounded, so nothing is marked sent
    # unconfirmed.
    await exchange.channel.basic_publish(
        body,
        exchange=exchange.name,
        routing_key=routing_key,
        properties=properties,
        # Events may have no subscriber; work must always reach its queue.
        mandatory=row.exchange not in EVENT_EXCHANGES,
        wait=False,
    )


async def exchanges_on(channel: AbstractChannel, names: dict[str, str]) -> dict[str, Exchange]:
    """The exchanges `names` maps to (each must exist: checked here), on `channel`'s aiormq channel."""
    underlay = await channel.get_underlay_channel()
    if not isinstance(underlay, aiormq.Channel):
        raise TypeError(f"aio-pika's channel is not on an aiormq channel: {type(underlay).__name__}")
    for name in names.values():
        await channel.get_exchange(name)  # declared, or fail here
    return {kind: Exchange(name, underlay) for kind, name in names.items()}


class ChangeFeed:
    """Wakes every waiter in this process when the database announces committed changes (the outbox
    NOTIFY): Server-Sent Events streams wait on it instead of polling the database."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, at_most: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=at_most)


class OutboxRelay:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        endings: JobEndings | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.topology = Topology(settings.namespace)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self.broker_connected = False
        self.changes = ChangeFeed()
        # The api's: its listener also hears which jobs ended, for the reads that wait for them.
        self.endings = endings
        self._handed_over: deque[CommittedMessage] = deque()
        self._published: list[int] = []  # ids published and confirmed, not yet marked sent
        self._mark_at = 0.0
        self.sweeping = False  # this relay is the event relay (holds the lock on its LISTEN connection)
        self._sweep_due: float | None = None  # when a NOTIFY asked for a sweep, plus the gathering delay

    def publish_after_commit(self) -> None:
        """From now on, this process's commits hand their outbox rows to this relay."""
        hand_over_after_commit(self.sessions, self._take_committed)

    def _take_committed(self, messages: list[CommittedMessage]) -> None:
        work = [m for m in messages if m.exchange in WORK_EXCHANGES]
        if not work or not self.broker_connected or len(self._handed_over) + len(work) > MAX_HANDED_OVER:
            return  # the sweep sends them
        self._handed_over.extend(work)
        self._wake.set()

    def _on_notify(self) -> None:
        self.changes.notify()
        if self.sweeping and self._sweep_due is None:
            self._sweep_due = asyncio.get_running_loop().time() + EVENT_GATHER_SECONDS
            self._wake.set()

    def _on_job_ended(self, _conn: object, _pid: int, _channel: str, job_id: str) -> None:
        if self.endings is not None:
            self.endings.ended(job_id)

    async def run(self) -> None:
        """Relay until stop(). The broker connection is kept by `keep_connected` (a lost broker is
        logged and reconnected with backoff); a lost database is retried on the same channel."""
        self.publish_after_commit()
        listener = asyncio.create_task(self._listen())
        try:
            await keep_connected(self.settings.amqp_url, self._stop, HEALTH_NAME, self._relay_until_broken)
        finally:
            self.broker_connected = False
            listener.cancel()
            with suppress(asyncio.CancelledError):
                await listener

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def _relay_until_broken(self, connection: AbstractConnection) -> None:
        """Relay on this connection until it breaks (BrokerLost and broker errors leave this method;
        database errors are waited out here, the rows wait for us)."""
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            await self.topology.declare_all(channel, self.settings.backends)
            exchanges = await self._exchanges(channel)
            self.broker_connected = True
            last_cleanup = 0.0
            next_sweep = 0.0
            loop = asyncio.get_running_loop()
            while not self._stop.is_set():
                process_health.beat(HEALTH_NAME)
                if channel.is_closed:
                    raise BrokerLost("the relay's channel is closed")
                self._wake.clear()
                try:
                    # Marks first: under a steady stream of commits the handed-over queue may never
                    # empty, and published rows must be marked before the sweep's grace runs out.
                    if self._published and (
                        loop.time() >= self._mark_at or len(self._published) >= BATCH_SIZE
                    ):
                        await self._mark_published()
                    if self._handed_over:
                        await self._publish_handed_over(exchanges)
                        continue
                    asked = self._sweep_due is not None and loop.time() >= self._sweep_due
                    if self.sweeping and (asked or loop.time() >= next_sweep):
                        self._sweep_due = None
                        sent = await self.relay_once(exchanges)
                        next_sweep = loop.time() + (
                            0.0 if sent >= BATCH_SIZE else self.settings.outbox_poll_seconds
                        )
                        if loop.time() - last_cleanup > 60:
                            last_cleanup = loop.time()
                            await self._clean_up()
                except BrokerLost:
                    raise
                except (DBAPIError, asyncpg.PostgresError, OSError) as exc:
                    # The database is down or restarting: nothing is lost, the rows wait for us.
                    log.warning("outbox relay cannot reach the database: %s", describe(exc))
                    process_health.report(DATABASE_HEALTH_NAME, False, type(exc).__name__)
                    await sleep_unless(self._stop, 1.0)
                    continue
                process_health.report(DATABASE_HEALTH_NAME, True)
                if self._handed_over:
                    continue
                # Asleep until woken (rows handed over, a NOTIFY for the event relay, leadership),
                # or until a sweep or the marking of published rows is due.
                due = [next_sweep] if self.sweeping else [loop.time() + LEADERSHIP_RETRY_SECONDS]
                if self._sweep_due is not None:
                    due.append(self._sweep_due)
                if self._published:
                    due.append(self._mark_at)
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, min(due) - loop.time()))
        finally:
            self.broker_connected = False
            self._handed_over.clear()  # the sweep sends them
            with suppress(Exception):  # else the sweep sends them again: a duplicate, not a loss
                await asyncio.wait_for(self._mark_published(), timeout=2.0)

    async def _clean_up(self) -> None:
        async with unit_of_work(self.sessions) as session:
            await OutboxRepository(session).delete_sent_before(KEEP_SENT_SECONDS)
            await EventRepository(session).delete_older_than(self.settings.event_retention_days)
            await IdempotencyRepository(session).delete_older_than(IDEMPOTENCY_RETENTION_SECONDS)
            await OverviewRepository(session).fold_final_counts()

    async def _publish_handed_over(self, exchanges: dict[str, Exchange]) -> None:
        """Publish what this process just committed, in commit order, then mark it sent. A row whose
        publish failed is left unsent for the sweep (a lost broker leaves all of them)."""
        batch = [self._handed_over.popleft() for _ in range(min(BATCH_SIZE, len(self._handed_over)))]
        try:
            await asyncio.gather(*(self._publish(exchanges, row) for row in batch))
        except aio_pika.exceptions.DeliveryError as exc:
            log.error("a message could not be routed (%s); the sweep retries it", describe(exc))
            return
        if not self._published:
            self._mark_at = asyncio.get_running_loop().time() + MARK_SENT_DELAY_SECONDS
        self._published.extend(row.id for row in batch)

    async def _mark_published(self) -> None:
        if not self._published:
            return
        ids, self._published = self._published, []
        try:
            async with single_statement(self.sessions) as session:
                await OutboxRepository(session).mark_sent(ids)
        except BaseException:
            self._published = ids + self._published  # tried again on the next round
            raise

    async def _exchanges(self, channel: AbstractChannel) -> dict[str, Exchange]:
        return await exchanges_on(channel, {name: self.topology.exchange_name(name) for name in EXCHANGES})

    async def relay_once(self, exchanges: dict[str, Exchange]) -> int:
        async with unit_of_work(self.sessions) as session:
            if not await try_relay_lock(session):
                return 0
            outbox = OutboxRepository(session)
            rows = await outbox.lock_unsent(
                BATCH_SIZE, older_than_seconds=SWEEP_GRACE_SECONDS, any_age_on=EVENT_EXCHANGES
            )
            if not rows:
                return 0
            # Confirms are pipelined: publish the whole batch, then wait for every ack.
            await asyncio.gather(*(self._publish(exchanges, row) for row in rows))
            await outbox.mark_sent([row.id for row in rows])
            return len(rows)

    async def _publish(self, exchanges: dict[str, Exchange], row: CommittedMessage) -> None:
        """Publish one row and wait for its confirm; any broker failure becomes BrokerLost, so it is
        never taken for a database error (aiormq's ConnectionClosed is an OSError)."""
        try:
            await asyncio.wait_for(publish_row(exchanges, row), timeout=PUBLISH_TIMEOUT)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled
            raise BrokerLost("a publish was cancelled by the closing channel") from None
        except aio_pika.exceptions.DeliveryError:
            raise
        except Exception as exc:
            if is_broker_error(exc):
                raise BrokerLost(describe(exc)) from exc
            raise

    async def _listen(self) -> None:
        """LISTEN for outbox commits, and be the event relay when no other relay is (only while this
        one has a broker to publish to). Reconnects quietly; a relay without its listener only
        publishes what its own process commits, and another relay takes the sweeping over."""
        dsn = asyncpg_dsn(self.settings.database_url)
        while not self._stop.is_set():
            try:
                conn = await asyncpg.connect(dsn)
                try:
                    lost = asyncio.Event()
                    conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                    await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._on_notify())
                    if self.endings is not None:
                        await conn.add_listener(JOB_ENDED_CHANNEL, self._on_job_ended)
                        self.endings.wake_all()  # what ended while no listener was there
                    while not (lost.is_set() or self._stop.is_set()):
                        await self._hold_or_seek_sweeping(conn)
                        await first_of(
                            lost.wait(), self._stop.wait(), asyncio.sleep(LEADERSHIP_RETRY_SECONDS)
                        )
                finally:
                    self._stop_sweeping()
                    with suppress(Exception):
                        await conn.close()  # also releases the lock
            except Exception as exc:  # never end: a lost listener only leaves the sweeping to another
                log.warning("outbox listener: %s", describe(exc))
                self._stop_sweeping()
                await sleep_unless(self._stop, 1.0)

    async def _hold_or_seek_sweeping(self, conn: asyncpg.Connection) -> None:
        if self.sweeping and not self.broker_connected:
            self._stop_sweeping()
            await release_event_relay_lock(conn)  # a relay with a broker takes over
        elif not self.sweeping and self.broker_connected and await try_event_relay_lock(conn):
            log.info("this process's relay now publishes the events")
            self.sweeping = True
            self._sweep_due = asyncio.get_running_loop().time()  # sweep what waits at once
            self._wake.set()

    def _stop_sweeping(self) -> None:
        self.sweeping = False
        self._sweep_due = None
