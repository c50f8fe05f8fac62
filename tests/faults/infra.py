"""A private PostgreSQL server and a private RabbitMQ node for the fault suite.

The fault scenarios kill and restart the database and the broker, so they must never use the
machine's shared services. Each server here lives in its own temporary directory, on free ports,
under its own name (RabbitMQ: own node name, distribution port, cookie, data and log dirs), and is
stopped and removed when the suite ends. Only processes started here are ever signalled.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from tests.stack import free_port

PG_BIN = Path(os.environ.get("QRUNTIME_FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))
RABBITMQ_SBIN = Path(os.environ.get("QRUNTIME_FAULTS_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


def _wait(predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - started


def _as_postgres() -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PrivatePostgres:
    """initdb on a free port in a temp dir, owned by the postgres user when run as root."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="qrt_i11_pg_"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.admin_dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_as_postgres(), *args], capture_output=True, text=True, check=check)

    def init(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.base}'\nmax_connections = 300\n"
                "shared_buffers = 64MB\n"
                # fsync off: the machine never crashes here, only PostgreSQL is killed, and the OS
                # keeps what was written; commits stay synchronous, or an immediate stop loses them.
                "fsync = off\nfull_page_writes = off\n"
            )

    def start(self) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "immediate") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart_immediate(self) -> None:
        """Crash-like restart: every backend connection is dropped without a goodbye."""
        self.stop("immediate")
        self.start()

    def accepts(self) -> bool:
        return (
            self._run(
                str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), check=False
            ).returncode
            == 0
        )

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


class PrivateRabbit:
    """One RabbitMQ node of our own: own node name, ports, cookie (HOME), data and log dirs, no plugins."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dist_port = free_port()
        self.name = f"qrt_i11_{uuid.uuid4().hex[:8]}@localhost"
        self.base = Path(tempfile.mkdtemp(prefix="qrt_i11_rmq_"))
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None
        (self.base / "home").mkdir()
        cookie = self.base / "home" / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq.conf").write_text(
            "loopback_users = none\n"
            # The node runs on a machine shared with the test stack: never block publishers on disk.
            "disk_free_limit.absolute = 1MB\n"
            "vm_memory_high_watermark.relative = 0.8\n"
        )

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            {
                "HOME": str(self.base / "home"),
                "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.base / "log"),
                "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(self.base / "node.pid"),
                "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
                "RABBITMQ_LOGS": str(self.base / "log" / "node.log"),
            }
        )
        return env

    def start(self, timeout: float = 120) -> float:
        """Start the node and wait until it accepts AMQP connections; returns the seconds it took."""
        started = time.monotonic()
        log = open(self.base / "server.out", "ab")
        self.process = subprocess.Popen(
            [str(RABBITMQ_SBIN / "rabbitmq-server")],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_app(timeout)
        return time.monotonic() - started

    def wait_app(self, timeout: float = 120) -> None:
        _wait(self._accepts_amqp, timeout, f"RabbitMQ node {self.name} accepting connections")

    def _accepts_amqp(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"RabbitMQ node exited; see {self.base}")
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"AMQP\x00\x00\x09\x01")
                return sock.recv(1) == b"\x01"  # Connection.Start frame type
        except OSError:
            return False

    def ctl(self, *args: str) -> None:
        subprocess.run(
            [str(RABBITMQ_SBIN / "rabbitmqctl"), "-n", self.name, *args],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def kill9(self) -> None:
        """kill -9 of the node's Erlang VM (our own process group only)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def destroy(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        shutil.rmtree(self.base, ignore_errors=True)


async def pg_alive(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True
