"""The executor's child process. qiskit-aer holds the GIL for a whole simulation, so it never runs
in the process that talks to the broker and the database; and a child can be killed, which is how
cancel and max execution time really stop a running job."""

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class JobRun:
    """How one job of a dispatch ran: its result JSON, or why it failed."""

    ok: bool
    payload: str
    seconds: float


@dataclass(frozen=True)
class Outcome:
    kind: str  # "done" (see runs) | "stopped" | "crashed"
    runs: list[JobRun] = field(default_factory=list)
    message: str | None = None
    seconds: float = 0.0


def _child_main(conn: Connection, backend: str) -> None:
    from services.executor.simulation import SimulatorRuntime

    runtime = SimulatorRuntime(backend)
    conn.send(("ready",))
    while True:
        try:
            jobs: list[tuple[str, str]] = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        started = time.perf_counter()
        try:
            runs = runtime.run(jobs)
        except Exception as exc:
            message = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
            runs = [JobRun(ok=False, payload=message, seconds=0.0)] * len(jobs)
        conn.send(("done", runs, time.perf_counter() - started))


class SimulationWorker:
    def __init__(self, backend: str, start_timeout: float = 120.0) -> None:
        self.backend = backend
        self.start_timeout = start_timeout
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Connection | None = None

    async def start(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_child_main, args=(child, self.backend), daemon=True, name=f"sim-{self.backend}"
        )
        process.start()
        child.close()
        ready = await asyncio.to_thread(parent.poll, self.start_timeout)
        if not ready:
            process.kill()
            raise RuntimeError(f"the simulator for {self.backend} did not start")
        parent.recv()
        self._process, self._conn = process, parent

    async def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            await asyncio.to_thread(self._process.join, 5)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def run(self, jobs: list[tuple[str, str]], should_stop: Callable[[], Awaitable[bool]]) -> Outcome:
        """Run (program_id, params) jobs in one go; poll `should_stop` meanwhile and kill the child
        when it says so (every job of the dispatch was cancelled, timed out or taken over)."""
        assert self._conn is not None and self._process is not None
        conn, process = self._conn, self._process
        conn.send(jobs)
        started = time.perf_counter()
        while True:
            if await asyncio.to_thread(conn.poll, _POLL_SECONDS):
                try:
                    _, runs, seconds = conn.recv()
                except (EOFError, OSError):
                    break
                return Outcome("done", runs=list(runs), seconds=seconds)
            if not process.is_alive():
                break
            if await should_stop():
                await self.restart()
                return Outcome("stopped", seconds=time.perf_counter() - started)
        code = process.exitcode
        await self.restart()
        return Outcome(
            "crashed",
            message=f"the simulator process died (exit code {code}); the job may need more memory",
            seconds=time.perf_counter() - started,
        )
