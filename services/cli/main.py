"""The `qruntime` command: migrate, api, scheduler, executor, up."""

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import IO

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from services.cli.admin import add_admin_parser, run_admin
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
    log.info("qruntime is up on http://%s:%s (Ctrl-C stops it)", settings.api_host, settings.api_port)
    while not stopping.wait(0.5):
        if any(child.poll() is not None for child in children):
            log.error("a child process exited; stopping the others")
            break
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0 if stopping.is_set() else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qruntime", description="A self-hosted quantum runtime.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create the database if missing and upgrade it to the newest schema")
    sub.add_parser("api", help="serve the REST API")
    sub.add_parser("scheduler", help="run the scheduler (one leader per database; others stand by)")
    executor = sub.add_parser("executor", help="run circuits for one or more backends")
    executor.add_argument(
        "--backend", action="append", help="backend to serve (repeatable; default: all of QRUNTIME_BACKENDS)"
    )
    sub.add_parser("up", help="migrate, then run api, scheduler and executors on this machine")
    add_admin_parser(sub)
    sub.add_parser("status", help="print backends, queue depths, running jobs and active sessions")
    return parser


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "migrate": cmd_migrate,
    "api": cmd_api,
    "scheduler": cmd_scheduler,
    "executor": cmd_executor,
    "up": cmd_up,
    "admin": run_admin,
    "status": lambda settings, _: run_status(settings),
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
