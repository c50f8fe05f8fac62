"""Writes to RabbitMQ gathered per turn of the event loop (shared/messaging/coalescing.py), and the
relay's way of publishing over them: on a real socket and a real broker."""

import asyncio
import uuid

import aio_pika
import aiormq
import pytest

from shared.messaging.coalescing import CoalescingTransport, connect
from tests.stack import AMQP_URL


class _Received(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _loopback() -> tuple[asyncio.AbstractServer, _Received, asyncio.Transport, list[bytes]]:
    """A server on a free loopback port and a client transport to it whose sends are recorded."""
    loop = asyncio.get_running_loop()
    received = _Received()
    server = await loop.create_server(lambda: received, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    sent: list[bytes] = []
    write = transport.write

    def recording_write(data: bytes | bytearray | memoryview) -> None:
        sent.append(bytes(data))
        write(data)

    transport.write = recording_write  # type: ignore[method-assign]
    return server, received, transport, sent


async def _until(condition: object, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_the_writes_of_one_turn_leave_in_one_send_in_order() -> None:
    server, received, inner, sent = await _loopback()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    try:
        chunks = [f"frame {i};".encode() for i in range(50)]
        for chunk in chunks:
            transport.write(chunk)
        assert sent == []  # nothing leaves before the turn ends
        assert transport.get_write_buffer_size() == sum(len(chunk) for chunk in chunks)
        await asyncio.sleep(0)
        assert sent == [b"".join(chunks)]
        # A later turn's writes are a send of their own.
        transport.writelines([b"second ", b"turn;"])
        await asyncio.sleep(0)
        assert sent[1:] == [b"second turn;"]
        await _until(lambda: len(received.data) == len(b"".join(chunks)) + len(b"second turn;"))
        assert bytes(received.data) == b"".join(chunks) + b"second turn;"
    finally:
        transport.close()
        server.close()
        await server.wait_closed()


async def test_what_is_written_just_before_a_close_still_leaves() -> None:
    server, received, inner, sent = await _loopback()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    try:
        transport.write(b"close frame")
        transport.close()
        assert transport.is_closing()
        await asyncio.wait_for(received.closed, 5)
        assert bytes(received.data) == b"close frame"
        assert sent == [b"close frame"]
    finally:
        server.close()
        await server.wait_closed()


async def test_an_aborted_transport_sends_nothing_it_still_held() -> None:
    server, received, inner, sent = await _loopback()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    try:
        transport.write(b"never sent")
        transport.abort()
        await asyncio.wait_for(received.closed, 5)
        await asyncio.sleep(0)
        assert sent == [] and bytes(received.data) == b""
    finally:
        server.close()
        await server.wait_closed()


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
