"""Parsing circuits away from the event loop: a small pool of worker processes with budgets.

Decoding a request's circuits (OpenQASM text, QPY) is CPU work that can be made arbitrarily large by
its sender, so the api never does it on its event loop nor in a thread of its own process (qiskit
holds the GIL). Each worker is a separate process that imports qiskit once, runs in a working
directory removed as it started, and lives under an address-space limit
(`QRUNTIME_PARSE_MEMORY_MB` above its idle size). Each task has a wall-clock budget
(`QRUNTIME_PARSE_TIMEOUT_SECONDS`): a worker that overruns it, or dies of its memory limit, is
killed and replaced, and the request is refused with a message naming the limit. Refusals raised
inside a worker travel back as the same error.
"""

import asyncio
import contextlib
import importlib
import logging
import multiprocessing
import os
import resource
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from typing import Any

from shared.kit.errors import ErrorCode, QRuntimeError
from shared.kit.pipes import readable

log = logging.getLogger(__name__)

# Workers fork from a single-threaded fork server that imported qiskit once (its preload): a
# replacement for a killed worker is ready in milliseconds, and the workers share those pages.
_CONTEXT = multiprocessing.get_context("forkserver")
# A task at most this large (pickled) goes through the pipe on the event loop: half a pipe's buffer.
INLINE_BYTES = 32 * 1024
# A reply at most this large comes with its size in one message that a Connection sends in one write
# (it splits a message of more than 16 KiB in two); a larger one is read in a thread.
SIZE_BYTES = 8
INLINE_REPLY_BYTES = 16 * 1024 - SIZE_BYTES


class ParseBudgetExceeded(QRuntimeError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.PARSE_BUDGET_EXCEEDED, message, status=400)


def _vm_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


# Imported by each worker before it serves, so the first request pays no import.
WARM_MODULES = (
    "services.api.jobs.submission",
    "services.api.deployments.service",
    "services.api.experiments.launch",
)


def _worker_main(conn: Connection, memory_bytes: int, warm: tuple[str, ...]) -> None:  # pragma: no cover
    for module in warm:  # already there when the fork server preloaded them
        importlib.import_module(module)

    # Nothing a request names can be found relative to here: the working directory is an empty
    # directory, removed at once (a relative path names nothing, and no directory is left behind
    # by a worker that is killed).
    directory = tempfile.mkdtemp(prefix="qruntime-parse-")
    os.chdir(directory)
    os.rmdir(directory)
    if memory_bytes > 0:
        limit = _vm_bytes() + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    conn.send(("ready", None))
    while True:
        try:
            function, args = conn.recv()
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", function(*args))
        except QRuntimeError as exc:
            reply = ("refused", (int(exc.code), exc.message, exc.status))
        except MemoryError:
            reply = ("memory", None)
        except RecursionError:
            reply = ("refused", (int(ErrorCode.INVALID_REQUEST), "The input is nested too deeply.", 400))
        except Exception as exc:  # a parser bug: the request is refused, the worker lives on
            reply = ("failed", type(exc).__name__)
        data = ForkingPickler.dumps(reply)
        # Its size first, so that the api knows whether to read the reply on its event loop. A small
        # reply follows its size in the same write: the api, woken by the first byte, never waits
        # on its loop for the rest of a reply whose writer was preempted between two writes.
        size = len(data).to_bytes(SIZE_BYTES, "big")
        if len(data) <= INLINE_REPLY_BYTES:
            conn.send_bytes(size + data)
        else:
            conn.send_bytes(size)
            conn.send_bytes(data)


class _Worker:
    def __init__(self, memory_bytes: int, warm: tuple[str, ...]) -> None:
        self.conn, child = _CONTEXT.Pipe()
        self.process: BaseProcess = _CONTEXT.Process(
            target=_worker_main, args=(child, memory_bytes, warm), daemon=True, name="qruntime-parse"
        )
        self.process.start()
        child.close()

    def wait_ready(self) -> None:
        """Blocking: the worker has imported qiskit and set its limits (EOFError if it died)."""
        self.conn.recv()

    async def call(self, function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
        """Hand the task to the worker and wait for its reply. A small task or reply (almost every
        job's) crosses the pipe on the event loop, which watches the pipe: two thread hops fewer per
        request. A large one crosses in a thread, so the loop never waits while megabytes move."""
        request = ForkingPickler.dumps((function, args))
        if len(request) <= INLINE_BYTES:
            self.conn.send_bytes(request)  # the idle worker's pipe is empty: this fits its buffer
        else:
            await asyncio.to_thread(self.conn.send_bytes, request)
        while not await readable(self.conn, 3600.0):
            pass  # the caller's budget (wait_for) decides how long
        first = self.conn.recv_bytes(SIZE_BYTES + INLINE_REPLY_BYTES)
        size = int.from_bytes(first[:SIZE_BYTES], "big")
        if size <= INLINE_REPLY_BYTES:
            data = first[SIZE_BYTES:]
        else:
            data = await asyncio.to_thread(self.conn.recv_bytes)
        reply: tuple[str, Any] = ForkingPickler.loads(data)
        return reply

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):
            self.process.join(timeout=5)


class ParsePool:
    """`await pool.run(function, *args)` runs a module-level function in a worker process."""

    def __init__(
        self, workers: int, timeout_seconds: float, memory_mb: int, warm: tuple[str, ...] = WARM_MODULES
    ) -> None:
        self.warm = warm
        self.size = workers
        self.timeout = timeout_seconds
        self.memory_mb = memory_mb
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._closed = False
        self.warmed = 0  # workers that became ready so far
        self._starting: set[asyncio.Future[None]] = set()

    def start(self) -> None:
        """Start the workers in the background (the fork server imports qiskit first, which takes
        seconds); a request that comes earlier waits for the first warm worker."""
        _CONTEXT.set_forkserver_preload(list(self.warm))
        for _ in range(self.size):
            self._spawn()

    async def wait_ready(self) -> None:
        await asyncio.gather(*self._starting)

    def _spawn(self) -> None:
        task = asyncio.ensure_future(self._add())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _add(self) -> None:
        """Start a worker and make it available once it is warm (a replacement starts in the
        background while the other workers serve)."""
        for attempt in range(5):
            worker = _Worker(self.memory_mb * 1024 * 1024, self.warm)
            self._all.add(worker)
            try:
                await asyncio.to_thread(worker.wait_ready)
            except (EOFError, OSError):
                log.error("a parse worker failed to start (attempt %d)", attempt + 1)
                worker.kill()
                self._all.discard(worker)
                await asyncio.sleep(1.0)
                continue
            if self._closed:
                worker.kill()
                return
            self.warmed += 1
            self._idle.put_nowait(worker)
            return

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        self._all.discard(worker)
        if not self._closed:
            self._spawn()

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._all if w.process.pid is not None]

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        worker = await self._idle.get()
        # Supervised apart from the request, so a client that hangs up cannot leave a busy worker
        # counted as idle, nor a runaway one alive.
        supervisor = asyncio.ensure_future(self._supervise(worker, function, args))
        kind, value = await asyncio.shield(supervisor)
        if kind == "ok":
            return value
        if kind == "refused":
            code, message, status = value
            raise QRuntimeError(ErrorCode(code), message, status=status)
        if kind == "timeout":
            raise ParseBudgetExceeded(
                f"Parsing the circuits took longer than the limit of {self.timeout:g} s "
                "(QRUNTIME_PARSE_TIMEOUT_SECONDS); submit smaller circuits."
            )
        if kind == "memory":
            raise ParseBudgetExceeded(
                f"Parsing the circuits needed more memory than the limit of {self.memory_mb} MiB "
                "(QRUNTIME_PARSE_MEMORY_MB); submit smaller circuits."
            )
        raise QRuntimeError(
            ErrorCode.MALFORMED_CIRCUIT, f"The circuits could not be parsed ({value}).", status=400
        )

    async def _supervise(
        self, worker: _Worker, function: Callable[..., Any], args: tuple[Any, ...]
    ) -> tuple[str, Any]:
        try:
            kind, value = await asyncio.wait_for(worker.call(function, args), self.timeout)
        except TimeoutError:
            log.warning("a parse ran over its %.1f s budget; its worker is replaced", self.timeout)
            self._retire(worker)
            return "timeout", None
        except (EOFError, OSError) as exc:  # the worker died: its memory limit, most likely
            log.warning("a parse worker died (%s); it is replaced", type(exc).__name__)
            self._retire(worker)
            return "memory", None
        if kind == "memory":
            self._retire(worker)  # a worker that ran out of memory may hold a fragmented heap
        else:
            self._idle.put_nowait(worker)
        return kind, value

    async def close(self) -> None:
        self._closed = True
        for task in list(self._starting):
            task.cancel()
        for worker in list(self._all):
            worker.kill()
        self._all.clear()
