import dataclasses
from typing import Literal

import pytest
import yaml

from ttdnet.config import ConfigError, ConfigParser, load_yaml_overrides, save_config


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
