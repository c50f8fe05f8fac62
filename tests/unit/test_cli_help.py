"""Every `qruntime` command, admin subcommand and option explains itself in --help."""

import argparse

from services.cli.main import build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


def test_every_command_and_option_has_help() -> None:
    parser = build_parser()
    commands = _subparsers(parser)
    assert {"migrate", "api", "scheduler", "executor", "up", "status", "client-env", "doctor"} <= set(
        commands
    )
    assert {"admin revoke-key", "admin set-limits", "admin create-key"} <= set(commands)
    problems = []
    for name, sub in commands.items():
        if not (sub.description or "").strip():
            problems.append(f"{name}: no description")
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not (action.help or "").strip():
                problems.append(f"{name} {'/'.join(action.option_strings) or action.dest}: no help")
    assert not problems, problems


def test_limits_say_their_units() -> None:
    limits = _subparsers(build_parser())["admin set-limits"].format_help()
    assert "seconds per" in limits and "SECONDS" in limits and "JOBS" in limits
    assert "middle part of qrt_<id>_<secret>" in _subparsers(build_parser())["admin revoke-key"].format_help()
