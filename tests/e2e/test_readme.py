"""Every command in the README's code blocks runs as written.

Blocks are read from README.md in order. The line before a block may mark it:

    <!-- readme-test: server -->            runs against a running stack (tests/stack.py)
    <!-- readme-test: skip (the reason) -->  not run; the reason is required

Unmarked shell blocks must run without a server. Server blocks run in one scratch directory, in
README order (a later block may read a file an earlier one wrote), with `.venv`, `examples` and
`bench` linked from the checkout and a `.qruntime-client.env` for the stack's user, as `make run`
writes it; the README's address http://127.0.0.1:8000 is replaced by the stack's, and its example
user and instance names by names no other test uses. Python blocks run with the project's interpreter.
"""

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.cli.client import client_variables, render_exports
from tests.stack import ROOT, Stack

README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!-- readme-test: (server|skip \((?P<reason>[^)]+)\)) -->$")
SHELL = {"", "sh", "bash", "shell"}


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    mode: str  # "offline", "server" or "skip"
    reason: str
    text: str

    @property
    def name(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks() -> list[Block]:
    lines = README.read_text().splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if opened is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        marker = MARKER.match(previous.strip())
        mode, reason = "offline", ""
        if marker is not None:
            mode = "server" if marker.group(1) == "server" else "skip"
            reason = marker.group("reason") or ""
        blocks.append(
            Block(index + 1, opened.group(1), mode, reason, "\n".join(lines[index + 1 : end]) + "\n")
        )
        index = end + 1
    return blocks


BLOCKS = [b for b in readme_blocks() if b.language in SHELL or b.language == "python"]


def test_every_block_is_run_or_skipped_with_a_reason() -> None:
    assert len(BLOCKS) >= 8
    for block in BLOCKS:
        if block.mode == "skip":
            assert len(block.reason) > 10, f"{block.name}: say why it is skipped"
        if block.language == "python":
            assert block.mode != "offline", f"{block.name}: mark python blocks server or skip"
    assert any(b.mode == "server" for b in BLOCKS)


def run(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if block.language == "python":
        command = [str(ROOT / ".venv" / "bin" / "python"), "-c", block.text]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", block.text]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mode == "offline"], ids=lambda b: b.name)
def test_offline_block_runs(block: Block, tmp_path: Path) -> None:
    done = run(block, ROOT, {**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def sandbox(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    home = tmp_path_factory.mktemp("readme")
    for name in (".venv", "examples", "bench"):
        (home / name).symlink_to(ROOT / name)
    account = stack.accounts["alice"]
    (home / ".qruntime-client.env").write_text(
        render_exports(client_variables(stack.url, account.api_key, account.instance_crn))
    )
    env = {k: v for k, v in stack.env.items() if not k.startswith(("QISKIT_", "IAM_"))}
    env.update({"HOME": str(home)})
    yield home, env


# The README's example user and instance, renamed so that the shared stack's other users are untouched.
README_NAMES = {"carol": "readme-carol", "lab-c": "readme-lab-c"}


def for_stack(block: Block, stack: Stack) -> Block:
    text = block.text.replace("http://127.0.0.1:8000", stack.url).replace("localhost:8000", stack.url)
    for name, unique in README_NAMES.items():
        text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", unique, text)
    return Block(block.line, block.language, block.mode, block.reason, text)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mode == "server"], ids=lambda b: b.name)
def test_server_block_runs(block: Block, stack: Stack, sandbox: tuple[Path, dict[str, str]]) -> None:
    home, env = sandbox
    if block.language == "python":
        # Python blocks run in the shell that sourced .qruntime-client.env.
        for line in (home / ".qruntime-client.env").read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env = {**env, name: value}
    done = run(for_stack(block, stack), home, env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert '"errors"' not in done.stdout, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
