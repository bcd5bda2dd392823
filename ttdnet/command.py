"""What a ``ttdnet`` subcommand is: the :class:`Command` record every command module exports as ``COMMAND``.

This module imports nothing of the command line itself, so :mod:`ttdnet.cli` and the command modules
(``ttdnet.commands.*`` and the stages' entry points) both depend on it and never on each other.
"""

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from ttdnet.config import ConfigParser


@dataclasses.dataclass(frozen=True)
class Command:
    """One ``ttdnet`` subcommand.

    Attributes
    ----------
    name : str
        What the user types after ``ttdnet``: one word, or two words for a command in a group
        ("preprocess edf"; ``ttdnet preprocess --help`` lists the group). Its entry point is named the
        same with the space written as "-" ("preprocess-edf").
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
