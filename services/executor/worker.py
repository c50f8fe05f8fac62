"""The executor's simulator child. qiskit-aer holds the GIL for a whole simulation, so it never runs
in the process that talks to the broker and the database; and a child can be killed, which is how
cancel and max execution time really stop a running job.

The parent and the child speak the typed protocol of `protocol.py`: a request carries its dispatch
id, the reply echoes it, and a reply to anything but the request in flight is discarded. A run that
ends in any other way than with its reply (stopped, crashed, interrupted, cancelled) leaves the child
killed, and a new one is started before the next run, so nothing of an old run can reach a new one.
A child that dies at any other time (idle, or while starting) is replaced by `supervise()`, with a
bounded number of attempts; meanwhile `ready` is False and the executor takes no work.
"""

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

from services.executor.child import child_main
from services.executor.protocol import JobInput, Outcome, Ready, RunReply, RunRequest, StartFailed
from shared.kit.pipes import readable

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2


class SimulatorUnavailable(RuntimeError):
    """No working simulator child could be started within the allowed attempts."""


class SimulationWorker:
    def __init__(
        self,
        backend: str,
        start_timeout: float = 120.0,
        start_attempts: int = 5,
        retry_delay: float = 0.5,
        threads: int = 1,
    ) -> None:
        self.backend = backend
        self.threads = threads  # qiskit-aer's max_parallel_threads in the child
        self.start_timeout = start_timeout
        self.start_attempts = start_attempts
        self.retry_delay = retry_delay
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()  # one run or one (re)start at a time
        # How often a run looks at `should_stop` while the child works (the first look is when a
        # run that began unclaimed is claimed).
        self.look_seconds = _POLL_SECONDS
        self.restarts = 0
        self.failed = False  # True once start_attempts in a row failed: the process must go

    @property
    def ready(self) -> bool:
        """A live child is waiting for requests (not starting, not dead)."""
        return self._process is not None and self._process.is_alive() and not self.failed

    @property
    def child_pid(self) -> int | None:
        return None if self._process is None else int(self._process.pid)

    async def start(self) -> None:
        async with self._lock:
            await self._ensure_child()

    async def _ensure_child(self) -> None:
        """Make sure a live child waits for requests; replace a dead one (bounded attempts)."""
        if self._process is not None and self._process.is_alive():
            return
        if self._process is not None:
            log.warning(
                "simulator child of %s died (exit code %s); starting a new one",
                self.backend,
                self._process.exitcode,
                extra={"backend": self.backend},
            )
            self._discard()
        delay = self.retry_delay
        last = "no attempt"
        for attempt in range(1, self.start_attempts + 1):
            try:
                await self._start_once()
                if attempt > 1 or self.restarts:
                    log.info("simulator child of %s running again", self.backend)
                self.restarts += 1
                self.failed = False
                return
            except SimulatorUnavailable as exc:
                last = str(exc)
                log.warning(
                    "simulator start %d/%d for %s failed: %s", attempt, self.start_attempts, self.backend, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.failed = True
        raise SimulatorUnavailable(
            f"no simulator for {self.backend} after {self.start_attempts} attempts: {last}"
        )

    async def _start_once(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=child_main,
            args=(child, self.backend, self.threads),
            daemon=True,
            name=f"sim-{self.backend}",
        )
        process.start()
        child.close()
        try:
            deadline = time.monotonic() + self.start_timeout
            while True:
                if await asyncio.to_thread(parent.poll, _POLL_SECONDS):
                    message = parent.recv()  # EOFError when the child died while starting
                    if isinstance(message, Ready):
                        break
                    if isinstance(message, StartFailed):
                        raise SimulatorUnavailable(message.message)
                    continue
                if not process.is_alive():
                    raise SimulatorUnavailable(f"the child exited while starting (code {process.exitcode})")
                if time.monotonic() > deadline:
                    raise SimulatorUnavailable(f"the child did not start within {self.start_timeout} s")
        except (EOFError, OSError) as exc:
            _kill(process, parent)
            raise SimulatorUnavailable(f"the child died while starting ({type(exc).__name__})") from exc
        except BaseException:
            _kill(process, parent)
            raise
        self._process, self._conn = process, parent

    def _discard(self) -> None:
        """Kill the child (if any) and forget it; synchronous, so it also runs during cancellation."""
        if self._process is not None or self._conn is not None:
            _kill(self._process, self._conn)
        self._process = self._conn = None

    async def stop(self) -> None:
        process = self._process
        self._discard()
        if process is not None:
            await asyncio.to_thread(process.join, 5)

    async def supervise(self, interval: float = 0.5) -> None:
        """Replace a child that died while idle; raises SimulatorUnavailable when it cannot."""
        while True:
            await asyncio.sleep(interval)
            if self._lock.locked() or (self._process is not None and self._process.is_alive()):
                continue
            async with self._lock:
                await self._ensure_child()

    async def run(
        self,
        dispatch_id: str,
        jobs: list[JobInput],
        should_stop: Callable[[float], Awaitable[bool]],
    ) -> Outcome:
        """Run the jobs of one dispatch in one go; poll `should_stop(seconds since the child began)`
        meanwhile and kill the child when it says so (every job of the dispatch was cancelled, timed
        out or taken over). A run waits for the one before it to end."""
        async with self._lock:
            await self._ensure_child()
            finished = False
            try:
                outcome = await self._run(dispatch_id, jobs, should_stop)
                finished = outcome.kind == "done"
                return outcome
            finally:
                if not finished:
                    # Stopped, crashed, interrupted or cancelled: whatever the child still does or
                    # will say belongs to this run only. It goes; the next run gets a new child.
                    self._discard()

    async def _run(
        self, dispatch_id: str, jobs: list[JobInput], should_stop: Callable[[float], Awaitable[bool]]
    ) -> Outcome:
        conn, process = self._conn, self._process
        assert conn is not None and process is not None
        started = time.perf_counter()
        try:
            conn.send(RunRequest(dispatch_id, tuple(jobs)))
        except (OSError, EOFError, ValueError):
            return self._crashed(process, started)
        while True:
            if await readable(conn, self.look_seconds):
                try:
                    reply = conn.recv()
                except (EOFError, OSError):
                    return self._crashed(process, started)
                if not isinstance(reply, RunReply) or reply.dispatch_id != dispatch_id:
                    log.error(
                        "discarding a simulator reply that is not for dispatch %s: %r",
                        dispatch_id,
                        getattr(reply, "dispatch_id", type(reply).__name__),
                        extra={"dispatch_id": dispatch_id, "backend": self.backend},
                    )
                    continue
                return Outcome("done", runs=list(reply.runs), seconds=reply.seconds)
            if not process.is_alive():
                return self._crashed(process, started)
            try:
                stop = await should_stop(time.perf_counter() - started)
            except Exception as exc:
                # The database may be restarting: keep simulating, ask again on the next poll.
                log.warning("cannot check whether dispatch %s must stop: %s", dispatch_id, type(exc).__name__)
                continue
            if stop:
                return Outcome("stopped", seconds=time.perf_counter() - started)

    def _crashed(self, process: Any, started: float) -> Outcome:
        process.join(0.5)
        return Outcome(
            "crashed",
            message=f"the simulator process died (exit code {process.exitcode}); the job may need more memory",
            seconds=time.perf_counter() - started,
        )


def _kill(process: Any, conn: Connection | None) -> None:
    if process is not None and process.is_alive():
        process.kill()
    if conn is not None:
        conn.close()
