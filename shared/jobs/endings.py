"""Waking the requests that wait for one job to end.

A trigger (migration i14_job_ended_notify) notifies `JOB_ENDED_CHANNEL` with a job's id on the
commit that makes the job final. The api's relay listens to it and calls `ended`; a read waiting
for that job (`GET /jobs/{id}?wait=N`, the plain read's linger) wakes and reads it once more. Reads
of other jobs sleep on.
"""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager, suppress

JOB_ENDED_CHANNEL = "qruntime_job_ended"


class JobWatch:
    """One read's watch on one job."""

    def __init__(self, endings: "JobEndings") -> None:
        self._endings = endings
        self._woken = asyncio.Event()

    def rearm(self) -> None:
        """Forget earlier wake-ups: call before each read of the job, so that an ending announced
        between the read and `sleep` still wakes it."""
        self._woken.clear()

    async def sleep(self, at_most: float) -> None:
        """Until the job's end is announced (or endings may have been missed), at most `at_most` s."""
        self._endings.asleep += 1
        try:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout=at_most)
        finally:
            self._endings.asleep -= 1

    def wake(self) -> None:
        self._woken.set()

    @property
    def woken(self) -> bool:
        return self._woken.is_set()


class JobEndings:
    def __init__(self) -> None:
        self._watches: dict[str, set[JobWatch]] = {}
        self.asleep = 0  # reads held right now

    @contextmanager
    def watch(self, job_id: str) -> Iterator[JobWatch]:
        watch = JobWatch(self)
        self._watches.setdefault(job_id, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._watches[job_id]
            watches.discard(watch)
            if not watches:
                del self._watches[job_id]

    def ended(self, job_id: str) -> None:
        for watch in self._watches.get(job_id, ()):
            watch.wake()

    def wake_all(self) -> None:
        """While the listener was away, endings went unheard: every held read reads its job again."""
        for watches in self._watches.values():
            for watch in watches:
                watch.wake()
