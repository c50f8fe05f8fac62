"""Waiting on a child process's pipe from the event loop."""

import asyncio
import os
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
        # uvloop (the api's loop) leaves a watched descriptor non-blocking, and a Connection's
        # reads and writes then fail midway through a message larger than the pipe's buffer.
        if not conn.closed:
            os.set_blocking(fd, True)
    return conn.poll(0)
