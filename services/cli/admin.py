"""`qruntime admin ...`: manage users, API keys and instances from a shell (and the development bootstrap).

Commands that create a secret or an identifier print it alone on the last line of standard output,
so scripts can capture it: KEY=$(qruntime admin create-key alice | tail -n1).
"""

import argparse
import asyncio
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from services.cli.client import CLIENT_ENV_FILE, DEV_CREDENTIALS, client_variables, render_exports, server_url
from shared.db.engine import create_engine, create_session_factory
from shared.identity.service import IdentityService
from shared.kit.errors import QRuntimeError
from shared.kit.settings import Settings

ALLOCATION_HELP = (
    "backend time the instance may use, in seconds per rolling window of QRUNTIME_USAGE_WINDOW_DAYS "
    "days (default 28), e.g. 3600; jobs beyond it stay queued"
)
CONCURRENCY_HELP = "most jobs queued or running at once, e.g. 10; more are refused with code 1012"


def _add_limit_options(parser: argparse.ArgumentParser) -> None:
    """The limits an instance is created with, or changed to: create-instance and set-limits."""
    parser.add_argument(
        "--allocation-seconds", type=float, default=None, metavar="SECONDS", help=ALLOCATION_HELP
    )
    parser.add_argument(
        "--max-concurrent-jobs", type=int, default=None, metavar="JOBS", help=CONCURRENCY_HELP
    )


NAME_HELP = "1-128 letters, digits or . _ @ -, starting with a letter or digit"
INSTANCE_HELP = "instance name, id or CRN"
USER_HELP = "user name or id"

# Each command's one-line help, and its description with an example.
COMMANDS = {
    "create-user": ("create a user", "Create a user. Example: qruntime admin create-user alice --admin"),
    "create-key": (
        "create an API key for a user (printed once)",
        "Create an API key qrt_<id>_<secret> for a user; it is printed once, alone on the last line (only "
        "its hash is stored). Example: KEY=$(qruntime admin create-key alice | tail -n1)",
    ),
    "revoke-key": (
        "revoke an API key (by its id)",
        "Revoke an API key and every access token issued for it. Example: for the key "
        "qrt_9c1e7a2b4d6f8e0a_<secret>, run: qruntime admin revoke-key 9c1e7a2b4d6f8e0a",
    ),
    "create-instance": (
        "create an instance (tenant); prints its CRN",
        "Create an instance; its CRN (what clients send as Service-CRN and QISKIT_IBM_INSTANCE) is "
        "printed alone on the last line. Example: qruntime admin create-instance lab-a "
        "--allocation-seconds 3600 --max-concurrent-jobs 10",
    ),
    "set-limits": (
        "change an instance's allocation or concurrency limit",
        "Change the limits given; the others stay. Examples: qruntime admin set-limits lab-a "
        "--allocation-seconds 7200; qruntime admin set-limits lab-a --unlimited",
    ),
    "add-member": (
        "let a user act in an instance",
        "Make a user a member of an instance. Example: qruntime admin add-member lab-a alice",
    ),
    "list-users": ("list users", "Print id, name, role and state, tab-separated."),
    "list-instances": ("list instances", "Print id, name and CRN, tab-separated."),
    "bootstrap": (
        "development: create an admin, an instance and a key if there are none",
        "Development only (QRUNTIME_ENVIRONMENT=development): when the database has no user, create the "
        f"administrator 'admin', the instance 'default' and a key, kept in {DEV_CREDENTIALS} (mode 0600). "
        "`make run` runs it.",
    ),
}


def add_admin_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    admin = sub.add_parser(
        "admin",
        help="manage users, API keys and instances",
        description="Identity administration against the database (QRUNTIME_DATABASE_URL); no api needed.",
    )
    commands = admin.add_subparsers(dest="admin_command", required=True)
    parsers = {
        name: commands.add_parser(name, help=summary, description=description)
        for name, (summary, description) in COMMANDS.items()
    }
    parsers["create-user"].add_argument("name", help=NAME_HELP)
    parsers["create-user"].add_argument("--admin", action="store_true", help="make the user an administrator")
    parsers["create-key"].add_argument("user", help=USER_HELP)
    parsers["revoke-key"].add_argument(
        "key_id",
        help="the key id, i.e. the middle part of qrt_<id>_<secret> (a whole key is accepted and reduced "
        "to its id; its secret is never printed)",
    )
    parsers["create-instance"].add_argument("name", help=NAME_HELP)
    _add_limit_options(parsers["create-instance"])
    parsers["set-limits"].add_argument("instance", help=INSTANCE_HELP)
    _add_limit_options(parsers["set-limits"])
    parsers["set-limits"].add_argument("--unlimited", action="store_true", help="remove both limits")
    parsers["add-member"].add_argument("instance", help=INSTANCE_HELP)
    parsers["add-member"].add_argument("user", help=USER_HELP)


async def _with_service(settings: Settings, action: Callable[[IdentityService], Awaitable[None]]) -> None:
    engine = create_engine(settings, pool_size=2)
    try:
        await action(IdentityService(settings, create_session_factory(engine)))
    finally:
        await engine.dispose()


def run_admin(settings: Settings, args: argparse.Namespace) -> int:
    command: str = args.admin_command
    if command == "bootstrap":
        return run_bootstrap(settings)

    async def action(identity: IdentityService) -> None:
        if command == "create-user":
            user = await identity.create_user(args.name, "admin" if args.admin else "user")
            print(f"created {user.role} {user.name}")
            print(user.id)
        elif command == "create-key":
            key, plain = await identity.create_key(args.user)
            print(f"API key {key.id} for user {args.user} (shown once; only its hash is stored):")
            print(plain)
        elif command == "revoke-key":
            key = await identity.revoke_key(args.key_id)
            print(f"revoked API key {key.id}")
        elif command == "create-instance":
            created = await identity.create_instance(
                args.name, args.allocation_seconds, args.max_concurrent_jobs
            )
            print(f"created instance {created.name}")
            print(created.crn)
        elif command == "set-limits":
            changes: dict[str, float | int | None] = {
                "usage_allocation_seconds": args.allocation_seconds,
                "max_concurrent_jobs": args.max_concurrent_jobs,
            }
            if not args.unlimited:
                changes = {k: v for k, v in changes.items() if v is not None}
            changed = await identity.set_limits(args.instance, changes)
            print(
                f"{changed.name}: allocation {changed.usage_allocation_seconds} s, "
                f"max concurrent jobs {changed.max_concurrent_jobs}"
            )
        elif command == "add-member":
            inst, user = await identity.add_member(args.instance, args.user)
            print(f"{user.name} is a member of {inst.name}")
        elif command == "list-users":
            for user in await identity.list_users():
                print(f"{user.id}\t{user.name}\t{user.role}\t{'active' if user.active else 'inactive'}")
        elif command == "list-instances":
            for inst in await identity.list_instances():
                print(f"{inst.id}\t{inst.name}\t{inst.crn}")

    try:
        asyncio.run(_with_service(settings, action))
    except QRuntimeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


async def bootstrap(identity: IdentityService) -> str | None:
    """Development only: one admin, one instance and one key. Returns their env lines, or None when
    users exist already."""
    if await identity.has_users():
        return None
    await identity.create_user("admin", "admin")
    instance = await identity.create_instance("default")
    await identity.add_member(instance.name, "admin")
    _, plain = await identity.create_key("admin")
    return f"QRUNTIME_DEV_API_KEY={plain}\nQRUNTIME_DEV_INSTANCE_CRN={instance.crn}\n"


def run_bootstrap(settings: Settings) -> int:
    if settings.environment != "development":
        print(
            "error: bootstrap is for development; use the other admin commands in production", file=sys.stderr
        )
        return 1
    created: list[str | None] = []

    async def action(identity: IdentityService) -> None:
        created.append(await bootstrap(identity))

    asyncio.run(_with_service(settings, action))
    keep_development_secrets(settings)
    if created[0] is not None:
        # Development convenience: the plain key is kept in a private file so a restart can show it again.
        _write_private(DEV_CREDENTIALS, created[0] + _secret_lines(DEV_CREDENTIALS))
        print(_instructions(settings, created[0]))
    elif DEV_CREDENTIALS.exists() and "QRUNTIME_DEV_API_KEY=" in DEV_CREDENTIALS.read_text():
        print(_instructions(settings, DEV_CREDENTIALS.read_text()))
    else:
        print("users exist already; create a key with: qruntime admin create-key <user>")
    return 0


_SECRET_NAMES = ("QRUNTIME_JWT_SECRET", "QRUNTIME_SECRETS_KEY")


def _secret_lines(path: Path) -> str:
    lines = path.read_text().splitlines() if path.exists() else []
    return "".join(line + "\n" for line in lines if line.split("=", 1)[0] in _SECRET_NAMES)


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def keep_development_secrets(settings: Settings) -> None:
    """Random JWT and encryption secrets, generated once into the development env file (unless the
    environment configures them), so every process started here signs and decrypts alike."""
    configured = {"QRUNTIME_JWT_SECRET": settings.jwt_secret, "QRUNTIME_SECRETS_KEY": settings.secrets_key}
    text = DEV_CREDENTIALS.read_text() if DEV_CREDENTIALS.exists() else ""
    present = {line.split("=", 1)[0] for line in text.splitlines()}
    missing = [name for name in _SECRET_NAMES if configured[name] is None and name not in present]
    if missing:
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join(f"{name}={secrets.token_urlsafe(48)}\n" for name in missing)
        _write_private(DEV_CREDENTIALS, text)


def _instructions(settings: Settings, env: str) -> str:
    values = dict(line.split("=", 1) for line in env.splitlines() if "=" in line)
    key, crn = values.get("QRUNTIME_DEV_API_KEY", ""), values.get("QRUNTIME_DEV_INSTANCE_CRN", "")
    base = server_url(settings)
    exports = "".join(f"  {line}\n" for line in render_exports(client_variables(base, key, crn)).splitlines())
    return f"""
Development credentials (administrator 'admin', instance 'default'; also in {DEV_CREDENTIALS}):
  API key:      {key}
  Instance CRN: {crn}
curl:
  curl -H "Authorization: apikey {key}" {base}/api/v1/instances/usage
Qiskit (qiskit-ibm-runtime >= 0.49) needs these five variables; `make run` also writes them to
{CLIENT_ENV_FILE}. In the shell that runs Qiskit: source {CLIENT_ENV_FILE} && .venv/bin/qruntime doctor
{exports}"""
