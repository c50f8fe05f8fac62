"""samplomatic's `Samplex.sample` runs its nodes in the simulator child's calling thread.

Every `sample()` call (two or three per Estimator job with twirling or TREX) opens a new
`ThreadPoolExecutor` with one thread per core plus four, submits each sampling, evaluation and
collection node to it, and joins it: threads started and stopped for nodes that take microseconds.
The child asks one question at a time, as with qiskit's primitive jobs (primitive_jobs.py), so
its samplex nodes run where they are asked for, in order. The result is the same: samplomatic
gives every node its own random generator spawned before it submits anything (so that the
outcome does not depend on the threads' order), and a node's error is kept in its future and
raised by the same `wait_with_raise`. tests/unit/test_samplex_pool.py compares seeded samples
both ways.
"""

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from services.executor.primitive_jobs import finished_future

T = TypeVar("T")


class CallingThreadPool:
    """The part of `ThreadPoolExecutor` that `Samplex.sample` uses, running each task at submit."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers  # accepted as the pool's is; nothing runs beside the caller

    def __enter__(self) -> "CallingThreadPool":
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def submit(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> "Future[T]":
        return finished_future(function, *args, **kwargs)


def run_samplex_nodes_in_calling_thread() -> None:
    """For this process (the simulator child only): samplex nodes run in the thread that samples."""
    from samplomatic.samplex import samplex

    samplex.ThreadPoolExecutor = CallingThreadPool  # type: ignore[attr-defined,misc]
