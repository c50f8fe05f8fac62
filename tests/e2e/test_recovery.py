"""Nothing lost: processes killed with SIGKILL mid-flight, and an api that starts without its broker."""

import asyncio
import signal
import threading
from collections import Counter
from contextlib import suppress

from tests.stack import BELL_QASM2, EventRecorder, Stack, free_port, sampler_job, wait_for

GHZ_12 = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[12];\ncreg c[12];\nh q[0];\n'
    + "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(11))
    + "measure q -> c;\n"
)


def test_kill_executor_and_scheduler_midway(make_stack: type[Stack]) -> None:
    stack = make_stack(backends=["aer_simulator"])
    stack.start_all()
    events = EventRecorder(stack.namespace)
    events.bind()
    try:
        with stack.client() as client:
            job_ids = [
                client.post("/api/v1/jobs", json=sampler_job("aer_simulator", GHZ_12, 20000)).json()["id"]
                for _ in range(100)
            ]
        # Kill both midway: some jobs done, one running, the rest queued or dispatched.
        wait_for(
            lambda: stack.sql("SELECT count(*) AS n FROM jobs WHERE status = 'DONE'")[0]["n"] >= 15,
            120,
            f"jobs to progress; logs in {stack.log_dir}",
        )
        stack.kill("executor-aer_simulator")
        stack.kill("scheduler")
        unfinished = stack.sql("SELECT count(*) AS n FROM jobs WHERE status IN ('QUEUED', 'RUNNING')")[0]["n"]
        assert unfinished > 0, "the kill came too late to test anything"
        stack.start_scheduler(name="scheduler-2")
        stack.start_executor("aer_simulator", name="executor-aer_simulator-2")

        statuses = stack.wait_final(job_ids, timeout=180)
        assert Counter(statuses.values()) == {"DONE": 100}
        rows = stack.sql("SELECT job_id, count(*) AS n FROM job_results GROUP BY job_id")
        assert {r["job_id"]: r["n"] for r in rows} == dict.fromkeys(job_ids, 1)

        # Every job was announced DONE exactly once: none ran twice to completion.
        stack.wait_outbox_sent()
        done_events = {e["event_id"]: e["job_id"] for e in events.drain() if e["state"] == "done"}
        assert Counter(done_events.values()) == dict.fromkeys(job_ids, 1)
    finally:
        events.delete()


class TcpProxy:
    """Forwards a local port to RabbitMQ once switched on: a broker that becomes reachable later."""

    def __init__(self, listen_port: int, target_port: int = 5672) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.base_events.Server | None = None

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(timeout=5)

    async def _serve(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        async def close() -> None:
            if self.server is not None:
                self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_api_accepts_jobs_while_broker_is_unreachable(make_stack: type[Stack]) -> None:
    stack = make_stack(backends=["aer_simulator"])
    stack.migrate()
    stack.add_account("alice", "lab-a")
    broker_port = free_port()  # nothing listens here yet
    stack.start_api(
        env={"QRUNTIME_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{broker_port}/"}, wait_ready=False
    )
    with stack.client() as client:
        assert client.get("/readyz").status_code == 503
        job_ids = []
        for _ in range(5):
            response = client.post("/api/v1/jobs", json=sampler_job("aer_simulator", BELL_QASM2, 100))
            assert response.status_code == 200, response.text
            job_ids.append(response.json()["id"])
        # Accepted and persisted with their announcements waiting in the outbox.
        assert stack.sql("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")[0]["n"] >= 10

        proxy = TcpProxy(broker_port)
        proxy.start()
        try:
            # The api's own relay (no other process runs yet) publishes the backlog once it can.
            stack.wait_outbox_sent()
            assert client.get("/readyz").status_code == 200

            stack.start_scheduler()
            stack.start_executor("aer_simulator")
            statuses = stack.wait_final(job_ids, timeout=120)
            assert set(statuses.values()) == {"DONE"}
            for job_id in job_ids:
                assert client.get(f"/api/v1/jobs/{job_id}").json()["state"]["status"] == "Completed"
        finally:
            stack.stop()
            proxy.stop()


def test_scheduler_standby_takes_over(make_stack: type[Stack]) -> None:
    stack = make_stack(backends=["aer_simulator"])
    stack.start_all()
    stack.start_scheduler(name="scheduler-standby")
    # Kill the leader only once the standby has found the lock taken (its start can be slow under load).
    standby_log = stack.log_dir / "scheduler-standby.log"
    wait_for(lambda: "standing by" in standby_log.read_text(), 60, "the standby to start", poll=0.1)
    stack.kill("scheduler", signal.SIGKILL)
    with stack.client() as client:
        job_ids = [
            client.post("/api/v1/jobs", json=sampler_job("aer_simulator", BELL_QASM2, 100)).json()["id"]
            for _ in range(5)
        ]
    assert set(stack.wait_final(job_ids, timeout=60).values()) == {"DONE"}
    assert "is the leader" in standby_log.read_text()


def test_kill_executor_mid_group(make_stack: type[Stack]) -> None:
    """Small jobs share dispatches; an executor killed in the middle of a group loses none of them and
    completes none twice."""
    stack = make_stack(backends=["aer_simulator"], settings_env={"QRUNTIME_MAX_GROUP_SIZE": "20"})
    stack.start_all()
    events = EventRecorder(stack.namespace)
    events.bind()
    try:
        with stack.client() as client:
            job_ids = [
                client.post("/api/v1/jobs", json=sampler_job("aer_simulator", GHZ_12, 10000)).json()["id"]
                for _ in range(200)
            ]
        # Kill once some groups are done and one is running.
        progress = (
            "SELECT count(*) FILTER (WHERE status = 'DONE') AS done, "
            "count(*) FILTER (WHERE status = 'RUNNING') AS running FROM jobs"
        )
        wait_for(
            lambda: (now := stack.sql(progress)[0])["done"] >= 20 and now["running"] >= 2,
            120,
            f"jobs to progress; logs in {stack.log_dir}",
            poll=0.02,
        )
        stack.kill("executor-aer_simulator")
        grouped = stack.sql(
            "SELECT count(*) AS n FROM (SELECT dispatch_id FROM jobs WHERE dispatch_id IS NOT NULL "
            "GROUP BY dispatch_id HAVING count(*) > 1) g"
        )[0]["n"]
        running = stack.sql("SELECT count(*) AS n FROM jobs WHERE status = 'RUNNING'")[0]["n"]
        assert grouped > 0 and running > 1, "the kill should catch a group in the middle"
        stack.start_executor("aer_simulator", name="executor-aer_simulator-2")

        statuses = stack.wait_final(job_ids, timeout=180)
        assert Counter(statuses.values()) == {"DONE": 200}
        rows = stack.sql("SELECT job_id, count(*) AS n FROM job_results GROUP BY job_id")
        assert {r["job_id"]: r["n"] for r in rows} == dict.fromkeys(job_ids, 1)
        stack.wait_outbox_sent()
        done_events = {e["event_id"]: e["job_id"] for e in events.drain() if e["state"] == "done"}
        assert Counter(done_events.values()) == dict.fromkeys(job_ids, 1)
    finally:
        events.delete()
