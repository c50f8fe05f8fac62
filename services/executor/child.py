"""The simulator child's main loop (runs in a spawned process).

It builds the warm simulator once, says Ready, then answers each RunRequest with one RunReply that
echoes the request's dispatch id. The heavy simulation module is imported here only, inside the
child, so the executor process itself never imports qiskit-aer.
"""

import os
import time
from multiprocessing.connection import Connection

from services.executor.protocol import JobRun, Ready, RunReply, RunRequest, StartFailed, input_digest


def child_main(conn: Connection, backend: str, threads: int = 1) -> None:
    try:
        from services.executor.primitive_jobs import run_primitive_jobs_in_calling_thread
        from services.executor.sampler_memory import convert_sampler_memory_with_numpy
        from services.executor.samplex_pool import run_samplex_nodes_in_calling_thread
        from services.executor.simulation import SimulatorRuntime

        run_primitive_jobs_in_calling_thread()
        convert_sampler_memory_with_numpy()
        run_samplex_nodes_in_calling_thread()
        runtime = SimulatorRuntime(backend, threads)
    except Exception as exc:
        conn.send(StartFailed(f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"))
        return
    conn.send(Ready(pid=os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if not isinstance(request, RunRequest):
            continue  # nothing else is ever sent; never answer what was not asked
        started = time.perf_counter()
        jobs = [(job.program_id, job.params) for job in request.jobs]
        try:
            runs = runtime.run(jobs)
        except Exception as exc:
            message = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
            runs = [JobRun(ok=False, payload=message, seconds=0.0)] * len(jobs)
        stamped = tuple(
            JobRun(
                ok=run.ok,
                payload=run.payload,
                seconds=run.seconds,
                job_id=job.job_id,
                input_digest=input_digest(job.params),
            )
            for job, run in zip(request.jobs, runs, strict=True)
        )
        conn.send(RunReply(request.dispatch_id, stamped, time.perf_counter() - started))
