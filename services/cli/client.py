"""`qruntime client-env` and `qruntime doctor`: point the official client at this server, and check it.

The official `qiskit-ibm-runtime` client needs five environment variables to talk to qruntime; each
one it lacks fails late and far from its cause (a hang, an empty backend list, "invalid token").
`client-env` prints all five; `doctor` resolves the account exactly as the client does, runs the
client's own token handshake and backend discovery, and names the first thing that is wrong.
"""

import argparse
import json
import os
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from shared.kit.settings import Settings

# The development bootstrap's credentials (`qruntime admin bootstrap`), and the client's variables.
DEV_CREDENTIALS = Path(".qruntime-dev.env")
CLIENT_ENV_FILE = Path(".qruntime-client.env")
EXPERIMENTAL_PATH = "/experimental/api/v1"
HTTP_TIMEOUT = 10.0
CLIENT_TIMEOUT = 60.0


# --- client-env -------------------------------------------------------------------------------


def server_url(settings: Settings) -> str:
    host = settings.api_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.api_port}"


def client_variables(base_url: str, api_key: str, instance_crn: str) -> dict[str, str]:
    """Every variable the official client reads to work against the qruntime server at base_url."""
    base = base_url.rstrip("/")
    return {
        # The client fetches its token from $IAM_URL/identity/token (default: IBM Cloud's).
        "IAM_URL": base,
        # Skips IBM Cloud's instance lookup, which knows nothing of qruntime's instances.
        "QISKIT_FUNCTIONS_EXPERIMENTAL": "1",
        # The client keeps a URL unchanged only when it contains "experimental".
        "QISKIT_IBM_URL": base + EXPERIMENTAL_PATH,
        "QISKIT_IBM_TOKEN": api_key,
        "QISKIT_IBM_INSTANCE": instance_crn,
    }


def render_exports(variables: Mapping[str, str]) -> str:
    return "".join(f"export {name}={value}\n" for name, value in variables.items())


def dev_credentials(path: Path = DEV_CREDENTIALS) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def run_client_env(settings: Settings, args: argparse.Namespace) -> int:
    stored = dev_credentials()
    key = args.key or os.environ.get("QRUNTIME_API_KEY") or stored.get("QRUNTIME_DEV_API_KEY")
    crn = args.instance or stored.get("QRUNTIME_DEV_INSTANCE_CRN")
    if not key or not crn:
        missing = " and ".join(what for what, value in (("--key", key), ("--instance", crn)) if not value)
        print(
            f"qruntime client-env: give {missing} (no development credentials in {DEV_CREDENTIALS}; "
            "create a key with `qruntime admin create-key USER`, find the CRN with "
            "`qruntime admin list-instances`)",
            file=sys.stderr,
        )
        return 2
    text = render_exports(client_variables(args.url or server_url(settings), key, crn))
    if args.output:
        target = Path(args.output)
        # The file holds an API key: readable only by its owner, from its first byte.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(target, 0o600)
        print(f"wrote the client's variables to {target}; load them with: source {target}")
    else:
        sys.stdout.write(text)
    return 0


# --- doctor -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnosis:
    ok: bool
    message: str
    # Stable name of the check that failed (or "ok"), for scripts and tests.
    cause: str


class Problem(Exception):
    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _key_hint(key: str) -> str:
    """A key named without its secret: qrt_<id>_…"""
    parts = key.split("_")
    if len(parts) >= 3 and parts[0] == "qrt":
        return f"qrt_{parts[1]}_…"
    return "(not of the form qrt_<id>_<secret>)"


def _errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _resolve_account(env: Mapping[str, str]) -> Any:
    from qiskit_ibm_runtime.accounts import AccountManager

    try:
        return AccountManager.get()
    except Exception as exc:
        raise Problem(
            "no_account",
            "The client finds no account (neither QISKIT_IBM_TOKEN nor a saved account): run "
            '`source .qruntime-client.env` after `make run`, or `eval "$(.venv/bin/qruntime client-env)"`.',
        ) from exc


def _check_variables(env: Mapping[str, str], account: Any) -> str:
    url = account.url or ""
    if not url:
        raise Problem(
            "url_missing",
            "QISKIT_IBM_URL is not set (nor a url in the saved account), so the client talks to IBM "
            f"Quantum instead of qruntime: set it to http://<server>{EXPERIMENTAL_PATH}.",
        )
    origin = _origin(url)
    if "experimental" not in url:
        raise Problem(
            "url_not_experimental",
            f'QISKIT_IBM_URL={url} does not contain "experimental", so the client rewrites it to an '
            'IBM Cloud address and ends in "No backend matches the criteria": use '
            f"QISKIT_IBM_URL={origin}{EXPERIMENTAL_PATH}.",
        )
    if not env.get("IAM_URL"):
        raise Problem(
            "iam_url_missing",
            "IAM_URL is not set, so the client asks IBM Cloud's token service for a token (sending "
            "your qruntime key there), falls back to the bare key and then stalls 60 s before every "
            f"later request (job.result() seems to hang): export IAM_URL={origin}.",
        )
    if not env.get("QISKIT_FUNCTIONS_EXPERIMENTAL"):
        raise Problem(
            "functions_experimental_missing",
            "QISKIT_FUNCTIONS_EXPERIMENTAL is not set, so the client looks your instance up in IBM "
            "Cloud's catalog and reports your API token as invalid although it is not: "
            "export QISKIT_FUNCTIONS_EXPERIMENTAL=1.",
        )
    if not account.instance:
        raise Problem(
            "instance_missing",
            "QISKIT_IBM_INSTANCE is not set (nor an instance in the saved account): set it to your "
            "instance's CRN (`qruntime admin list-instances` shows it).",
        )
    return origin


def _check_server(url: str) -> None:
    try:
        response = httpx.get(url.rstrip("/") + "/backends", timeout=HTTP_TIMEOUT)
    except httpx.HTTPError as exc:
        raise Problem(
            "server_unreachable",
            f"Nothing answers at QISKIT_IBM_URL={url} ({type(exc).__name__}): start the server "
            "(`make run` or `qruntime up`) or correct the address.",
        ) from exc
    if response.status_code != 401 or not _errors_of(response):
        raise Problem(
            "not_qruntime",
            f"QISKIT_IBM_URL={url} answers, but not as the qruntime API (GET /backends without a "
            f"token gave HTTP {response.status_code}): check host, port and path.",
        )


def _client_token(env: Mapping[str, str], account: Any, origin: str) -> str:
    """The client's own IAM handshake: its authenticator, its token manager, its request."""
    from ibm_cloud_sdk_core import ApiException

    iam_url = env["IAM_URL"]
    manager = account.get_iam_authentificator().token_manager
    manager.http_config = {"timeout": HTTP_TIMEOUT}
    try:
        return str(manager.request_token()["access_token"])
    except ApiException as exc:
        body = exc.http_response
        codes = []
        if body is not None:
            codes = [
                e.get("code") for e in _errors_of(httpx.Response(body.status_code, content=body.content))
            ]
        if 3201 in codes or (exc.status_code == 401 and codes):
            raise Problem(
                "invalid_key",
                f"The API key {_key_hint(account.token)} (QISKIT_IBM_TOKEN or the saved account's "
                "token) is not valid on this server or was revoked (the client would wait about 60 s "
                "and then list no backend): create one with `qruntime admin create-key USER`.",
            ) from exc
        raise Problem(
            "iam_url_not_qruntime",
            f"IAM_URL={iam_url} did not hand out a token (HTTP {exc.status_code} on "
            f"{iam_url.rstrip('/')}/identity/token): it must be the qruntime server, IAM_URL={origin}.",
        ) from exc
    except Exception as exc:
        raise Problem(
            "iam_url_unreachable",
            f"IAM_URL={iam_url} does not answer ({type(exc).__name__}): it must be the qruntime "
            f"server, IAM_URL={origin}.",
        ) from exc


def _check_instance(url: str, token: str, crn: str, env: Mapping[str, str]) -> None:
    response = httpx.get(
        url.rstrip("/") + "/instances/usage",
        headers={"Authorization": f"Bearer {token}", "Service-CRN": crn},
        timeout=HTTP_TIMEOUT,
    )
    if response.status_code == 401:
        raise Problem(
            "servers_differ",
            f"The token from IAM_URL={env['IAM_URL']} is not accepted at QISKIT_IBM_URL={url}: both "
            "must name the same qruntime server.",
        )
    if response.status_code == 403:
        raise Problem(
            "instance_not_allowed",
            f"QISKIT_IBM_INSTANCE={crn} is not an instance the key's user belongs to: use a CRN from "
            "`qruntime admin list-instances` (and `qruntime admin add-member INSTANCE USER`).",
        )
    if response.status_code != 200:
        raise Problem(
            "server_refused",
            f"The server refused the client's usage check (HTTP {response.status_code}): "
            f"{'; '.join(str(e.get('message')) for e in _errors_of(response)) or response.text[:200]}",
        )


def _within(seconds: float, call: Callable[[], Any]) -> Any:
    """Run call in a daemon thread; a client that stalls is reported instead of hanging the doctor."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {seconds:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _client_backends() -> list[str]:
    from qiskit_ibm_runtime import QiskitRuntimeService

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        service = QiskitRuntimeService()
        return sorted(backend.name for backend in service.backends())


def diagnose(env: Mapping[str, str] | None = None) -> Diagnosis:
    """Check the official client's configuration against the server it names; first problem wins."""
    env = os.environ if env is None else env
    try:
        account = _resolve_account(env)
        origin = _check_variables(env, account)
        _check_server(account.url)
        token = _client_token(env, account, origin)
        _check_instance(account.url, token, account.instance, env)
        try:
            names = _within(CLIENT_TIMEOUT, _client_backends)
        except Exception as exc:
            raise Problem("client_failed", f"The client itself failed: {type(exc).__name__}: {exc}") from exc
        if not names:
            raise Problem(
                "no_backends",
                "The client connects but sees no backend: check QRUNTIME_BACKENDS and that executors run.",
            )
    except Problem as problem:
        return Diagnosis(False, problem.message, problem.cause)
    from qiskit_ibm_runtime import __version__ as client_version

    return Diagnosis(
        True,
        f"OK: qiskit-ibm-runtime {client_version} got a token from {env['IAM_URL']} and sees "
        f"{', '.join(names)} at {account.url}.",
        "ok",
    )


def run_doctor(_: Settings, args: argparse.Namespace) -> int:
    diagnosis = diagnose()
    if args.json:
        print(json.dumps({"ok": diagnosis.ok, "cause": diagnosis.cause, "message": diagnosis.message}))
    else:
        print(diagnosis.message, file=sys.stdout if diagnosis.ok else sys.stderr)
    return 0 if diagnosis.ok else 1


def add_client_parsers(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    env = sub.add_parser(
        "client-env",
        help="print the environment variables the official Qiskit client needs for this server",
        description=(
            "Print `export` lines for IAM_URL, QISKIT_FUNCTIONS_EXPERIMENTAL, QISKIT_IBM_URL, "
            "QISKIT_IBM_TOKEN and QISKIT_IBM_INSTANCE. Without --key/--instance it uses the development "
            f"credentials of `make run` ({DEV_CREDENTIALS}). "
            'Example: eval "$(.venv/bin/qruntime client-env)"'
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    env.add_argument("--key", help="API key to export (qrt_<id>_<secret>; default: the development key)")
    env.add_argument("--instance", help="instance CRN to export (default: the development instance's CRN)")
    env.add_argument(
        "--url",
        help="server address as the client reaches it, e.g. http://qruntime.lab:8000 "
        "(default: http://QRUNTIME_API_HOST:QRUNTIME_API_PORT)",
    )
    env.add_argument(
        "--output",
        metavar="FILE",
        help=f"write the lines to FILE (mode 0600) instead of printing them, e.g. {CLIENT_ENV_FILE}",
    )
    doctor = sub.add_parser(
        "doctor",
        help="check the official client's configuration against the server and name the first problem",
        description=(
            "Resolve the account as qiskit-ibm-runtime does (QISKIT_IBM_* variables or the saved "
            "account), check IAM_URL and QISKIT_FUNCTIONS_EXPERIMENTAL, run the client's token "
            "handshake and backend discovery, and print the first thing that is wrong in one "
            "sentence (exit status 1), or OK (exit status 0). Example: source .qruntime-client.env "
            "&& .venv/bin/qruntime doctor"
        ),
    )
    doctor.add_argument("--json", action="store_true", help="print {ok, cause, message} as JSON")
