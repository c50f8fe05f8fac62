"""The `qruntime` command: migrate, api, scheduler, executor, up."""

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import IO

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from services.cli.admin import add_admin_parser, run_admin
from services.cli.client import add_client_parsers, run_client_env, run_doctor
from services.cli.status import run_status
from shared.kit.settings import Settings, get_settings
from shared.kit.supervision import ProcessBroken

log = logging.getLogger("qruntime")


def _configure_logging(settings: Settings, role: str) -> None:
    from shared.kit.logging_setup import configure_logging

    configure_logging(settings.log_level, settings.log_format, role)


def _run_until_signalled(make: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        from shared.kit.health import start_health_server

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(stop()))
        health = start_health_server(get_settings().health_port)
        try:
            await make()
        finally:
            if health is not None:
                await health.stop()

    asyncio.run(main())


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from shared.db.migrate import migrate

    migrate(settings)
    log.info("database is at the newest schema")
    return 0


def cmd_api(settings: Settings, _: argparse.Namespace) -> int:
    import uvicorn

    from services.api.app import create_app

    try:
        settings.check_signing_secret()
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        server_header=False,  # no banner naming the server software
        # Keep the process's own logging configuration (text or JSON) for uvicorn's records too.
        log_config=None,
    )
    return 0


def cmd_scheduler(settings: Settings, _: argparse.Namespace) -> int:
    from services.scheduler.service import Scheduler
    from shared.db.engine import create_engine, create_session_factory

    engine = create_engine(settings, pool_size=5)
    scheduler = Scheduler(settings, create_session_factory(engine))

    async def run() -> None:
        try:
            await scheduler.run()
        finally:
            await engine.dispose()

    _run_until_signalled(run, scheduler.stop)
    return 0


def cmd_executor(settings: Settings, args: argparse.Namespace) -> int:
    from services.executor.service import ExecutorService
    from shared.db.engine import create_engine, create_session_factory

    backends = args.backend or settings.backends
    unknown = [b for b in backends if b not in settings.backends]
    if unknown:
        log.error("backends %s are not in QRUNTIME_BACKENDS (%s)", unknown, ",".join(settings.backends))
        return 2
    engine = create_engine(settings, pool_size=4)
    sessions = create_session_factory(engine)
    executors = [ExecutorService(settings, sessions, backend) for backend in backends]

    async def run() -> None:
        try:
            await asyncio.gather(*(e.run() for e in executors))
        finally:
            await engine.dispose()

    async def stop() -> None:
        for executor in executors:
            await executor.stop()

    _run_until_signalled(run, stop)
    return 0


def _pipe_with_prefix(stream: IO[bytes], prefix: str) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{prefix} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def cmd_up(settings: Settings, _: argparse.Namespace) -> int:
    """Migrate, then run api, scheduler and one executor per backend as child processes."""
    cmd_migrate(settings, _)
    # -P: the working directory is not put on sys.path, so a folder with its own `services/` package
    # cannot shadow the installed code.
    base = [sys.executable, "-P", "-m", "services.cli"]
    roles: list[tuple[str, list[str]]] = [("api", ["api"]), ("scheduler", ["scheduler"])]
    roles += [(f"executor[{b}]", ["executor", "--backend", b]) for b in settings.backends]
    width = max(len(name) for name, _ in roles)
    children: list[subprocess.Popen[bytes]] = []
    for name, argv in roles:
        child = subprocess.Popen(
            base + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy()
        )
        assert child.stdout is not None
        threading.Thread(
            target=_pipe_with_prefix, args=(child.stdout, name.ljust(width)), daemon=True
        ).start()
        children.append(child)

    stopping = threading.Event()

    def terminate(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, terminate)
    signal.signal(signal.SIGTERM, terminate)
    names = [name for name, _ in roles]
    failure = _wait_until_ready(settings, list(zip(names, children, strict=True)), stopping)
    if failure is None:
        log.info(
            "qruntime is ready on %s: api, scheduler and executors for %s (Ctrl-C stops it)",
            _local_url(settings),
            ", ".join(settings.backends),
        )
        while not stopping.wait(0.5):
            exited = [name for name, child in zip(names, children, strict=True) if child.poll() is not None]
            if exited:
                log.error("%s exited; stopping the others", ", ".join(exited))
                break
    elif not stopping.is_set():
        log.error("qruntime failed to start: %s", failure)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0 if stopping.is_set() else 1


def _local_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"http://{host}:{settings.api_port}"


def _not_ready(settings: Settings) -> list[str]:
    """What is not ready yet: the api (its /readyz), the scheduler leader, each backend's executor."""
    import httpx

    from shared.db.engine import create_engine, create_session_factory, unit_of_work
    from shared.db.repositories.locks import leader_present
    from shared.db.repositories.overview import OverviewRepository

    waiting = []
    try:
        if httpx.get(_local_url(settings) + "/readyz", timeout=2).status_code != 200:
            waiting.append("the api (database or broker not reachable)")
    except httpx.HTTPError:
        waiting.append("the api to answer")

    async def from_database() -> tuple[bool, dict[str, int]]:
        engine = create_engine(settings, pool_size=1)
        try:
            async with unit_of_work(create_session_factory(engine)) as db:
                leader = await leader_present(db)
                return leader, await OverviewRepository(db).live_executors(settings.executor_lease_seconds)
        finally:
            await engine.dispose()

    leader, live = asyncio.run(from_database())
    if not leader:
        waiting.append("a scheduler leader")
    waiting += [f"an executor for {b}" for b in settings.backends if not live.get(b)]
    return waiting


def _wait_until_ready(
    settings: Settings, children: list[tuple[str, subprocess.Popen[bytes]]], stopping: threading.Event
) -> str | None:
    """None once every process is ready; otherwise why not (a child exited, or time ran out)."""
    deadline = time.monotonic() + settings.startup_timeout_seconds
    waiting: list[str] = []
    while not stopping.is_set():
        for name, child in children:
            if child.poll() is not None:
                return (
                    f"{name} exited with status {child.returncode} before it was ready (see its lines above)"
                )
        try:
            waiting = _not_ready(settings)
        except (OSError, DBAPIError) as exc:
            waiting = [f"the database ({type(exc).__name__})"]
        if not waiting:
            return None
        if time.monotonic() > deadline:
            return f"not ready after {settings.startup_timeout_seconds:.0f} s, still waiting for {', '.join(waiting)}"
        stopping.wait(0.5)
    return "stopped"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qruntime",
        description=(
            "A self-hosted quantum runtime. Settings come from QRUNTIME_* environment variables "
            "(or a .env file); see the README's Configuration table. `qruntime COMMAND --help` "
            "describes each command."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "migrate",
        help="create the database if missing and upgrade it to the newest schema",
        description=(
            "Create the database named by QRUNTIME_DATABASE_URL if it does not exist and apply every "
            "Alembic migration. Safe to run again: an up-to-date database is left as it is."
        ),
    )
    sub.add_parser(
        "api",
        help="serve the REST API",
        description=(
            "Serve the REST API (and /docs, /redoc, /openapi.json) on QRUNTIME_API_HOST:QRUNTIME_API_PORT "
            "(default 127.0.0.1:8000). Logs one line per request. Exits with status 1 when the port "
            "cannot be bound."
        ),
    )
    sub.add_parser(
        "scheduler",
        help="run the scheduler (one leader per database; others stand by)",
        description=(
            "Order queued jobs and dispatch them to the backends' queues. Several may run: one is "
            "the leader (a PostgreSQL advisory lock), the others stand by and take over within a "
            "second of its death. Serves /healthz and /metrics on QRUNTIME_HEALTH_PORT when set."
        ),
    )
    executor = sub.add_parser(
        "executor",
        help="run circuits for one or more backends",
        description=(
            "Run the circuits of jobs dispatched to the given backends, with a warm simulator per "
            "backend in a child process. Example: qruntime executor --backend fake_manila"
        ),
    )
    executor.add_argument(
        "--backend",
        action="append",
        metavar="NAME",
        help="backend to serve, e.g. aer_simulator or fake_manila (repeatable; default: every backend "
        "of QRUNTIME_BACKENDS)",
    )
    sub.add_parser(
        "up",
        help="migrate, then run api, scheduler and executors on this machine",
        description=(
            "Migrate, then start the api, the scheduler and one executor per backend as child "
            "processes with prefixed logs. Prints 'qruntime is ready' once the api answers /readyz, "
            "the scheduler leads and every backend has an executor; exits with status 1 if a child "
            "fails first (for example when the api's port is taken). Ctrl-C or SIGTERM stops them all."
        ),
    )
    add_admin_parser(sub)
    sub.add_parser(
        "status",
        help="print backends, queue depths, running jobs and the outbox backlog",
        description=(
            "Print, from the database and the broker: per backend the live executors, queued and "
            "running jobs and the queue depth; the running jobs with their age (seconds) and attempt; "
            "and the number of events not yet published. Needs QRUNTIME_DATABASE_URL and "
            "QRUNTIME_AMQP_URL, not a running api."
        ),
    )
    add_client_parsers(sub)
    return parser


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "migrate": cmd_migrate,
    "api": cmd_api,
    "scheduler": cmd_scheduler,
    "executor": cmd_executor,
    "up": cmd_up,
    "admin": run_admin,
    "status": lambda settings, _: run_status(settings),
    "client-env": run_client_env,
    "doctor": run_doctor,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        print(f"qruntime: invalid configuration: {problems}", file=sys.stderr)
        return 2
    _configure_logging(settings, args.command)
    try:
        return COMMANDS[args.command](settings, args)
    except ProcessBroken as exc:
        log.critical("qruntime %s stops: %s", args.command, exc)
        return 70
    except (DBAPIError, OSError) as exc:
        # A shell user gets one line, not a traceback, when the database or broker is not there.
        reason = getattr(exc, "orig", None) or exc
        print(f"qruntime {args.command}: cannot reach a service it needs: {reason}", file=sys.stderr)
        return 1
