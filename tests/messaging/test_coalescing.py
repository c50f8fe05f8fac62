"""Writes to RabbitMQ gathered per turn of the event loop (shared/messaging/coalescing.py), on a
real loopback socket."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from shared.messaging.coalescing import CoalescingTransport


class _Received(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


@asynccontextmanager
async def _loopback() -> AsyncIterator[tuple[_Received, CoalescingTransport, list[bytes]]]:
    """A server on a free loopback port, and a coalescing transport to it over a client transport
    whose sends are recorded; both are closed afterwards."""
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
    coalescing = CoalescingTransport(transport, loop)
    try:
        yield received, coalescing, sent
    finally:
        coalescing.close()
        server.close()
        await server.wait_closed()


async def _until(condition: object, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_the_writes_of_one_turn_leave_in_one_send_in_order() -> None:
    async with _loopback() as (received, transport, sent):
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


async def test_what_is_written_just_before_a_close_still_leaves() -> None:
    async with _loopback() as (received, transport, sent):
        transport.write(b"close frame")
        transport.close()
        assert transport.is_closing()
        await asyncio.wait_for(received.closed, 5)
        assert bytes(received.data) == b"close frame"
        assert sent == [b"close frame"]


async def test_an_aborted_transport_sends_nothing_it_still_held() -> None:
    async with _loopback() as (received, transport, sent):
        transport.write(b"never sent")
        transport.abort()
        await asyncio.wait_for(received.closed, 5)
        await asyncio.sleep(0)
        assert sent == [] and bytes(received.data) == b""
