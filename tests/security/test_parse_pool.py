"""The parse worker pool keeps its budgets: a task that runs too long or allocates too much is
refused with a message naming the limit, its worker is replaced, and the pool keeps serving."""

import asyncio
import os
import time

import pytest

from services.api.programs.pool import INLINE_REPLY_BYTES, ParsePool
from shared.kit.errors import ErrorCode, InvalidInput, QRuntimeError


def spin(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "done"


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes * 1024 * 1024))


def refuse() -> None:
    raise InvalidInput(ErrorCode.MALFORMED_CIRCUIT, "pub 0: no good")


def recurse(depth: int) -> int:
    return 0 if depth == 0 else 1 + recurse(depth - 1)


def where_am_i() -> tuple[int, str, bool]:
    """The worker's pid, its working directory, and whether a relative path can be written there."""
    try:
        with open("probe", "w"):
            writable = True
    except OSError:
        writable = False
    return os.getpid(), os.readlink("/proc/self/cwd"), writable


def gone(path: str) -> bool:
    return not os.path.exists(path)


def test_budgets_are_kept_and_the_pool_recovers() -> None:
    async def scenario() -> None:
        pool = ParsePool(workers=2, timeout_seconds=1.0, memory_mb=256, warm=())
        pool.start()
        try:
            await pool.wait_ready()
            pid, cwd, writable = await pool.run(where_am_i)
            assert pid != os.getpid()  # another process
            # Its working directory is gone: a relative path names nothing, and nothing is left behind.
            assert cwd.endswith(" (deleted)") and gone(cwd.removesuffix(" (deleted)"))
            assert not writable

            assert await pool.run(spin, 0.01) == "done"
            started = time.monotonic()
            with pytest.raises(QRuntimeError) as slow:
                await pool.run(spin, 30.0)
            assert time.monotonic() - started < 10
            assert slow.value.code == ErrorCode.PARSE_BUDGET_EXCEEDED and "1 s" in slow.value.message

            with pytest.raises(QRuntimeError) as big:
                await pool.run(allocate, 2048)
            assert big.value.code == ErrorCode.PARSE_BUDGET_EXCEEDED and "256 MiB" in big.value.message
            assert await pool.run(allocate, 16) == 16 * 1024 * 1024  # within budget: fine

            with pytest.raises(QRuntimeError) as refused:
                await pool.run(refuse)
            assert refused.value.code == ErrorCode.MALFORMED_CIRCUIT and refused.value.status == 400
            with pytest.raises(QRuntimeError) as deep:
                await pool.run(recurse, 100_000)
            assert deep.value.code == ErrorCode.INVALID_REQUEST

            # Replaced workers serve again, two at a time.
            results = await asyncio.gather(*(pool.run(spin, 0.05) for _ in range(6)))
            assert results == ["done"] * 6
            assert len(pool.pids()) == 2
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_a_caller_that_gives_up_does_not_leak_a_busy_worker() -> None:
    async def scenario() -> None:
        pool = ParsePool(workers=1, timeout_seconds=5.0, memory_mb=0, warm=())
        pool.start()
        try:
            await pool.wait_ready()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pool.run(spin, 0.5), timeout=0.1)
            # The worker finishes its task, then returns to the pool.
            assert await asyncio.wait_for(pool.run(spin, 0.01), timeout=10) == "done"
        finally:
            await pool.close()

    asyncio.run(scenario())


def reversed_bytes(data: bytes) -> bytes:
    return data[::-1]


def grown(size: int) -> bytes:
    return bytes(size)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_small_and_large_tasks_cross_the_pipe_whole_and_in_order(loop: str) -> None:
    """A small task or reply goes through the pipe on the event loop, a large one (beyond a pipe's
    buffer) in a thread; all come back whole, each as its own reply, with the loop free meanwhile."""

    async def scenario() -> None:
        pool = ParsePool(workers=1, timeout_seconds=10.0, memory_mb=0, warm=())
        pool.start()
        try:
            await pool.wait_ready()
            small = bytes(range(256)) * 4
            large = os.urandom(3 * 1024 * 1024)
            ticks = 0

            async def ticking() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            ticker = asyncio.create_task(ticking())
            answers = await asyncio.gather(
                *(pool.run(reversed_bytes, data) for data in (small, large, small))
            )
            # A small task with a large reply: the reply crosses in a thread.
            assert await pool.run(grown, 5 * 1024 * 1024) == bytes(5 * 1024 * 1024)
            # Replies on both sides of the one-message limit (a pickle adds a few dozen bytes).
            for size in range(INLINE_REPLY_BYTES - 64, INLINE_REPLY_BYTES + 8, 4):
                assert await pool.run(grown, size) == bytes(size)
            ticker.cancel()
            assert answers == [small[::-1], large[::-1], small[::-1]]
            assert ticks > 0
        finally:
            await pool.close()

    # uvloop is the api's loop (uvicorn's choice): it leaves the pipe it watched non-blocking.
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(scenario())
    else:
        asyncio.run(scenario())
