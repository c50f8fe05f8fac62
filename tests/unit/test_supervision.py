"""The supervisor restarts a failing background task, gives up loudly after too many failures (health
broken), and health tells ready from alive."""

import asyncio
import time

from shared.kit.supervision import Health, Supervisor


async def test_a_failing_task_is_restarted_then_given_up_on() -> None:
    health = Health()
    supervisor = Supervisor(health, max_restarts=2, window=60, first_delay=0.01, max_delay=0.01)
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("boom")

    supervisor.start("flaky", flaky)
    await asyncio.wait_for(supervisor.fatal.wait(), timeout=5)
    assert runs == 3  # the first run and two restarts
    alive, body = health.live()
    assert not alive and "flaky failed 3 times" in str(body["fatal"])
    assert health.ready()[0] is False
    await supervisor.stop()


async def test_a_task_that_recovers_keeps_running_and_the_process_stays_healthy() -> None:
    health = Health()
    supervisor = Supervisor(health, max_restarts=3, first_delay=0.01)
    runs = 0
    steady = asyncio.Event()

    async def recovers() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ConnectionError("lost")
        health.report("component", True)
        steady.set()
        await asyncio.Event().wait()

    supervisor.start("recovers", recovers)
    await asyncio.wait_for(steady.wait(), timeout=5)
    assert runs == 2 and not supervisor.fatal.is_set()
    assert health.live()[0] and health.ready()[0]
    await supervisor.stop()


async def test_a_task_that_returns_by_itself_is_a_failure_too() -> None:
    health = Health()
    supervisor = Supervisor(health, max_restarts=1, first_delay=0.01)

    async def quits() -> None:
        return None

    supervisor.start("quits", quits)
    await asyncio.wait_for(supervisor.fatal.wait(), timeout=5)
    await supervisor.stop()


def test_a_stalled_component_fails_liveness_and_an_unready_one_only_readiness() -> None:
    health = Health(stall_seconds=0.05)
    health.report("broker", False, "unreachable")
    health.beat("relay")
    assert health.live()[0] and not health.ready()[0]
    time.sleep(0.1)
    alive, body = health.live()
    assert not alive and body["stalled"] == ["relay"]
    health.beat("relay")
    assert health.live()[0]


def test_a_component_that_only_beats_does_not_count_for_readiness() -> None:
    health = Health()
    health.beat("heartbeat")
    health.report("database", True)
    assert health.ready() == (True, {"status": "ready", "checks": {"database": True}})
