import dataclasses
import sys
import types
from typing import ClassVar, Literal

import pytest
import yaml

from ttdnet.config import (
    OPTION_GROUP_TITLES,
    ConfigError,
    ConfigParser,
    LazyChoices,
    load_yaml_overrides,
    save_config,
)


@dataclasses.dataclass
class ToyConfig:
    output_dir: str = dataclasses.field(default="out", metadata={"help": "where"})
    learning_rate: float = 1e-3
    max_train_steps: int = 10
    gradient_checkpointing: bool = False
    allow_tf32: bool = True
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    channels: list[str] | None = None
    resume_from_checkpoint: str | None = None


def parse(argv, config_file=None):
    if config_file is not None:
        argv = ["--config", str(config_file), *argv]
    return ConfigParser(ToyConfig, prog="ttdnet toy").parse_config(argv)[0]


def write_yaml(tmp_path, values):
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_defaults():
    assert parse([]) == ToyConfig()


def test_command_line_overrides_yaml(tmp_path):
    preset = write_yaml(tmp_path, {"learning_rate": 0.5, "max_train_steps": 3, "mixed_precision": "bf16"})
    config = parse(["--max_train_steps", "7"], preset)
    assert (config.learning_rate, config.max_train_steps, config.mixed_precision) == (0.5, 7, "bf16")


@pytest.mark.parametrize(
    ("argv", "yaml_value", "expected"),
    [
        (["--gradient_checkpointing"], None, True),
        (["--gradient_checkpointing", "false"], None, False),
        (["--gradient-checkpointing", "yes"], None, True),
        (["--no_gradient_checkpointing"], True, False),
        (["--no-gradient-checkpointing"], True, False),
        ([], True, True),
        (["--gradient_checkpointing"], False, True),
    ],
)
def test_booleans(tmp_path, argv, yaml_value, expected):
    preset = write_yaml(tmp_path, {"gradient_checkpointing": yaml_value}) if yaml_value is not None else None
    assert parse(argv, preset).gradient_checkpointing is expected


def test_no_flag_for_default_true():
    assert parse(["--no_allow_tf32"]).allow_tf32 is False
    assert parse([]).allow_tf32 is True


def test_lists_and_optionals():
    config = parse(["--channels", "Oz", "Pz", "--resume_from_checkpoint", "latest"])
    assert config.channels == ["Oz", "Pz"] and config.resume_from_checkpoint == "latest"


def test_unknown_yaml_key_is_named_with_suggestion(tmp_path):
    preset = write_yaml(tmp_path, {"learning_rat": 0.1})
    with pytest.raises(ConfigError, match="unknown key 'learning_rat' for ToyConfig. Did you mean 'learning_rate'"):
        parse([], preset)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_train_steps": 2.5}, "'max_train_steps' must be an integer"),
        ({"gradient_checkpointing": "no"}, "'gradient_checkpointing' must be true or false"),
        ({"mixed_precision": "fp8"}, r"'mixed_precision' is 'fp8'; expected one of \['no', 'fp16', 'bf16'\]"),
        ({"channels": "Oz"}, "'channels' must be a list"),
        ({"output_dir": None}, "'output_dir' must not be null"),
    ],
)
def test_bad_yaml_values(tmp_path, values, message):
    with pytest.raises(ConfigError, match=message):
        parse([], write_yaml(tmp_path, values))


def test_yaml_int_for_float_is_accepted(tmp_path):
    assert parse([], write_yaml(tmp_path, {"learning_rate": 1})).learning_rate == 1.0


@pytest.mark.parametrize("flag", ["--learning_rat", "--no_such_option"])
def test_unknown_or_abbreviated_command_line_flag_exits(flag, capsys):
    with pytest.raises(SystemExit):
        parse([flag, "1"])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_bad_choice_on_command_line_exits():
    with pytest.raises(SystemExit):
        parse(["--mixed_precision", "fp8"])


def test_saved_config_round_trips(tmp_path):
    config = parse(["--learning_rate", "0.25", "--channels", "O1", "--no_allow_tf32"])
    path = save_config(config, tmp_path / "config.yaml", command="toy")
    assert path.read_text().startswith("# Resolved configuration of `ttdnet toy`")
    assert parse([], path) == config
    assert load_yaml_overrides(ToyConfig, path)["channels"] == ["O1"]


def test_missing_or_non_mapping_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse([], tmp_path / "absent.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        parse([], bad)


@dataclasses.dataclass
class GroupedConfig:
    OPTION_GROUPS: ClassVar[dict[str, str]] = {"dataset_root": "data", "encoder": "model", "report_to": "logging"}
    RENAMED_OPTIONS: ClassVar[dict[str, str]] = {"cache_dir": "--cache_dir is now --eeg_cache_dir"}

    dataset_root: str | None = dataclasses.field(default=None, metadata={"help": "where the data are"})
    encoder: str = dataclasses.field(
        default="small", metadata={"help": "encoder name", "choices": LazyChoices("toy_registry:names")}
    )
    report_to: str = dataclasses.field(default="none", metadata={"help": "tracker"})


@pytest.fixture
def toy_registry(monkeypatch):
    """A module ``toy_registry`` whose ``names()`` is imported only when the choices are first needed."""
    module = types.ModuleType("toy_registry")
    module.calls = 0

    def names():
        module.calls += 1
        return ["small", "large"]

    module.names = names
    monkeypatch.setitem(sys.modules, "toy_registry", module)
    return module


def grouped_parser():
    return ConfigParser(GroupedConfig, prog="ttdnet grouped")


def test_options_are_listed_in_their_groups(toy_registry, capsys):
    parser = grouped_parser()
    titles = {action.dest: group.title for group in parser._action_groups for action in group._group_actions}
    assert titles["dataset_root"] == OPTION_GROUP_TITLES["data"]
    assert titles["encoder"] == OPTION_GROUP_TITLES["model"]
    assert titles["report_to"] == OPTION_GROUP_TITLES["logging"]
    text = parser.format_help()
    assert text.index(OPTION_GROUP_TITLES["data"]) < text.index(OPTION_GROUP_TITLES["model"])
    assert "encoder name (default: small)" in text


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"dataset_root": "data", "encoder": "model"}, r"leaves fields without a group: \['report_to'\]"),
        ({"dataset_root": "data", "encoder": "model", "report_to": "logs"}, r"uses unknown groups: \['logs'\]"),
        (
            {"dataset_root": "data", "encoder": "model", "report_to": "logging", "seed": "data"},
            r"names fields it does not have: \['seed'\]",
        ),
    ],
)
def test_option_groups_must_cover_every_field_with_known_groups(monkeypatch, toy_registry, declared, message):
    monkeypatch.setattr(GroupedConfig, "OPTION_GROUPS", declared)
    with pytest.raises(TypeError, match=message):
        grouped_parser()


def test_renamed_option_must_not_be_a_current_field(monkeypatch, toy_registry):
    monkeypatch.setattr(GroupedConfig, "RENAMED_OPTIONS", {"encoder": "renamed"})
    with pytest.raises(TypeError, match="RENAMED_OPTIONS names current fields"):
        grouped_parser()


@pytest.mark.parametrize("argv", [["--cache_dir", "x"], ["--cache-dir=x"], ["--cache_dir"]])
def test_renamed_flag_is_one_line_and_exit_status_2(toy_registry, capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        grouped_parser().parse_config(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "ttdnet grouped: error: --cache_dir is now --eeg_cache_dir\n"


def test_renamed_yaml_key_gets_its_message(toy_registry, tmp_path):
    with pytest.raises(ConfigError, match="key 'cache_dir': --cache_dir is now --eeg_cache_dir"):
        grouped_parser().parse_config(["--config", str(write_yaml(tmp_path, {"cache_dir": "x"}))])


def test_lazy_choices_are_loaded_once_and_checked_on_both_paths(toy_registry, tmp_path, capsys):
    choices = LazyChoices("toy_registry:names")
    assert toy_registry.calls == 0
    assert "large" in choices and "huge" not in choices and list(choices) == ["small", "large"]
    assert toy_registry.calls == 1
    assert grouped_parser().parse_config(["--encoder", "large"])[0].encoder == "large"
    with pytest.raises(SystemExit) as exit_info:
        grouped_parser().parse_config(["--encoder", "huge"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"'encoder' is 'huge'; expected one of \['small', 'large'\]"):
        grouped_parser().parse_config(["--config", str(write_yaml(tmp_path, {"encoder": "huge"}))])
