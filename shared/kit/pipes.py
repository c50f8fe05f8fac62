"""Waiting on a child process's pipe from the event loop."""

import asyncio
from contextlib import suppress
from multiprocessing.connection import Connection


async def readable(conn: Connection, at_most: float) -> bool:
    """Wait until the pipe has something to read (a reply, or EOF), at most `at_most` seconds. The
    event loop watches the pipe itself: no thread hop between the reply and its reader."""
    if conn.poll(0):
        return True
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    fd = conn.fileno()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        with suppress(TimeoutError):
            await asyncio.wait_for(ready, at_most)
    finally:
        loop.remove_reader(fd)
    return conn.poll(0)
