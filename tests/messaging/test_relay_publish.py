"""How the relay publishes an outbox row (shared/messaging/relay.py, `publish_row`), over a
coalescing connection to the real broker."""

import asyncio
import json
import uuid
from dataclasses import replace

import aio_pika
import aiormq
import pytest

from shared.db.repositories.outbox import CommittedMessage
from shared.messaging.coalescing import connect
from shared.messaging.relay import exchanges_on, publish_row
from shared.messaging.topology import COMMANDS, EVENTS, TENANT_EVENTS
from tests.stack import AMQP_URL


async def test_a_batch_published_without_waiting_arrives_whole_in_order_and_confirmed() -> None:
    """The relay's way (shared/messaging/relay.py): aiormq's basic_publish with wait=False over a
    coalescing connection, every confirm awaited; a mandatory message nobody can take still fails."""
    connection = await connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.declare_queue(f"qrt-test-coalescing-{uuid.uuid4().hex[:8]}", exclusive=True)
        underlay = await channel.get_underlay_channel()
        assert isinstance(underlay, aiormq.Channel)
        bodies = [f"message {i}".encode() for i in range(300)]
        confirms = await asyncio.gather(
            *(
                underlay.basic_publish(body, routing_key=queue.name, mandatory=True, wait=False)
                for body in bodies
            )
        )
        assert all(isinstance(confirm, aiormq.spec.Basic.Ack) for confirm in confirms)
        got: list[bytes] = []
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                got.append(message.body)
                if len(got) == len(bodies):
                    break
        assert got == bodies
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await underlay.basic_publish(
                b"nobody", routing_key=f"qrt-test-nobody-{uuid.uuid4().hex}", mandatory=True, wait=False
            )
    finally:
        await connection.close()


async def test_an_event_row_is_published_to_the_public_and_the_tenant_exchange() -> None:
    """One outbox row per event (shared/events/publishing.py): publish_row sends it to both topic
    exchanges, the tenant copy keyed by the owning instance, with a message id of its own that is the
    same at every re-send; any other row goes to its own exchange only."""
    tag = uuid.uuid4().hex[:8]
    names = {
        EVENTS: f"qrt-test-events-{tag}",
        TENANT_EVENTS: f"qrt-test-tenant-{tag}",
        COMMANDS: f"qrt-test-cmd-{tag}",
    }
    connection = await connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queues = {}
        for kind, name in names.items():
            exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, auto_delete=True)
            queues[kind] = await channel.declare_queue(exclusive=True)
            await queues[kind].bind(exchange, routing_key="#")
        exchanges = await exchanges_on(channel, names)
        body = {"type": "job.state_changed", "job_id": "j1", "instance": "inst-a", "state": "completed"}
        event = CommittedMessage(1, uuid.uuid4(), EVENTS, "job.completed.aer_simulator", body, 0)
        await publish_row(exchanges, event)
        await publish_row(exchanges, event)  # a re-send, as after a lost confirm
        command = CommittedMessage(2, uuid.uuid4(), COMMANDS, "scheduler", {"type": "wake"}, 0)
        await publish_row(exchanges, command)

        async def drain(kind: str, count: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
            got = []
            for _ in range(200):
                message = await queues[kind].get(no_ack=True, fail=False)
                if message is not None:
                    got.append(message)
                elif len(got) >= count:
                    break
                else:
                    await asyncio.sleep(0.02)
            return got

        public, tenant, commands = (
            await drain(EVENTS, 2),
            await drain(TENANT_EVENTS, 2),
            await drain(COMMANDS, 1),
        )
        assert [m.routing_key for m in public] == ["job.completed.aer_simulator"] * 2
        assert [m.routing_key for m in tenant] == ["inst-a.job.completed.aer_simulator"] * 2
        assert all(json.loads(m.body) == body for m in public + tenant)
        assert {m.message_id for m in public} == {str(event.message_id)}
        tenant_ids = {m.message_id for m in tenant}
        assert len(tenant_ids) == 1 and tenant_ids != {str(event.message_id)}
        assert [m.routing_key for m in commands] == ["scheduler"] and json.loads(commands[0].body) == {
            "type": "wake"
        }
        # An event without an owning instance is keyed 'none' on the tenant exchange.
        await publish_row(exchanges, replace(event, message_id=uuid.uuid4(), body={**body, "instance": None}))
        assert [m.routing_key for m in await drain(TENANT_EVENTS, 1)] == ["none.job.completed.aer_simulator"]
    finally:
        await connection.close()
