"""The documented RabbitMQ setup that confines a tenant's AMQP user to its own instance's events,
checked against the real broker (users and permissions made with rabbitmqctl, as docs/events.md says)."""

import asyncio
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from shared.messaging.topology import Topology
from tests.stack import Stack, sampler_job


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def tenant_user(stack: Stack) -> Iterator[tuple[str, str, str]]:
    assert shutil.which("rabbitmqctl"), "rabbitmqctl comes with the RabbitMQ server these tests run against"
    instance = stack.sql("SELECT id FROM instances WHERE name = 'lab-a'")[0]["id"]
    user = f"tenant-{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    exchange = Topology(stack.namespace).exchange_name("tenant-events")
    rabbitmqctl("add_user", user, password)
    try:
        # configure/write: only queues named after the user; read: those queues and the tenant exchange.
        rabbitmqctl(
            "set_permissions",
            "-p",
            "/",
            user,
            f"^{user}\\..*",
            f"^{user}\\..*",
            f"^({user}\\..*|{exchange})$",
        )
        # Topic authorisation: the user may bind only routing keys that start with its instance id.
        rabbitmqctl("set_topic_permissions", "-p", "/", user, exchange, "^$", f"^{instance}\\..*")
        yield user, password, instance
    finally:
        rabbitmqctl("delete_user", user)


def test_a_tenant_user_reads_only_its_own_instances_events(
    stack: Stack, tenant_user: tuple[str, str, str]
) -> None:
    user, password, instance = tenant_user
    topology = Topology(stack.namespace)

    url = f"amqp://{user}:{password}@127.0.0.1:5672/"
    queue_name = f"{user}.events"

    async def bind_and_probe() -> list[str]:
        refused: list[str] = []
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(queue_name)
            await queue.bind(topology.exchange_name("tenant-events"), routing_key=f"{instance}.job.#")
            for exchange, key in (
                (topology.exchange_name("tenant-events"), "someone-else.job.#"),
                (topology.exchange_name("tenant-events"), "#"),
                (topology.exchange_name("events"), "job.#"),
            ):
                probe = await connection.channel()
                try:
                    probe_queue = await probe.declare_queue(
                        f"{user}.probe-{uuid.uuid4().hex[:4]}", auto_delete=True
                    )
                    await probe_queue.bind(exchange, routing_key=key)
                except ChannelAccessRefused:
                    refused.append(f"{exchange} {key}")
        return refused

    async def consume(job_id: str) -> list[dict]:
        received: list[dict] = []
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(queue_name)
            for _ in range(100):
                message = await queue.get(no_ack=True, fail=False)
                if message is None:
                    if sum(e["job_id"] == job_id for e in received) >= 3:
                        break
                    await asyncio.sleep(0.2)
                    continue
                received.append(json.loads(message.body))
            await queue.delete(if_unused=False, if_empty=False)
        return [e for e in received if e["job_id"] == job_id]

    refused = asyncio.run(bind_and_probe())
    with stack.client() as client:
        job_id = client.post("/api/v1/jobs", json=sampler_job("aer_simulator")).json()["id"]
    stack.wait_final([job_id])
    own = asyncio.run(consume(job_id))
    assert [e["state"] for e in own] == ["queued", "running", "done"]
    assert all(e["instance"] == instance for e in own)
    assert len(refused) == 3, refused
