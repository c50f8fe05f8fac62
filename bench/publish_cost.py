"""What one confirmed publish costs, the relay's way against aio-pika's own, measured alternately.

Every process publishes its outbox rows with publisher confirms, a batch at a time (the event relay's
sweep, what a commit handed over). This bench publishes a job's state events in batches, as the
relay does, each to a public and a per-tenant topic exchange of its own that nothing is bound to
(events without a subscriber, the burst's case), two ways, alternating, and prints the CPU per
message (two per event) of this process and of the RabbitMQ server:

- aio-pika: `Exchange.publish` on an `aio_pika.connect` connection, what the relay did until the
  fifteenth round. It waits for each frame to be written while holding the channel's lock.
- relay: `shared.messaging.relay.publish_row` on `shared.messaging.coalescing.connect`, what the
  relay does now (aiormq's basic_publish without waiting for the write; one send per turn).

    .venv/bin/python bench/publish_cost.py              # 3 rounds x 1,500 events a way and size
    .venv/bin/python bench/publish_cost.py --rounds 5 --publishes 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from trip import cpu_now

from shared.db.repositories.outbox import CommittedMessage
from shared.events.document import tenant_routing_key
from shared.messaging.coalescing import connect
from shared.messaging.relay import exchanges_on, publish_row
from shared.messaging.topology import EVENTS, TENANT_EVENTS

AMQP_URL = os.environ.get("QRUNTIME_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
BATCH_SIZES = (1, 3, 10)  # events per batch: one commit's, a few commits', a sweep's
# A job's state event as the relay publishes it (about 500 bytes of JSON).
BODY = {
    "type": "job.state_changed",
    "event_id": str(uuid.uuid4()),
    "job_id": "d4rgm3c8c2sc73a8kdeg",
    "session_id": None,
    "state": "completed",
    "status": "Completed",
    "reason": None,
    "reason_code": None,
    "backend": "aer_simulator",
    "instance": "i" * 20,
    "at": "2026-12-01T22:00:00.000000Z",
    "version": 1,
    "pubs_done": 1,
    "pubs_total": 1,
}


def _cpu_now() -> tuple[float, float]:
    """CPU seconds so far of this process and of the RabbitMQ server (every process of its user)."""
    used = cpu_now({"rabbitmq": ("user", "rabbitmq")})
    return used["client (this bench)"], used["rabbitmq"]


Publish = Callable[[CommittedMessage], Awaitable[object]]


async def _aio_pika_way(names: dict[str, str]) -> tuple[aio_pika.abc.AbstractConnection, Publish]:
    """Each copy as its own row published with aio-pika, as the relay did until this round."""
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    public = await channel.get_exchange(names[EVENTS])
    tenant = await channel.get_exchange(names[TENANT_EVENTS])

    async def publish(row: CommittedMessage) -> object:
        copies = (
            (public, row.routing_key),
            (tenant, tenant_routing_key(row.body["instance"], row.routing_key)),
        )
        return await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        body=json.dumps(row.body).encode(),
                        content_type="application/json",
                        message_id=str(uuid.uuid4()),
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        priority=row.priority,
                        type=str(row.body.get("type", "")),
                    ),
                    routing_key=routing_key,
                    mandatory=False,
                )
                for exchange, routing_key in copies
            )
        )

    return connection, publish


async def _relay_way(names: dict[str, str]) -> tuple[aio_pika.abc.AbstractConnection, Publish]:
    connection = await connect(AMQP_URL)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchanges = await exchanges_on(channel, names)

    async def publish(row: CommittedMessage) -> object:
        return await publish_row(exchanges, row)

    return connection, publish


WAYS = {"aio-pika": _aio_pika_way, "relay": _relay_way}


async def measure(way: str, names: dict[str, str], batch: int, publishes: int) -> tuple[float, float, float]:
    """(client µs, RabbitMQ µs, messages per second) for `publishes` events (two messages each)."""
    connection, publish = await WAYS[way](names)
    try:
        rows = [
            CommittedMessage(i, uuid.uuid4(), EVENTS, "job.completed.aer_simulator", BODY, 0)
            for i in range(batch)
        ]
        for _ in range(3):  # warm
            await asyncio.gather(*(publish(row) for row in rows))
        rounds = max(1, publishes // batch)
        (client, broker), started = _cpu_now(), time.perf_counter()
        for _ in range(rounds):
            await asyncio.gather(*(publish(row) for row in rows))
        wall = time.perf_counter() - started
        n = rounds * batch * 2
        client_after, broker_after = _cpu_now()
        return (client_after - client) / n * 1e6, (broker_after - broker) / n * 1e6, n / wall
    finally:
        await connection.close()


async def run(rounds: int, publishes: int) -> None:
    tag = uuid.uuid4().hex[:8]
    names = {EVENTS: f"qrt-bench-publish-{tag}", TENANT_EVENTS: f"qrt-bench-publish-tenant-{tag}"}
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    for name in names.values():
        await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, auto_delete=False)
    figures: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    try:
        for _ in range(rounds):
            for batch in BATCH_SIZES:
                for way in WAYS:
                    figures.setdefault((way, batch), []).append(await measure(way, names, batch, publishes))
    finally:
        for name in names.values():
            await (await channel.get_exchange(name)).delete()
        await connection.close()
    print(f"confirmed publishes of events (two messages each), {rounds} alternated rounds of {publishes}")
    print("events a way and batch size; CPU per message, medians")
    print(f"{'batch':>5} {'way':>9} {'client µs':>10} {'rabbitmq µs':>12} {'messages/s':>12}")
    for batch in BATCH_SIZES:
        medians = {}
        for way in WAYS:
            runs = figures[(way, batch)]
            medians[way] = tuple(statistics.median(run[i] for run in runs) for i in range(3))
            client, broker, rate = medians[way]
            print(f"{batch:>5} {way:>9} {client:>10.0f} {broker:>12.0f} {rate:>12.0f}")
        old, new = medians["aio-pika"], medians["relay"]
        print(
            f"{batch:>5} {'ratio':>9} {new[0] / old[0]:>10.2f} {new[1] / old[1]:>12.2f} {new[2] / old[2]:>12.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--publishes", type=int, default=1500, help="events a way and batch size")
    args = parser.parse_args(argv)
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}, os.cpu_count()={os.cpu_count()}")
    asyncio.run(run(args.rounds, args.publishes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
