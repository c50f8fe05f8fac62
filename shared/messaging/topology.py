"""RabbitMQ topology. Every name starts with the configured namespace so stacks can share a broker.

Classic durable queues because Debian's RabbitMQ (3.10) has no quorum-queue priorities; the same
declarations work on RabbitMQ 4.x.
"""

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pamqp.common import FieldTable

COMMANDS = "commands"
DISPATCH = "dispatch"
EVENTS = "events"
# The same events with the instance first in the routing key, for tenant-confined subscribers.
TENANT_EVENTS = "tenant-events"
DEAD = "dead"
SCHEDULER_ROUTING_KEY = "scheduler"
# Classic-queue priorities cost CPU per level; a handful is what RabbitMQ recommends.
MAX_PRIORITY = 4
EXCHANGES = (COMMANDS, DISPATCH, EVENTS, TENANT_EVENTS, DEAD)


def message_priority(job_priority: int, max_priority: int = MAX_PRIORITY) -> int:
    """Map a job priority (-10..10) onto the queue's few priority levels (0..max)."""
    clamped = max(-10, min(10, job_priority))
    return round((clamped + 10) / 20 * max_priority)


@dataclass(frozen=True)
class Topology:
    namespace: str

    def exchange_name(self, logical: str) -> str:
        return f"{self.namespace}.{logical}"

    @property
    def scheduler_queue(self) -> str:
        return f"{self.namespace}.scheduler"

    def executor_queue(self, backend: str) -> str:
        return f"{self.namespace}.executor.{backend}"

    @property
    def dead_queue(self) -> str:
        return f"{self.namespace}.dead"

    async def declare_exchanges(self, channel: AbstractChannel) -> dict[str, AbstractExchange]:
        kinds = {
            COMMANDS: aio_pika.ExchangeType.DIRECT,
            DISPATCH: aio_pika.ExchangeType.DIRECT,
            EVENTS: aio_pika.ExchangeType.TOPIC,
            TENANT_EVENTS: aio_pika.ExchangeType.TOPIC,
            DEAD: aio_pika.ExchangeType.FANOUT,
        }
        exchanges = {}
        for logical, kind in kinds.items():
            exchanges[logical] = await channel.declare_exchange(
                self.exchange_name(logical), kind, durable=True
            )
        dead = await channel.declare_queue(self.dead_queue, durable=True)
        await dead.bind(exchanges[DEAD])
        return exchanges

    def _work_queue_arguments(self) -> FieldTable:
        return {"x-max-priority": MAX_PRIORITY, "x-dead-letter-exchange": self.exchange_name(DEAD)}

    async def declare_scheduler_queue(self, channel: AbstractChannel) -> AbstractQueue:
        queue = await channel.declare_queue(
            self.scheduler_queue, durable=True, arguments=self._work_queue_arguments()
        )
        await queue.bind(self.exchange_name(COMMANDS), routing_key=SCHEDULER_ROUTING_KEY)
        return queue

    async def declare_executor_queue(self, channel: AbstractChannel, backend: str) -> AbstractQueue:
        queue = await channel.declare_queue(
            self.executor_queue(backend), durable=True, arguments=self._work_queue_arguments()
        )
        await queue.bind(self.exchange_name(DISPATCH), routing_key=backend)
        return queue

    async def declare_all(self, channel: AbstractChannel, backends: list[str]) -> None:
        """Declare everything a publisher may route to, so no committed message is unroutable."""
        await self.declare_exchanges(channel)
        await self.declare_scheduler_queue(channel)
        for backend in backends:
            await self.declare_executor_queue(channel, backend)
