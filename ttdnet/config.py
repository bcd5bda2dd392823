"""Typed command configuration: one dataclass per command, YAML presets, command-line overrides.

Resolution order, last wins: the dataclass defaults, then the YAML file given with ``--config``,
then flags on the command line (the TRL ``TrlParser`` semantics). Parsing is done by
:class:`transformers.HfArgumentParser`; this module adds what it lacks:

* ``--config FILE.yaml`` with unknown keys rejected by name (with a close-match suggestion);
* a ``--no_<flag>`` / ``--no-<flag>`` complement for every boolean, whatever its default;
* type and choice checks on values that came from YAML (argparse checks only command-line strings);
* numeric ranges: a config class may declare ``OPTION_RANGES: ClassVar[dict[str, str]]`` mapping field
  names to intervals such as ``"(0, 1)"`` or ``"[1, inf)"``; every value (flag or YAML) is checked against
  them before the command runs, and ``--help`` shows them;
* devices: a field named ``device`` is checked with :func:`ttdnet.devices.resolve_device` (it must name a
  device this machine has) when the options are parsed;
* help groups: a config class may declare ``OPTION_GROUPS: ClassVar[dict[str, str]]`` mapping every field
  to one of the groups of :data:`OPTION_GROUP_TITLES` (data, model, optimisation, ...); ``--help`` then lists
  the options group by group;
* renamed options: ``RENAMED_OPTIONS: ClassVar[dict[str, str]]`` maps an old option name to the one-line
  message a user who still passes it (as a flag or a YAML key) gets instead of a generic "unrecognized";
* choices known only at run time: ``metadata={"choices": LazyChoices("module:function")}`` checks a value
  against a list (e.g. the encoder registry) without importing it when the command module is imported;
* :func:`save_config`, which writes the resolved config next to an output.

Every field should have ``metadata["help"]``: ``--help`` prints each option with its help and its default.
"""

import argparse
import dataclasses
import difflib
import importlib
import os
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from transformers import HfArgumentParser

from ttdnet import __version__
from ttdnet.errors import ConfigError
from ttdnet.io import atomic_write_yaml


__all__ = [
    "OPTION_GROUP_TITLES",
    "SEED_RANGE",
    "ConfigError",
    "ConfigParser",
    "LazyChoices",
    "check_option_ranges",
    "config_to_dict",
    "load_yaml_overrides",
    "option_groups",
    "option_ranges",
    "renamed_options",
    "save_config",
]

ConfigT = TypeVar("ConfigT")

SEED_RANGE = "[0, 4294967295]"
"""The ``OPTION_RANGES`` entry of a seed: what numpy's and torch's generators both accept."""

OPTION_GROUP_TITLES: dict[str, str] = {
    "data": "data",
    "model": "model",
    "optimisation": "optimisation (loss, augmentation, schedule, precision)",
    "validation": "validation and model selection",
    "checkpoints": "run folder and checkpoints",
    "logging": "logging",
}
"""The help groups an ``OPTION_GROUPS`` declaration may use, by name, in the order ``--help`` lists them."""


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    """Return ``(inner_type, allows_none)`` for ``X | None`` annotations, else ``(annotation, False)``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _check_value(name: str, value: Any, annotation: Any, source: str) -> Any:
    """Validate ``value`` against a field annotation; return it converted where lossless (int -> float)."""
    inner, allows_none = _strip_optional(annotation)
    if value is None:
        if allows_none:
            return None
        raise ConfigError(f"{source}: '{name}' must not be null (expected {inner})")
    origin = typing.get_origin(inner)
    if origin is Literal:
        choices = typing.get_args(inner)
        if value not in choices:
            raise ConfigError(f"{source}: '{name}' is {value!r}; expected one of {list(choices)}")
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: '{name}' must be a list, got {value!r}")
        (item_type,) = typing.get_args(inner) or (Any,)
        return [_check_value(f"{name}[{i}]", item, item_type, source) for i, item in enumerate(value)]
    if inner is Any:
        return value
    if inner is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{name}' must be true or false, got {value!r}")
        return value
    if inner is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: '{name}' must be a number, got {value!r}")
        return float(value)
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{name}' must be an integer, got {value!r}")
        return value
    if inner is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{name}' must be a string, got {value!r} (quote it in YAML)")
        return value
    return value


@dataclasses.dataclass(frozen=True)
class Interval:
    """A numeric range parsed from ``"(low, high)"`` / ``"[low, high]"`` notation (``inf`` allowed)."""

    text: str
    low: float
    high: float
    low_closed: bool
    high_closed: bool

    @classmethod
    def parse(cls, text: str) -> "Interval":
        stripped = text.strip()
        if len(stripped) < 5 or stripped[0] not in "[(" or stripped[-1] not in "])" or "," not in stripped:
            raise ValueError(f"interval {text!r} must look like '(0, 1)' or '[1, inf)'")
        low, high = (float(part) for part in stripped[1:-1].split(","))
        return cls(stripped, low, high, stripped[0] == "[", stripped[-1] == "]")

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below


def option_ranges(config_class: type) -> dict[str, Interval]:
    """The declared ``OPTION_RANGES`` of a config class, parsed (empty when it declares none)."""
    declared = getattr(config_class, "OPTION_RANGES", {})
    fields = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(declared) - fields)
    if unknown:
        raise TypeError(f"{config_class.__name__}.OPTION_RANGES names fields it does not have: {unknown}")
    return {name: Interval.parse(text) for name, text in declared.items()}


def _check_range(name: str, value: Any, interval: Interval, source: str) -> None:
    values = value if isinstance(value, list) else [value]
    for item in values:
        if item is not None and item not in interval:
            raise ConfigError(f"{source}: '{name}' is {item!r}; it must be in {interval.text}")


def check_option_ranges(config: Any) -> None:
    """Check a config instance built in code (not parsed) against its class's ``OPTION_RANGES``.

    Raises
    ------
    ConfigError
        The first value outside its range, named as the parser names it.
    """
    for name, interval in option_ranges(type(config)).items():
        _check_range(name, getattr(config, name), interval, "option")


def option_groups(config_class: type) -> dict[str, str]:
    """The declared ``OPTION_GROUPS`` of a config class, checked (empty when it declares none).

    Raises
    ------
    TypeError
        A declared name is not a field, a group is not in :data:`OPTION_GROUP_TITLES`, or a field has no group.
    """
    declared = getattr(config_class, "OPTION_GROUPS", {})
    if not declared:
        return {}
    fields = [field.name for field in dataclasses.fields(config_class) if field.init]
    problems = {
        "names fields it does not have": sorted(set(declared) - set(fields)),
        "leaves fields without a group": [name for name in fields if name not in declared],
        "uses unknown groups": sorted(set(declared.values()) - set(OPTION_GROUP_TITLES)),
    }
    for problem, names in problems.items():
        if names:
            raise TypeError(f"{config_class.__name__}.OPTION_GROUPS {problem}: {names}")
    return dict(declared)


def renamed_options(config_class: type) -> dict[str, str]:
    """The declared ``RENAMED_OPTIONS`` of a config class: old option name to the message shown for it."""
    declared = getattr(config_class, "RENAMED_OPTIONS", {})
    clashes = sorted(set(declared) & {field.name for field in dataclasses.fields(config_class)})
    if clashes:
        raise TypeError(f"{config_class.__name__}.RENAMED_OPTIONS names current fields: {clashes}")
    return dict(declared)


class LazyChoices:
    """The allowed values of an option, computed on first use by ``"module:function"`` (a list of str).

    Give it as ``metadata={"choices": LazyChoices("ttdnet.models.registry:encoder_names")}``: the command
    module stays cheap to import, while argparse (``choices``) and YAML presets still reject other values
    before the command runs. ``--help`` lists the values, so it imports the module.
    """

    def __init__(self, target: str):
        self.target = target
        self._values: list[str] | None = None

    @property
    def values(self) -> list[str]:
        if self._values is None:
            module, _, function = self.target.partition(":")
            self._values = list(getattr(importlib.import_module(module), function)())
        return self._values

    def __contains__(self, value: object) -> bool:
        return value in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"LazyChoices({self.target!r})"


class _RenamedOption(argparse.Action):
    """A flag that no longer exists: using it ends parsing with its ``RENAMED_OPTIONS`` message (status 2)."""

    def __init__(self, option_strings, dest, message: str, **kwargs):
        super().__init__(
            option_strings, dest=argparse.SUPPRESS, nargs="*", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        self.message = message

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(2, f"{parser.prog}: error: {self.message}\n")


def load_yaml_overrides(config_class: type, path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML preset for ``config_class`` and check every key and value.

    Parameters
    ----------
    config_class : dataclass type
        The command's config dataclass.
    path : path-like
        YAML file holding a mapping of field names to values.

    Returns
    -------
    dict
        Field name to checked value.

    Raises
    ------
    ConfigError
        If the file is missing or not a mapping, a key is not a field of ``config_class`` (a renamed one
        gets its ``RENAMED_OPTIONS`` message), or a value has the wrong type or is not one of its choices.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of option names to values, got {type(loaded).__name__}"
        )
    hints = typing.get_type_hints(config_class)
    fields = {field.name: field for field in dataclasses.fields(config_class) if field.init}
    renamed = renamed_options(config_class)
    checked = {}
    for key, value in loaded.items():
        if key in renamed:
            raise ConfigError(f"config file {path}: key '{key}': {renamed[key]}")
        if key not in fields:
            close = difflib.get_close_matches(str(key), sorted(fields), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"config file {path}: unknown key '{key}' for {config_class.__name__}.{hint} "
                f"Valid keys: {', '.join(sorted(fields))}"
            )
        checked[key] = _check_value(key, value, hints[key], f"config file {path}")
        choices = fields[key].metadata.get("choices")
        if choices is not None:
            for item in checked[key] if isinstance(checked[key], list) else [checked[key]]:
                if item is not None and item not in choices:
                    raise ConfigError(f"config file {path}: '{key}' is {item!r}; expected one of {list(choices)}")
    return checked


class ConfigParser(HfArgumentParser):
    """An :class:`~transformers.HfArgumentParser` for one config dataclass, with ``--config`` YAML presets.

    Parameters
    ----------
    config_class : dataclass type
        Every ``init`` field becomes ``--field_name`` (also ``--field-name``); booleans also get
        ``--no_field_name``. The field's ``metadata["help"]`` is its help text; ``OPTION_GROUPS``,
        ``OPTION_RANGES`` and ``RENAMED_OPTIONS`` are described in the module docstring.
    **kwargs
        Passed to :class:`argparse.ArgumentParser` (``prog``, ``description``, ...).
    """

    def __init__(self, config_class: type, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        kwargs.setdefault("allow_abbrev", False)  # a typo must not silently match a longer flag
        super().__init__(config_class, **kwargs)
        self.config_class = config_class
        self.add_argument(
            "--config",
            metavar="FILE.yaml",
            default=None,
            help="YAML file of option values (see configs/); flags given on the command line override it",
        )
        hints = typing.get_type_hints(config_class)
        actions = {option: action for action in self._actions for option in action.option_strings}
        for old, message in renamed_options(config_class).items():
            self.add_argument(f"--{old}", f"--{old.replace('_', '-')}", action=_RenamedOption, message=message)
        self.ranges = option_ranges(config_class)
        for name, interval in self.ranges.items():
            flag = actions[f"--{name}"]
            flag.help = f"{flag.help or ''} (range {interval.text})".strip()
        for field in dataclasses.fields(config_class):
            if not field.init or _strip_optional(hints[field.name])[0] is not bool:
                continue
            flag = actions[f"--{field.name}"]
            flag.metavar = "true|false"
            flag.help = f"{flag.help or ''} (--no_{field.name} sets it to false)".strip()
            if f"--no_{field.name}" not in actions:
                self.add_argument(
                    f"--no_{field.name}",
                    f"--no-{field.name.replace('_', '-')}",
                    action="store_false",
                    dest=field.name,
                    help=argparse.SUPPRESS,
                )
            else:
                actions[f"--no_{field.name}"].help = argparse.SUPPRESS

    def _add_dataclass_arguments(self, dtype: type) -> None:
        """Add the fields of ``dtype``, each in the argument group of its ``OPTION_GROUPS`` entry.

        Replaces :class:`~transformers.HfArgumentParser`'s method of the same name (which it calls from
        ``__init__``), adding each field exactly as it does; a class without ``OPTION_GROUPS`` keeps its
        behaviour (every option in one list).
        """
        groups = option_groups(dtype)
        if not groups:
            super()._add_dataclass_arguments(dtype)
            return
        containers = {
            name: self.add_argument_group(title)
            for name, title in OPTION_GROUP_TITLES.items()
            if name in groups.values()
        }
        hints = typing.get_type_hints(dtype)
        for field in dataclasses.fields(dtype):
            if field.init:
                field.type = hints[field.name]
                self._parse_dataclass_field(containers[groups[field.name]], field)

    def parse_config(self, argv: list[str] | None = None) -> tuple[Any, argparse.Namespace]:
        """Resolve defaults, ``--config`` and command-line flags into a config instance.

        Parameters
        ----------
        argv : list of str, optional
            Arguments after the subcommand name; ``sys.argv[1:]`` when None.

        Returns
        -------
        config : instance of ``config_class``
        namespace : argparse.Namespace
            Every parsed value, including arguments that are not config fields (positionals a
            command adds).
        """
        pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        pre.add_argument("--config", default=None)
        known, _ = pre.parse_known_args(argv)
        if known.config is not None:
            overrides = load_yaml_overrides(self.config_class, known.config)
            self.set_defaults(**overrides)
            for action in self._actions:
                if action.dest in overrides:
                    action.required = False
        namespace = self.parse_args(argv)
        hints = typing.get_type_hints(self.config_class)
        values = {}
        for field in dataclasses.fields(self.config_class):
            if field.init:
                values[field.name] = _check_value(
                    field.name, getattr(namespace, field.name), hints[field.name], "option"
                )
                if field.name in self.ranges:
                    _check_range(field.name, values[field.name], self.ranges[field.name], "option")
                if field.name == "device":
                    from ttdnet.devices import resolve_device  # imports torch: only once a command runs

                    resolve_device(values[field.name])
        return self.config_class(**values), namespace


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain-data dict of a config dataclass (paths as strings), ready for YAML, JSON or trackers."""
    return {
        key: (str(value) if isinstance(value, os.PathLike) else value)
        for key, value in dataclasses.asdict(config).items()
    }


def save_config(config: Any, path: str | os.PathLike, command: str) -> Path:
    """Write the resolved config atomically as YAML that ``--config`` accepts back.

    Parameters
    ----------
    config : dataclass instance
    path : path-like
        Destination file, e.g. ``output_dir / "config.yaml"``.
    command : str
        Subcommand name, recorded in the header comment.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    header = f"# Resolved configuration of `ttdnet {command}` (ttdnet {__version__}).\n"
    header += f"# Re-run with: ttdnet {command} --config {Path(path).name}\n"
    atomic_write_yaml(path, config_to_dict(config), header=header)
    return Path(path)
