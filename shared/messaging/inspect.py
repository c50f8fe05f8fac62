"""Read-only looks at the broker: how many messages wait in each executor queue."""

import aio_pika
from aio_pika.abc import AbstractConnection
from aiormq.exceptions import ChannelNotFoundEntity

from shared.messaging.topology import Topology


async def queue_depths_on(
    connection: AbstractConnection, topology: Topology, backends: list[str]
) -> dict[str, int]:
    depths: dict[str, int] = {}
    for backend in backends:
        # A passive declare of a missing queue closes its channel: one short-lived channel per queue.
        async with await connection.channel() as channel:
            try:
                queue = await channel.declare_queue(topology.executor_queue(backend), passive=True)
            except ChannelNotFoundEntity:
                depths[backend] = 0  # not declared yet: nothing waits
                continue
            depths[backend] = int(queue.declaration_result.message_count or 0)
    return depths


async def queue_depths(amqp_url: str, topology: Topology, backends: list[str]) -> dict[str, int]:
    connection = await aio_pika.connect(amqp_url, timeout=5)
    async with connection:
        return await queue_depths_on(connection, topology, backends)
