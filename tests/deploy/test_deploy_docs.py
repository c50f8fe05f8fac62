"""docs/deploy.md: every command it shows is one the repository supports (make run|test, a qruntime
subcommand, kubectl apply -k / kubectl kustomize of a kustomization here, docker compose up), every
path it names exists, and it covers the whole journey: compose, dev, prod, backends, scaling, upgrade."""

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"
SHELL_LANGUAGES = {"", "sh", "bash", "shell", "console"}
# Programs a reader might be told to run; any inline code starting with one is checked as a command.
PROGRAMS = {"make", "qruntime", "kubectl", "docker", "docker-compose", "helm", "kind", "minikube", "pip"}
COMPOSE_UP_FLAGS = {"--build", "-d", "--detach", "--wait", "--remove-orphans"}
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    blocks = []
    for match in FENCE.finditer(text):
        body = "\n".join(line[len(match["indent"]) :] for line in match["body"].splitlines())
        blocks.append((match["lang"], body))
    return blocks


def command_lines(body: str) -> list[str]:
    """The commands of a shell block: prompts stripped, continuations joined, && and ; split."""
    joined = re.sub(r"\\\n", " ", body)
    commands = []
    for line in joined.splitlines():
        line = line.strip().removeprefix("$ ")
        if line and not line.startswith("#"):
            commands += [c.strip() for c in re.split(r"&&|;", line) if c.strip()]
    return commands


def is_tree(body: str) -> bool:
    """A directory listing, not commands."""
    return body.lstrip().startswith(("deploy/", "./")) and not body.lstrip().startswith("./qruntime")


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.M))


def kustomization_dir(path: str) -> bool:
    return (ROOT / path / "kustomization.yaml").is_file()


def label_exists(selector: str) -> bool:
    key, _, value = selector.partition("=")
    return any(
        f"{key}: {value}" in manifest.read_text() for manifest in (ROOT / "deploy" / "k8s").rglob("*.yaml")
    )


def check_command(
    command: str, parse_qruntime_args: Callable[[list[str]], Any], setting_names: set[str]
) -> None:
    words = shlex.split(command)
    while words and re.fullmatch(r"\w+=.*", words[0]):  # VAR=value before the command
        name = words.pop(0).split("=", 1)[0]
        assert not name.startswith("QRUNTIME_") or name in setting_names, f"{name} is not a setting"
    assert words, command
    program, args = words[0], words[1:]
    if program == "make":
        assert args in (["run"], ["test"]), f"`{command}`: the Makefile's commands are make run and make test"
        assert args[0] in makefile_targets()
    elif program == "qruntime":
        parse_qruntime_args(args)
    elif program == "kubectl":
        if args[:1] == ["kustomize"]:
            assert len(args) == 2 and kustomization_dir(args[1]), f"`{command}`: no kustomization there"
        else:
            assert args[:2] == ["apply", "-k"] and len(args) >= 3, f"`{command}` is not supported here"
            assert kustomization_dir(args[2]), f"`{command}`: no kustomization at {args[2]}"
            rest = args[3:]
            while rest:
                flag = rest.pop(0)
                assert flag in ("-l", "--selector"), f"`{command}`: unexpected {flag}"
                assert label_exists(rest.pop(0)), f"`{command}`: no manifest carries that label"
    elif program == "docker":
        assert args[:2] == ["compose", "up"], f"`{command}`: only docker compose up is supported"
        assert set(args[2:]) <= COMPOSE_UP_FLAGS, f"`{command}`: unexpected flags"
    else:
        pytest.fail(f"`{command}` is not a command this repository supports")


@pytest.fixture(scope="module")
def text() -> str:
    return DOC.read_text()


def test_every_command_in_a_code_block_is_supported(
    text: str, parse_qruntime_args: Callable[[list[str]], Any], setting_env_names: set[str]
) -> None:
    checked = 0
    for lang, body in fenced_blocks(text):
        if lang in ("yaml", "yml"):
            assert yaml.safe_load(body) is not None, "a YAML example must parse"
            continue
        assert lang in SHELL_LANGUAGES, f"unexpected code block language {lang!r}"
        if is_tree(body):
            continue
        for command in command_lines(body):
            check_command(command, parse_qruntime_args, setting_env_names)
            checked += 1
    assert checked >= 4


def test_every_command_in_inline_code_is_supported(
    text: str, parse_qruntime_args: Callable[[list[str]], Any], setting_env_names: set[str]
) -> None:
    prose = FENCE.sub("", text)
    for code in re.findall(r"`([^`\n]+)`", prose):
        words = code.split()
        if len(words) > 1 and words[0] in PROGRAMS:
            check_command(code, parse_qruntime_args, setting_env_names)


def test_every_path_named_exists(text: str) -> None:
    prose = FENCE.sub("", text)
    for code in re.findall(r"`([^`\s]+)`", prose):
        if re.fullmatch(r"(deploy|docs|tests|shared|services)/[\w./-]+", code):
            assert (ROOT / code).exists(), f"docs/deploy.md names {code}, which does not exist"
        if re.fullmatch(r"[\w-]+\.ya?ml|Dockerfile|\.dockerignore|constraints\.txt|pyproject\.toml", code):
            assert list(ROOT.glob(f"**/{code}")), f"docs/deploy.md names {code}, which does not exist"
    tree = next(body for _, body in fenced_blocks(text) if is_tree(body))
    parents: list[str] = []
    for line in tree.splitlines():
        entry = line.split()[0] if line.strip() else ""
        if not entry or "<" in entry:
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        parents = [*parents[:depth], entry.rstrip("/")]
        assert (ROOT / "/".join(parents)).exists(), f"the layout lists {'/'.join(parents)}"


def test_it_covers_the_whole_journey(text: str) -> None:
    commands = [
        c for lang, body in fenced_blocks(text) if lang in SHELL_LANGUAGES for c in command_lines(body)
    ]
    assert any(c.startswith("docker compose up") for c in commands)
    assert "kubectl apply -k deploy/k8s/overlays/dev" in commands
    assert "kubectl apply -k deploy/k8s/overlays/prod" in commands
    headings = [h.lower() for h in re.findall(r"^#+ (.+)$", text, re.M)]
    for topic in ("docker compose", "prerequisites", "add a backend", "scale", "upgrade"):
        assert any(topic in h for h in headings), f"no section on {topic}"
    # Upgrade: the migration is applied, alone, before the rest.
    upgrade = text[text.lower().index("# upgrade") :]
    migrate_step = upgrade.index("-l qruntime.io/release-step=migrate")
    full_apply = upgrade.index("kubectl apply -k deploy/k8s/overlays/prod\n")
    assert migrate_step < full_apply
