"""The Dockerfile, checked without a Docker engine: pinned base images, a multi-stage build that installs
the tested versions, a non-root user, the `qruntime` entrypoint, a working health check, and nothing
secret in the image (the build context is an allow-list)."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE|CREDENTIAL", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for the shell form."""
        try:
            parsed = json.loads(self.value)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, list) else None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages. Follows the Dockerfile reference: parser directives and
    comments are whole lines starting with #, a trailing backslash continues the line."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, value = line.strip().partition(" ")
        instruction = Instruction(keyword.upper(), value.strip())
        assert "<<" not in instruction.value or instruction.keyword != "RUN", "heredocs are not parsed here"
        if instruction.keyword == "FROM":
            base, _, alias = re.sub(r"--platform=\S+\s*", "", instruction.value).partition(" AS ")
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], base.strip())
            stages.append(Stage(base, alias.strip() or None, []))
        elif not stages:
            assert instruction.keyword == "ARG", f"{instruction.keyword} before the first FROM"
            name, _, default = instruction.value.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append(instruction)
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())[1]


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


# ---------------------------------------------------------------------------------------------------
# .dockerignore, with the matching rules of BuildKit: last matching pattern wins, `!` re-includes, a
# pattern that matches a directory matches everything below it, `**` spans directories.


def ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((negated, re.compile(regex)))
    return patterns


def is_ignored(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negated, regex in patterns:
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negated
    return ignored


def context_files(source: str) -> Iterator[str]:
    path = ROOT / source
    if path.is_file():
        yield source
        return
    for directory, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for file in files:
            yield str((Path(directory) / file).relative_to(ROOT))


def copy_sources(instruction: Instruction) -> list[str]:
    words = [w for w in instruction.value.split() if not w.startswith("--")]
    return words[:-1]


# ---------------------------------------------------------------------------------------------------


def test_every_base_image_is_pinned(stages: list[Stage]) -> None:
    names = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.base in names:
            continue
        image = stage.base.split("@")[0].rsplit("/", 1)[-1]
        tag = image.partition(":")[2]
        assert "@sha256:" in stage.base or re.match(r"\d+\.\d+\.\d+", tag), f"unpinned base {stage.base}"
        assert tag != "latest"


def test_the_build_is_multi_stage_and_the_image_gets_no_build_context(
    stages: list[Stage], runtime: Stage
) -> None:
    assert len(stages) >= 2
    for copy in runtime.all("COPY"):
        # Only the finished virtualenv moves over: nothing from the build context lands in the image.
        assert re.search(r"--from=\w+", copy.value), copy.value
    assert not runtime.all("ADD")


def test_dependencies_install_at_the_tested_versions(stages: list[Stage]) -> None:
    installs = [r.value for s in stages for r in s.all("RUN") if "pip install" in r.value]
    assert installs and all("-c constraints.txt" in r for r in installs), installs
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", requirement)[0]).lower()
        assert name in pins, f"{name} is not pinned in constraints.txt: the image would float"
    assert project["scripts"]["qruntime"] == "services.cli:main"


def test_it_runs_as_a_non_root_user_the_cluster_expects(runtime: Stage) -> None:
    users = runtime.all("USER")
    assert users, "no USER: the image would run as root"
    user = users[-1].value.split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit(), "a numeric uid lets Kubernetes verify runAsNonRoot"
    last_user = max(i for i, ins in enumerate(runtime.instructions) if ins.keyword == "USER")
    assert not [i for i in runtime.instructions[last_user:] if i.keyword == "RUN"], "RUN after USER"
    uids = set()
    for manifest in (ROOT / "deploy" / "k8s" / "base").rglob("*.yaml"):
        for doc in yaml.safe_load_all(manifest.read_text()):
            spec = (doc or {}).get("spec", {}).get("template", {}).get("spec", {})
            if "runAsUser" in spec.get("securityContext", {}):
                uids.add(str(spec["securityContext"]["runAsUser"]))
    assert uids == {user}, f"Kubernetes runs the pods as {uids}, the image as {user}"


def test_the_entrypoint_is_qruntime_and_the_default_command_is_real(
    runtime: Stage, parse_qruntime_args: Callable[[list[str]], Any]
) -> None:
    (entrypoint,) = runtime.all("ENTRYPOINT")
    argv = entrypoint.exec_form()
    assert argv, "exec form, so that signals reach the process"
    assert argv[-1] == "qruntime", argv
    if argv[0] == "tini":
        assert argv[1:] == ["--", "qruntime"], "tini must signal qruntime alone, not the simulator child"
    cmd = runtime.all("CMD")[-1].exec_form()
    assert cmd is not None
    parse_qruntime_args(cmd)


def test_no_secret_is_baked_in(stages: list[Stage], setting_env_names: set[str]) -> None:
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.keyword in ("ENV", "ARG"):
                for name in re.findall(r"(?:^|\s)(\w+)=", instruction.value):
                    assert not SECRET_NAME.search(name), f"{instruction.keyword} {name}"
                    if name.startswith("QRUNTIME_"):
                        assert name in setting_env_names, name
                        assert name not in ("QRUNTIME_DATABASE_URL", "QRUNTIME_AMQP_URL"), "credentials"
                assert not re.search(r"://[^/\s]*:[^/\s]*@", instruction.value), "a URL with a password"
            if instruction.keyword == "ADD":
                assert "://" not in instruction.value, "ADD from a URL is unverified"
            if instruction.keyword in ("COPY", "ADD") and "--from=" not in instruction.value:
                for source in copy_sources(instruction):
                    assert not re.search(r"\.env|\.pem|\.key|id_rsa|secret|credential", source), source


def test_the_build_context_holds_what_is_copied_and_nothing_secret(stages: list[Stage]) -> None:
    patterns = ignore_patterns()
    sources = [
        src for s in stages for c in s.all("COPY") if "--from=" not in c.value for src in copy_sources(c)
    ]
    assert sources
    for source in sources:
        files = list(context_files(source.rstrip("/")))
        assert files, f"COPY {source}: no such file in the repository"
        for file in files:
            assert not is_ignored(file, patterns), f"COPY {source} needs {file}, which .dockerignore drops"
    for unwanted in (
        ".env",
        "shared/.env",
        ".git/config",
        ".venv/bin/python",
        "tests/deploy/conftest.py",
        "deploy/k8s/base/secrets.example.yaml",
        "docker-compose.yml",
        "tls/server.key",
        "services/cert.pem",
        "shared/__pycache__/settings.cpython-311.pyc",
    ):
        assert is_ignored(unwanted, patterns), f"{unwanted} would be sent to the builder"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_health_check_probes_the_right_port(runtime: Stage, health_server: int) -> None:
    """Run the HEALTHCHECK command here as the engine would: healthy on whichever port serves /healthz."""
    (check,) = runtime.all("HEALTHCHECK")
    argv = Instruction("CMD", check.value.split(" CMD ", 1)[1].strip()).exec_form()
    assert argv and argv[0] == "python", "exec form, with the image's own python"

    def run(env: dict[str, str]) -> int:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("QRUNTIME_")}
        return subprocess.run([sys.executable, *argv[1:]], env={**clean, **env}, timeout=30).returncode

    closed = str(_free_port())
    # scheduler and executor: QRUNTIME_HEALTH_PORT; the api: QRUNTIME_API_PORT.
    assert run({"QRUNTIME_HEALTH_PORT": str(health_server), "QRUNTIME_API_PORT": closed}) == 0
    assert run({"QRUNTIME_API_PORT": str(health_server)}) == 0
    assert run({"QRUNTIME_API_PORT": closed}) == 1
    assert run({"QRUNTIME_HEALTH_PORT": closed, "QRUNTIME_API_PORT": closed}) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_image_exposes_the_ports_the_settings_use(runtime: Stage) -> None:
    exposed = {int(p.split("/")[0]) for e in runtime.all("EXPOSE") for p in e.value.split()}
    env = " ".join(e.value for e in runtime.all("ENV"))
    assert re.search(r"QRUNTIME_API_HOST=0\.0\.0\.0", env), "listen beyond the container's loopback"
    api_port = re.search(r"QRUNTIME_API_PORT=(\d+)", env)
    assert api_port, "the image sets the api port it exposes"
    assert {int(api_port[1]), 9000} <= exposed
