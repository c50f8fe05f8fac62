"""Primitive calls in the simulator child run in the thread that asks for them.

qiskit's `PrimitiveJob` starts a thread of its own for every `run()` (a new single-thread pool each
time), and the child waits for that thread at once: it asks one question at a time. Starting and
joining the thread is cheap on an idle machine and not on a busy one. With one core kept busy, as
the api, the scheduler and the database keep it beside an executor, a Bell job's
`SamplerV2.run(...).result()` took a median 4.3 ms against 1.9 ms in the calling thread
(`bench/aer_threads.py --busy`, its last line). So the child submits primitive jobs where they are
asked for: the same function with the same arguments, its result or its error kept in a future that
is already done, so that `result()`, `status()` and `done()` answer as they would once a thread had
finished. It covers every primitive the child runs: the Sampler, and the samplers inside
qiskit-ibm-runtime's quantum-program runner (the Estimator's pipeline) and noise learner.
"""

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from qiskit.primitives.primitive_job import PrimitiveJob
from qiskit.providers import JobError

T = TypeVar("T")


def finished_future(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> "Future[T]":
    """`function` called here, its result or its error kept in a future that is already done, as a
    worker thread's future would keep it (also samplex_pool.py's tasks)."""
    future: Future[T] = Future()
    try:
        future.set_result(function(*args, **kwargs))
    except Exception as exc:  # kept for whoever waits on the future to raise, as a thread's would
        future.set_exception(exc)
    return future


def _submit_in_calling_thread(job: Any) -> None:
    if job._future is not None:
        raise JobError("Primitive job has been submitted already.")
    job._future = finished_future(job._function, *job._args, **job._kwargs)


def run_primitive_jobs_in_calling_thread() -> None:
    """For this process (the simulator child only): every PrimitiveJob runs when submitted."""
    PrimitiveJob._submit = _submit_in_calling_thread  # type: ignore[method-assign]
