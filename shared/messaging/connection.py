"""Connecting to RabbitMQ and staying connected.

`keep_connected` owns one plain (not "robust") connection at a time: it connects with backoff, runs
the caller's body on it, and when the connection is lost (broker killed, `stop_app`, network) it
cancels the body, logs what happened and starts over on a new connection. Declaring the topology,
starting consumers and opening channels is the body's job, so a recovered connection is always set up
exactly like the first one; nothing relies on a library restoring channels behind our back.

Broker errors come in several disguises: aiormq's ConnectionClosed is an OSError, a publish on a dead
channel raises ChannelInvalidStateError (a RuntimeError), an unanswered confirm a TimeoutError.
`is_broker_error` knows them all.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractConnection

from shared.kit.supervision import Health, first_of, process_health, sleep_unless
from shared.messaging.coalescing import connect

log = logging.getLogger(__name__)

BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def is_broker_error(exc: BaseException) -> bool:
    return isinstance(exc, BROKER_ERRORS)


def describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BrokerLost(Exception):
    """The connection or channel to RabbitMQ is gone; reconnect."""


async def keep_connected(
    url: str,
    stop: asyncio.Event,
    name: str,
    body: Callable[[AbstractConnection], Coroutine[Any, Any, None]],
    health: Health | None = None,
    max_delay: float = 5.0,
) -> None:
    """Run `body(connection)` on a live connection until `stop` is set or the body returns;
    reconnect (with backoff, logged) whenever the connection is lost or the body fails."""
    health = health or process_health
    delay = 0.2
    had_connection = False
    while not stop.is_set():
        health.beat(name)
        try:
            connection = await connect(url)
        except Exception as exc:
            health.report(name, False, f"broker unreachable ({type(exc).__name__})")
            log.warning("%s: RabbitMQ not reachable (%s); retrying in %.1f s", name, describe(exc), delay)
            if await sleep_unless(stop, delay):
                return
            delay = min(max_delay, delay * 2)
            continue
        connected_at = time.monotonic()
        if had_connection:
            log.info("%s reconnected to RabbitMQ", name)
        had_connection = True
        health.report(name, True, "connected")
        lost = asyncio.Event()
        connection.close_callbacks.add(lambda *_, lost=lost: lost.set())
        work = asyncio.create_task(body(connection), name=f"{name}-body")
        try:
            while not (work.done() or lost.is_set() or stop.is_set()):
                await first_of(asyncio.shield(work), lost.wait(), stop.wait(), asyncio.sleep(5))
                health.beat(name)
            if work.done() and not work.cancelled():
                error = work.exception()
                if error is None:
                    return  # the body finished (a graceful stop)
                raise error
            if lost.is_set():
                raise BrokerLost("the broker closed the connection")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            health.report(name, False, f"broker lost ({type(exc).__name__})")
            if time.monotonic() - connected_at > 10:
                delay = 0.2  # it worked for a while: a new incident, start the backoff over
            if is_broker_error(exc) or isinstance(exc, BrokerLost):
                log.warning("%s lost the broker (%s); reconnecting in %.1f s", name, describe(exc), delay)
            else:
                log.exception("%s failed on its broker connection; reconnecting in %.1f s", name, delay)
            if await sleep_unless(stop, delay):
                return
            delay = min(max_delay, delay * 2)
            continue
        finally:
            if not work.done():
                work.cancel()
                with _quiet():
                    await work
            elif not work.cancelled():
                work.exception()  # retrieved: it was logged above, or the connection loss explains it
            with _quiet():
                await asyncio.wait_for(connection.close(), timeout=5)


class _quiet:
    """Suppress everything but a cancellation of the caller (cleanup of a dead connection)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if kind is None:
            return False
        if kind is asyncio.CancelledError:
            task = asyncio.current_task()
            return task is None or task.cancelling() == 0  # the body's own cancellation: swallow
        return issubclass(kind, Exception)
