"""Supervised background tasks and the process's health.

Every long-lived task of a process (outbox relay, consumers, heartbeat, simulator watch) runs under
a `Supervisor`: a task that raises is logged with its traceback and restarted with backoff; a task
that keeps failing (more than `max_restarts` within `window` seconds) is given up on, loudly: the
process's `/healthz` fails from then on and the supervisor's `fatal` event is set, so the process
exits with an error and its orchestrator starts a new one. No background task ends unobserved.

`Health` is what `/healthz` and `/readyz` read. Components report whether they work
(`report(name, ok, detail)`): `/readyz` is true only while all of them do. `/healthz` fails when the
process is broken and not recovering: a supervised task given up on, or a component that has not
made progress (`beat`) for `stall_seconds`.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class ProcessBroken(Exception):
    """A supervisor gave up: the process exits with an error so that it is started anew."""


@dataclass
class ComponentState:
    ok: bool = False
    detail: str = "starting"
    since: float = field(default_factory=time.monotonic)
    last_beat: float = field(default_factory=time.monotonic)
    watched: bool = False  # beats: liveness watches its progress
    reported: bool = False  # reports: readiness counts it


class Health:
    def __init__(self, stall_seconds: float = 120.0) -> None:
        self.stall_seconds = stall_seconds
        self.components: dict[str, ComponentState] = {}
        self.fatal: str | None = None

    def _get(self, name: str) -> ComponentState:
        return self.components.setdefault(name, ComponentState())

    def report(self, name: str, ok: bool, detail: str = "") -> None:
        state = self._get(name)
        if state.ok != ok:
            state.since = time.monotonic()
        state.ok = ok
        state.reported = True
        state.detail = detail or ("ok" if ok else "unavailable")
        state.last_beat = time.monotonic()

    def beat(self, name: str) -> None:
        """The component's loop made progress (also while it retries a lost dependency)."""
        state = self._get(name)
        state.watched = True
        state.last_beat = time.monotonic()

    def forget(self, name: str) -> None:
        self.components.pop(name, None)

    def is_ok(self, name: str) -> bool:
        state = self.components.get(name)
        return state is not None and state.ok

    def live(self) -> tuple[bool, dict[str, object]]:
        now = time.monotonic()
        stalled = sorted(
            name
            for name, state in self.components.items()
            if state.watched and now - state.last_beat > self.stall_seconds
        )
        alive = self.fatal is None and not stalled
        body: dict[str, object] = {"status": "ok" if alive else "broken"}
        if self.fatal is not None:
            body["fatal"] = self.fatal
        if stalled:
            body["stalled"] = stalled
        return alive, body

    def ready(self) -> tuple[bool, dict[str, object]]:
        checks = {name: state.ok for name, state in sorted(self.components.items()) if state.reported}
        ready = self.fatal is None and all(checks.values())
        return ready, {"status": "ready" if ready else "unavailable", "checks": checks}


# One per process: the health endpoints of the process read it.
process_health = Health()


class Supervisor:
    def __init__(
        self,
        health: Health | None = None,
        max_restarts: int = 5,
        window: float = 60.0,
        first_delay: float = 0.5,
        max_delay: float = 10.0,
    ) -> None:
        self.health = health or process_health
        self.max_restarts = max_restarts
        self.window = window
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.fatal = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    def start(self, name: str, run: Callable[[], Awaitable[None]], forever: bool = True) -> None:
        """Run `run()` under supervision. `forever`: returning is a failure too (until stop())."""
        self._tasks[name] = asyncio.create_task(self._keep(name, run, forever), name=name)

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]], forever: bool) -> None:
        failures: list[float] = []
        delay = self.first_delay
        while not self._stopping:
            started = time.monotonic()
            try:
                await run()
                if not forever or self._stopping:
                    return
                log.error("background task %s ended by itself; restarting it", name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s failed; restarting it", name)
            now = time.monotonic()
            if now - started > self.window:
                delay = self.first_delay  # it ran fine for a while: a new incident
            failures = [t for t in failures if now - t < self.window] + [now]
            if len(failures) > self.max_restarts:
                self.give_up(f"{name} failed {len(failures)} times within {self.window:.0f} s")
                return
            await asyncio.sleep(delay)
            delay = min(self.max_delay, delay * 2)

    def give_up(self, why: str) -> None:
        """Mark the process broken (healthz fails) and wake whoever waits on `fatal`."""
        log.critical("giving up: %s; the process must be restarted", why)
        self.health.fatal = why
        self.fatal.set()

    async def stop(self, grace: float = 10.0) -> None:
        self._stopping = True
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=grace)
        self._tasks.clear()


async def first_of(*waits: Awaitable[object]) -> None:
    """Wait until the first of these completes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, waking early when `stop` is set; True when it was set."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
