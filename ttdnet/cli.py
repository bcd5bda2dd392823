"""The ``ttdnet`` command line: ``ttdnet <command> [options]``.

Commands are :class:`ttdnet.command.Command` objects, found by name and imported only when the command
table is built: the core's own are listed in :data:`CORE_COMMANDS`; the packages that build on the core
(``ttdnet.stages``, ``ttdnet.eval``, ``ttdnet.preprocessing``) register theirs as entry points in the
``ttdnet.commands`` group of ``pyproject.toml``, so this module imports none of them. A command whose
module fails to import is listed as unavailable and breaks only itself. A command module must be cheap to
import: heavy imports belong inside its ``run`` function, which keeps ``ttdnet --help`` fast.
"""

import contextlib
import dataclasses
import difflib
import json
import os
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from ttdnet import __version__
from ttdnet.command import Command
from ttdnet.config import ConfigParser
from ttdnet.errors import TtdnetError


ENTRY_POINT_GROUP = "ttdnet.commands"

# The core's commands, named and located like the entry points of the other packages.
CORE_COMMANDS = {
    "env": "ttdnet.commands.env:COMMAND",
    "info": "ttdnet.commands.info:COMMAND",
    "simulate": "ttdnet.commands.simulate:COMMAND",
}

REINSTALL_HINT = "reinstall ttdnet (`make install` or `pip install -e .`) and check its packages with `ttdnet env`"


@dataclasses.dataclass(frozen=True)
class CommandTable:
    """The commands that loaded and those that did not.

    Attributes
    ----------
    commands : dict of str to Command
        By command name, in registration order.
    unavailable : dict of str to str
        Entry point name (the command name with "-" for a space) to the reason it failed to load.
    """

    commands: dict[str, Command]
    unavailable: dict[str, str]


def command_sources() -> list[metadata.EntryPoint]:
    """Where every command comes from: the core's, then the installed ``ttdnet.commands`` entry points."""
    core = [
        metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP) for name, value in CORE_COMMANDS.items()
    ]
    return [*core, *metadata.entry_points(group=ENTRY_POINT_GROUP)]


def load_commands(sources: Iterable[metadata.EntryPoint] | None = None) -> CommandTable:
    """Import every command; one that fails is recorded as unavailable instead of stopping the others.

    Parameters
    ----------
    sources : iterable of importlib.metadata.EntryPoint, optional
        Objects with ``name``, ``value`` ("module:attribute") and ``load()``; default :func:`command_sources`.
        A later command of the same name replaces an earlier one.
    """
    commands: dict[str, Command] = {}
    unavailable: dict[str, str] = {}
    for source in command_sources() if sources is None else sources:
        try:
            command = source.load()
        except Exception as error:
            unavailable[source.name] = f"{source.value} raised {type(error).__name__}: {error}"
            continue
        if not isinstance(command, Command):
            unavailable[source.name] = f"{source.value} is not a ttdnet Command"
            continue
        commands[command.name] = command
    return CommandTable(commands, unavailable)


def available_commands(sources: Iterable[metadata.EntryPoint] | None = None) -> dict[str, Command]:
    """Every command that loads, by name: the core's, then those of installed entry points."""
    return load_commands(sources).commands


def _overview(table: CommandTable) -> str:
    width = max(map(len, [*table.commands, *table.unavailable]), default=0)
    lines = [
        "usage: ttdnet <command> [options]",
        "",
        "EEG-to-image toolkit for THINGS-EEG2. Run `ttdnet <command> --help` for a command's options.",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {command.summary}" for name, command in table.commands.items()]
    if table.unavailable:
        lines += ["", f"unavailable commands ({REINSTALL_HINT}):"]
        lines += [f"  {name.ljust(width)}  {reason}" for name, reason in table.unavailable.items()]
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


def _find_unavailable(argv: list[str], unavailable: dict[str, str]) -> tuple[str, str] | None:
    """The command name ``argv`` starts with and the reason it did not load, when it is an unavailable one."""
    if len(argv) >= 2 and f"{argv[0]}-{argv[1]}" in unavailable:
        return f"{argv[0]} {argv[1]}", unavailable[f"{argv[0]}-{argv[1]}"]
    key = argv[0].replace(" ", "-")
    return (argv[0], unavailable[key]) if key in unavailable else None


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


def main(argv: list[str] | None = None, *, sources: Iterable[metadata.EntryPoint] | None = None) -> int:
    """Run ``ttdnet`` with ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    ``sources`` replaces :func:`command_sources` (tests use it to add a command that fails to import).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    table = load_commands(sources)
    commands = table.commands
    if not argv or argv[0] in ("-h", "--help"):
        print(_overview(table))
        return 0
    if argv[0] == "--version":
        print(f"ttdnet {__version__}")
        return 0
    name, rest = _resolve(argv, commands)
    if name is None and (broken := _find_unavailable(argv, table.unavailable)) is not None:
        message = f"ttdnet: command '{broken[0]}' is unavailable: {broken[1]}; {REINSTALL_HINT}"
        print(message, file=sys.stderr)
        _report_to_launcher(message)
        return 1
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
