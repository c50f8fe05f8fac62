"""Shared helpers of the deployment tests: the repository root, the settings class and the CLI."""

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from services.cli.main import build_parser
from shared.kit.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def setting_env_names() -> set[str]:
    """Every environment variable the settings class reads: QRUNTIME_<FIELD>."""
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


@pytest.fixture(scope="session")
def settings_from_env() -> Callable[[dict[str, str]], Settings]:
    """Build Settings from QRUNTIME_* variables the way a process would, ignoring any local .env."""
    prefix = Settings.model_config.get("env_prefix", "").upper()

    def build(env: dict[str, str]) -> Settings:
        values = {k[len(prefix) :].lower(): v for k, v in env.items() if k.upper().startswith(prefix)}
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@pytest.fixture(scope="session")
def parse_qruntime_args() -> Callable[[list[str]], argparse.Namespace]:
    """Parse the arguments after `qruntime`; fail the test (not exit) when they are not a real command."""
    parser = build_parser()

    def parse(argv: list[str]) -> argparse.Namespace:
        try:
            return parser.parse_args([str(a) for a in argv])
        except SystemExit:
            pytest.fail(f"`qruntime {' '.join(map(str, argv))}` is not a qruntime command")

    return parse
