"""Running qruntime's processes for tests: each test stack gets its own database and broker namespace,
and its api, scheduler and executors run as separate OS processes against the real services."""

import asyncio
import atexit
import fcntl
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx

from shared.messaging.topology import Topology

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("QRUNTIME_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("QRUNTIME_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
LOG_ROOT = Path(os.environ.get("QRUNTIME_TEST_LOGS", "/tmp/qruntime-test-logs"))

BELL_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0],q[1];
measure q -> c;
"""

BELL_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
"""


TEST_JWT_SECRET = "test-secret-of-the-qruntime-suite-0123456789"


def layered_qasm(qubits: int, layers: int) -> str:
    """A circuit that keeps the simulator busy for a while (rotations and entanglers, then measure)."""
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{qubits}];", f"creg c[{qubits}];"]
    for layer in range(layers):
        lines += [f"rx({0.1 * (layer + q):.2f}) q[{q}];" for q in range(qubits)]
        lines += [f"cx q[{q}],q[{q + 1}];" for q in range(0, qubits - 1, 2 if layer % 2 else 3)]
    return "\n".join([*lines, "measure q -> c;", ""])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> float:
    """Poll until `predicate` holds; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)
    return time.monotonic()


# Test stacks take their ports from a range below the kernel's ephemeral ports (32768 and up), so no
# connection's local port can take one between its choice and its bind, and each chosen port is
# reserved with a lock file held until this process exits, so that parallel test workers (and other
# test runs on the machine) never pick the same one.
PORT_RANGE = range(20000, 32700)
PORT_LOCKS = Path(os.environ.get("QRUNTIME_TEST_PORT_LOCKS", "/tmp/qruntime-test-ports"))
_held_ports: dict[int, int] = {}


def free_port() -> int:
    """A port nothing listens on, reserved for this process (a lock file under PORT_LOCKS)."""
    PORT_LOCKS.mkdir(parents=True, exist_ok=True)
    for _ in range(500):
        port = random.choice(PORT_RANGE)
        if port in _held_ports:
            continue
        fd = os.open(PORT_LOCKS / str(port), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # another test process holds it
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                os.close(fd)
                continue  # something outside the suite uses it
        _held_ports[port] = fd
        return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


def sampler_job(backend: str, circuit: Any = BELL_QASM2, shots: int = 1000, **extra: Any) -> dict[str, Any]:
    return {
        "program_id": "sampler",
        "backend": backend,
        "params": {"pubs": [[circuit, None, shots]], "version": 2},
        **extra,
    }


def run_sql(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


# Runs `qruntime admin` commands (a JSON list of argument lists) one after the other through the CLI's
# entry point, printing a JSON list of their outputs.
ADMIN_BATCH = """
import contextlib, io, json, sys
from services.cli.main import main
outputs = []
for args in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["admin", *args])
    if code != 0:
        sys.exit(f"qruntime admin {' '.join(args)} exited with {code}: {out.getvalue()}")
    outputs.append(out.getvalue())
print(json.dumps(outputs))
"""


def _last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def _crn_in(listing: str, instance: str) -> str:
    """The CRN of `instance` in the output of `qruntime admin list-instances`."""
    for line in listing.splitlines():
        _, name, crn = line.split("\t")
        if name == instance:
            return crn
    raise KeyError(instance)


_template: list[str] = []


def migrated_template(env: dict[str, str]) -> str:
    """A database at the newest schema, made by `qruntime migrate` the first time a stack of this
    process asks; stacks copy it. Dropped when the process exits. Nothing connects to it after its
    migration (CREATE DATABASE ... TEMPLATE needs that)."""
    if not _template:
        name = f"qrt_stpl_{uuid.uuid4().hex[:10]}"
        dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
        subprocess.run(
            [sys.executable, "-m", "services.cli", "migrate"],
            cwd=ROOT,
            env={**env, "QRUNTIME_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1)},
            check=True,
            capture_output=True,
        )
        _template.append(name)
        atexit.register(drop_migrated_template)
    return _template[0]


def drop_migrated_template() -> None:
    while _template:
        run_sql(PG_ADMIN_DSN, f'DROP DATABASE IF EXISTS "{_template.pop()}" WITH (FORCE)')


@dataclass
class Account:
    """A user provisioned with `qruntime admin`, and the instance it acts in."""

    name: str
    api_key: str
    instance_crn: str
    token: str | None = None


@dataclass
class Stack:
    backends: list[str]
    settings_env: dict[str, str] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.database = f"qrt_test_{self.tag}"
        self.namespace = f"qrt-test-{self.tag}"
        self.dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + self.database
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        # The api serves /metrics on a listener of its own.
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.log_dir = LOG_ROOT / self.tag
        self.log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "QRUNTIME_DATABASE_URL": self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
                "QRUNTIME_AMQP_URL": AMQP_URL,
                "QRUNTIME_NAMESPACE": self.namespace,
                "QRUNTIME_API_PORT": str(self.api_port),
                "QRUNTIME_METRICS_PORT": str(self.metrics_port),
                "QRUNTIME_BACKENDS": ",".join(self.backends),
                # Many stacks share one PostgreSQL server (max_connections 100) during a test run.
                "QRUNTIME_DB_POOL_SIZE": "3",
                "QRUNTIME_EXECUTOR_HEARTBEAT_SECONDS": "0.5",
                "QRUNTIME_EXECUTOR_LEASE_SECONDS": "3",
                "QRUNTIME_SCHEDULER_TICK_SECONDS": "0.5",
                "QRUNTIME_OUTBOX_POLL_SECONDS": "0.5",
                "QRUNTIME_METRICS_REFRESH_SECONDS": "1",
                "QRUNTIME_LOG_LEVEL": "INFO",
                "QRUNTIME_JWT_SECRET": TEST_JWT_SECRET,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.settings_env)
        return env

    def qruntime(
        self, *args: str, env: dict[str, str] | None = None, name: str | None = None
    ) -> subprocess.Popen[bytes]:
        name = name or "-".join(args).replace("--backend-", "")
        log = open(self.log_dir / f"{name}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes[name] = process
        return process

    def migrate(self) -> None:
        """The stack's database at the newest schema: a copy of a template that `qruntime migrate`
        made once in this process (CREATE DATABASE ... TEMPLATE, a fraction of a second)."""
        run_sql(PG_ADMIN_DSN, f'CREATE DATABASE "{self.database}" TEMPLATE "{migrated_template(self.env)}"')

    def migrate_with_cli(self) -> None:
        """`qruntime migrate` against the stack's database (creating it when missing)."""
        subprocess.run(
            [sys.executable, "-m", "services.cli", "migrate"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def admin(self, *args: str) -> str:
        """Run `qruntime admin ...`; returns its last line of output (a key, a CRN or an id)."""
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "admin", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def admin_batch(self, commands: list[list[str]]) -> list[str]:
        """Several `qruntime admin ...` commands, each through the CLI's own entry point (argument
        parsing, settings from the environment, the same code), in one process instead of one per
        command; returns each command's output. Stops at the first that fails."""
        done = subprocess.run(
            [sys.executable, "-c", ADMIN_BATCH, json.dumps(commands)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        outputs: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
        return outputs

    def add_account(
        self, name: str, instance: str, admin: bool = False, new_instance: bool = True, **limits: str
    ) -> Account:
        return self.add_accounts([(name, instance, admin, new_instance, limits)])[0]

    def add_accounts(self, specs: list[tuple[str, str, bool, bool, dict[str, str]]]) -> list[Account]:
        """Users, each a member of an instance (new, with the limits given, or existing) with an API
        key: (name, instance, admin, new_instance, limits) each, made with `qruntime admin`."""
        commands: list[list[str]] = []
        for name, instance, admin, new_instance, limits in specs:
            commands.append(["create-user", name, *(["--admin"] if admin else [])])
            if new_instance:
                options = [arg for k, v in limits.items() for arg in (f"--{k.replace('_', '-')}", v)]
                commands.append(["create-instance", instance, *options])
            else:
                commands.append(["list-instances"])
            commands += [["add-member", instance, name], ["create-key", name]]
        outputs = iter(self.admin_batch(commands))
        made = []
        for name, instance, _, new_instance, _ in specs:
            next(outputs)  # create-user
            listed = next(outputs)
            crn = _last_line(listed) if new_instance else _crn_in(listed, instance)
            next(outputs)  # add-member
            account = Account(name=name, api_key=_last_line(next(outputs)), instance_crn=crn)
            self.accounts[name] = account
            made.append(account)
        return made

    def token(self, user: str) -> str:
        account = self.accounts[user]
        if account.token is None:
            response = httpx.post(
                self.url + "/identity/token",
                data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": account.api_key},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            account.token = response.json()["access_token"]
        return account.token

    def start_api(self, env: dict[str, str] | None = None, wait_ready: bool = True) -> None:
        self.qruntime("api", env=env, name="api")
        self.wait_for_api(require_ready=wait_ready)

    def start_scheduler(self, name: str = "scheduler") -> subprocess.Popen[bytes]:
        return self.qruntime("scheduler", name=name)

    def start_executor(self, backend: str, name: str | None = None) -> subprocess.Popen[bytes]:
        return self.qruntime("executor", "--backend", backend, name=name or f"executor-{backend}")

    def start_all(self) -> None:
        self.migrate()
        self.add_account("alice", "lab-a")
        self.start_scheduler()
        for backend in self.backends:
            self.start_executor(backend)
        self.start_api()
        self.wait_for_executors(len(self.backends))

    def wait_for_api(self, require_ready: bool = True, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        path = "/readyz" if require_ready else "/healthz"
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.processes["api"].poll() is not None:
                raise RuntimeError(f"api exited; see {self.log_dir}/api.log")
            time.sleep(0.2)
        raise TimeoutError(f"api not {'ready' if require_ready else 'alive'}; see {self.log_dir}")

    def wait_for_executors(self, count: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = run_sql(self.dsn, "SELECT count(*) AS n FROM executors WHERE stopped_at IS NULL")[0]["n"]
            if live >= count:
                return
            time.sleep(0.3)
        raise TimeoutError(f"{count} executors did not register; see {self.log_dir}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        process.send_signal(sig)
        process.wait(timeout=60)

    def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return run_sql(self.dsn, query, *args)

    def client(self, user: str | None = "alice") -> httpx.Client:
        """An HTTP client authenticated as `user` (None: anonymous), as the official client would be."""
        headers = {}
        if user is not None:
            headers = {
                "Authorization": f"Bearer {self.token(user)}",
                "Service-CRN": self.accounts[user].instance_crn,
            }
        return httpx.Client(base_url=self.url, timeout=30, headers=headers)

    def wait_final(self, job_ids: list[str], timeout: float = 120) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            rows = self.sql("SELECT id, status FROM jobs WHERE id = ANY($1::text[])", job_ids)
            statuses = {r["id"]: r["status"] for r in rows}
            if len(statuses) == len(job_ids) and all(
                s in ("DONE", "ERROR", "CANCELLED") for s in statuses.values()
            ):
                return statuses
            time.sleep(0.2)
        raise TimeoutError(f"jobs not final: {statuses}; logs in {self.log_dir}")

    def wait_outbox_sent(self, timeout: float = 60) -> None:
        """Until every committed outbox row has been published (events reach their queues)."""
        wait_for(
            lambda: self.sql("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")[0]["n"] == 0,
            timeout,
            f"the outbox to be relayed; logs in {self.log_dir}",
            poll=0.1,
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def destroy(self) -> None:
        self.stop()
        run_sql(PG_ADMIN_DSN, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        asyncio.run(delete_namespace(self.namespace, self.backends))


async def delete_namespace(namespace: str, backends: list[str]) -> None:
    topology = Topology(namespace)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queues = [
            topology.scheduler_queue,
            topology.dead_queue,
            *(topology.executor_queue(b) for b in backends),
        ]
        for queue in queues:
            await channel.queue_delete(queue)
        for logical in ("commands", "dispatch", "events", "tenant-events", "dead"):
            await channel.exchange_delete(topology.exchange_name(logical))


def decode_result(text: str) -> Any:
    from qiskit_ibm_runtime import RuntimeDecoder

    return json.loads(text, cls=RuntimeDecoder)


@dataclass
class EventRecorder:
    """A real queue bound to the stack's events exchange, collecting job and session events (or those
    of `routing_keys`)."""

    namespace: str
    events: list[dict[str, Any]] = field(default_factory=list)
    routing_keys: tuple[str, ...] = ("job.#", "session.#")

    def __post_init__(self) -> None:
        self.queue_name = f"{self.namespace}.test-events-{uuid.uuid4().hex[:6]}"

    def bind(self) -> None:
        async def go() -> None:
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                exchange = await channel.declare_exchange(
                    Topology(self.namespace).exchange_name("events"),
                    aio_pika.ExchangeType.TOPIC,
                    durable=True,
                )
                queue = await channel.declare_queue(self.queue_name, durable=False, auto_delete=False)
                for routing_key in self.routing_keys:
                    await queue.bind(exchange, routing_key=routing_key)

        asyncio.run(go())

    def drain(self) -> list[dict[str, Any]]:
        async def go() -> None:
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                queue = await channel.get_queue(self.queue_name)
                while (message := await queue.get(no_ack=True, fail=False)) is not None:
                    self.events.append({"routing_key": message.routing_key, **json.loads(message.body)})

        asyncio.run(go())
        return self.events

    def delete(self) -> None:
        async def go() -> None:
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                await channel.queue_delete(self.queue_name)

        asyncio.run(go())


def iter_lines(path: Path) -> Iterator[str]:
    if path.exists():
        yield from path.read_text(errors="replace").splitlines()


def child_pids(parent: int) -> list[int]:
    """The simulator children of an executor process (spawned multiprocessing children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found
