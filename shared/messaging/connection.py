"""Connecting to RabbitMQ: keep trying until the broker answers, then let aio-pika's robust connection
reconnect and restore channels by itself."""

import asyncio
import logging

import aio_pika
from aio_pika.abc import AbstractRobustConnection

log = logging.getLogger(__name__)


async def connect_with_retry(
    url: str, stop: asyncio.Event | None = None, max_delay: float = 5.0
) -> AbstractRobustConnection | None:
    """Return a robust connection, or None when `stop` is set before the broker became reachable."""
    delay = 0.2
    while stop is None or not stop.is_set():
        try:
            return await aio_pika.connect_robust(url, timeout=5)
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
            log.warning("RabbitMQ not reachable (%s); retrying in %.1fs", type(exc).__name__, delay)
            if stop is None:
                await asyncio.sleep(delay)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
            delay = min(max_delay, delay * 2)
    return None
