"""The ``ttdnet`` command line: ``ttdnet <command> [options]``.

Commands are :class:`Command` objects. The core's own live in :mod:`ttdnet.commands`; the packages that
build on the core (``ttdnet.stages``, ``ttdnet.eval``, ``ttdnet.preprocessing``) register theirs as entry
points in the ``ttdnet.commands`` group of ``pyproject.toml``, so the core never imports them. A command
module must be cheap to import: heavy imports belong inside its ``run`` function, which keeps
``ttdnet --help`` fast.
"""

import argparse
import contextlib
import dataclasses
import difflib
import json
import os
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from ttdnet import __version__
from ttdnet.config import ConfigParser
from ttdnet.errors import TtdnetError


ENTRY_POINT_GROUP = "ttdnet.commands"


@dataclasses.dataclass(frozen=True)
class Command:
    """One ``ttdnet`` subcommand.

    Attributes
    ----------
    name : str
        What the user types after ``ttdnet``: one word, or two words for a command in a group
        ("preprocess edf"; ``ttdnet preprocess --help`` lists the group).
    summary : str
        One line for ``ttdnet --help``.
    config_class : dataclass type
        Its options; see :class:`ttdnet.config.ConfigParser`.
    run : callable
        ``run(config, namespace) -> int | None``; the return value is the exit status (None means 0).
    description : str
        Longer text for ``ttdnet <name> --help``.
    add_arguments : callable, optional
        ``add_arguments(parser)`` adds arguments that are not config fields (positionals).
    """

    name: str
    summary: str
    config_class: type
    run: Callable[[Any, argparse.Namespace], int | None]
    description: str = ""
    add_arguments: Callable[[ConfigParser], None] | None = None


def _core_commands() -> list[Command]:
    from ttdnet.commands import env, info, simulate

    return [env.COMMAND, info.COMMAND, simulate.COMMAND]


def available_commands() -> dict[str, Command]:
    """Every registered command by name: the core's, then those of installed entry points."""
    commands = {command.name: command for command in _core_commands()}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        command = entry_point.load()
        if not isinstance(command, Command):
            raise TypeError(
                f"entry point {entry_point.value!r} in group {ENTRY_POINT_GROUP!r} is not a ttdnet Command"
            )
        commands[command.name] = command
    return commands


def _overview(commands: dict[str, Command]) -> str:
    width = max(len(name) for name in commands)
    lines = [
        "usage: ttdnet <command> [options]",
        "",
        "EEG-to-image toolkit for THINGS-EEG2. Run `ttdnet <command> --help` for a command's options.",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {command.summary}" for name, command in commands.items()]
    lines += ["", "options:", "  -h, --help  show this message", "  --version   print the ttdnet version"]
    return "\n".join(lines)


def build_parser(command: Command) -> ConfigParser:
    """The argument parser of one command (also used by tests and the docs)."""
    parser = ConfigParser(
        command.config_class,
        prog=f"ttdnet {command.name}",
        description=command.description or command.summary,
    )
    if command.add_arguments is not None:
        command.add_arguments(parser)
    return parser


def _group_overview(group: str, commands: dict[str, Command]) -> str:
    members = {name: command for name, command in commands.items() if name.split()[0] == group}
    width = max(len(name) for name in members)
    lines = [f"usage: ttdnet {group} <subcommand> [options]", "", "subcommands:"]
    lines += [f"  {name.ljust(width)}  {command.summary}" for name, command in members.items()]
    lines += ["", f"Run `ttdnet {group} <subcommand> --help` for a subcommand's options."]
    return "\n".join(lines)


def _resolve(argv: list[str], commands: dict[str, Command]) -> tuple[str | None, list[str]]:
    """Split ``argv`` into the longest registered command name it starts with and the remaining arguments.

    A command may be registered under a two-word name ("preprocess edf"); it is typed as two words.
    """
    if len(argv) >= 2 and f"{argv[0]} {argv[1]}" in commands:
        return f"{argv[0]} {argv[1]}", argv[2:]
    if argv[0] in commands:
        return argv[0], argv[1:]
    return None, argv[1:]


def _report_to_launcher(message: str) -> None:
    """Hand the one-line error to a ``torchrun`` / ``accelerate launch`` multi-process launcher.

    The launcher ends a failed run with its own report; torch elastic reads each worker's
    ``TORCHELASTIC_ERROR_FILE`` and shows that message as the failure's ``traceback``, so the user's error is
    what the report's last block says instead of a link to the elastic documentation.
    """
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        with contextlib.suppress(OSError):
            Path(path).write_text(json.dumps({"message": message, "timestamp": int(time.time())}), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run ``ttdnet`` with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = available_commands()
    if not argv or argv[0] in ("-h", "--help"):
        print(_overview(commands))
        return 0
    if argv[0] == "--version":
        print(f"ttdnet {__version__}")
        return 0
    name, rest = _resolve(argv, commands)
    if name is None:
        groups = {command.split()[0] for command in commands if " " in command}
        if argv[0] in groups:
            if not rest or rest[0] in ("-h", "--help"):
                print(_group_overview(argv[0], commands))
                return 0
            members = [command.split(" ", 1)[1] for command in commands if command.split()[0] == argv[0]]
            close = difflib.get_close_matches(rest[0], members, n=1)
            hint = f" Did you mean '{argv[0]} {close[0]}'?" if close else ""
            print(
                f"ttdnet {argv[0]}: unknown subcommand '{rest[0]}'.{hint} Subcommands: {', '.join(members)}",
                file=sys.stderr,
            )
            return 2
        close = difflib.get_close_matches(argv[0], list(commands), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        print(f"ttdnet: unknown command '{argv[0]}'.{hint} Commands: {', '.join(commands)}", file=sys.stderr)
        return 2
    command = commands[name]
    parser = build_parser(command)
    try:
        config, namespace = parser.parse_config(rest)
        status = command.run(config, namespace)
    except TtdnetError as error:
        message = f"ttdnet {name}: error: {error}"
        print(message, file=sys.stderr)
        _report_to_launcher(message)
        return 1
    except KeyboardInterrupt:
        print(f"ttdnet {name}: interrupted", file=sys.stderr)
        return 130
    return 0 if status is None else int(status)
