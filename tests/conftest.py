from collections.abc import Iterator

import pytest

from tests.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """One full stack (api, scheduler, an executor per backend) shared by the read-mostly e2e tests."""
    shared = Stack(
        backends=["aer_simulator", "fake_manila"],
        settings_env={
            "QRUNTIME_MAX_REQUEST_BYTES": str(1024 * 1024),
            "QRUNTIME_MAX_SHOTS": "100000",
            # Experiment scans: 50 points per job, so a 200-point scan runs as 4 jobs.
            "QRUNTIME_EXPERIMENT_POINTS_PER_JOB": "50",
        },
    )
    try:
        shared.start_all()
        yield shared
    finally:
        shared.destroy()


@pytest.fixture
def make_stack() -> Iterator[type[Stack]]:
    """Stacks a test owns (to kill and restart its processes); destroyed after the test."""
    made: list[Stack] = []

    class OwnedStack(Stack):
        def __post_init__(self) -> None:
            super().__post_init__()
            made.append(self)

    try:
        yield OwnedStack
    finally:
        for owned in made:
            owned.destroy()
