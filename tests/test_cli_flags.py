"""The options of every command: help and default shown, training options grouped, renamed flags explained."""

import argparse
import dataclasses

import pytest
import yaml

from ttdnet.cli import available_commands, build_parser, main
from ttdnet.config import OPTION_GROUP_TITLES


COMMANDS = available_commands()
TRAINING_COMMANDS = ("pretrain", "train-retrieval", "train-bridge")


def shown_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The flags ``--help`` lists (not ``-h`` itself, not the hidden ``--no_*`` complements or renamed flags)."""
    return [
        action
        for action in parser._actions
        if action.option_strings and action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)
    ]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_and_shows_its_default(name):
    command = COMMANDS[name]
    parser = build_parser(command)
    for field in dataclasses.fields(command.config_class):
        if field.init:
            assert field.metadata.get("help", "").strip(), f"ttdnet {name} --{field.name} has no help text"
    formatter = parser._get_formatter()
    for action in shown_options(parser):
        shown = formatter._expand_help(action)
        assert action.help and "(default: " in shown, f"ttdnet {name} {action.option_strings[0]}: {shown!r}"


@pytest.mark.parametrize("name", TRAINING_COMMANDS)
def test_training_options_are_grouped(name):
    parser = build_parser(COMMANDS[name])
    group_of = {action.dest: group.title for group in parser._action_groups for action in group._group_actions}
    fields = [field.name for field in dataclasses.fields(COMMANDS[name].config_class) if field.init]
    assert {field: group_of[field] for field in fields if group_of[field] not in OPTION_GROUP_TITLES.values()} == {}
    text = parser.format_help()
    for group in ("data", "model", "optimisation", "checkpoints", "logging"):
        assert f"\n{OPTION_GROUP_TITLES[group]}:\n" in text


@pytest.mark.parametrize("name", TRAINING_COMMANDS)
def test_training_commands_share_the_diffusers_names(name):
    fields = {field.name for field in dataclasses.fields(COMMANDS[name].config_class)}
    assert {"train_batch_size", "dataloader_num_workers", "encoder_preset", "eeg_cache_dir"} <= fields


@pytest.mark.parametrize(
    ("argv", "new_name"),
    [
        (["train-retrieval", "--cache_dir", "x"], "--eeg_cache_dir"),
        (["train-retrieval", "--encoder_size", "tiny"], "--encoder_preset"),
        (["pretrain", "--cache-dir=x"], "--eeg_cache_dir"),
        (["info", "--cache_dir", "x", "root"], "--eeg_cache_dir"),
        (["features", "--num_workers", "2"], "--dataloader_num_workers"),
    ],
)
def test_a_renamed_flag_says_its_new_name_in_one_line(capsys, argv, new_name):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2  # as argparse's other flag errors
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"ttdnet {argv[0]}: error: ") and new_name in err, err


def test_a_renamed_yaml_key_says_its_new_name(tmp_path, capsys):
    preset = tmp_path / "retrieval.yaml"
    preset.write_text(yaml.safe_dump({"cache_dir": "cache", "encoder": "nice"}))
    assert main(["train-retrieval", "--config", str(preset)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "key 'cache_dir'" in err and "--eeg_cache_dir" in err, err


def test_cache_dir_is_the_model_download_cache_wherever_it_exists():
    for name, command in COMMANDS.items():
        for field in dataclasses.fields(command.config_class):
            if field.name == "cache_dir":
                assert "model-download cache" in field.metadata["help"], name


@pytest.fixture
def no_data_reading(monkeypatch):
    """Fail the test if the dataset layer or the trainer is reached."""
    from ttdnet.data import ThingsEEG2Dataset
    from ttdnet.data.things_eeg2 import ThingsEEG2Layout

    def refuse(*args, **kwargs):
        raise AssertionError("the dataset was read before the options were checked")

    monkeypatch.setattr(ThingsEEG2Dataset, "__init__", refuse)
    monkeypatch.setattr(ThingsEEG2Layout, "discover", refuse)
    monkeypatch.setattr("ttdnet.stages.retrieval_training.train", refuse)


def test_an_unknown_encoder_is_an_argparse_error_before_any_data_is_read(tmp_path, capsys, no_data_reading):
    argv = ["train-retrieval", "--dataset_root", str(tmp_path), "--features", str(tmp_path / "f.safetensors")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--encoder", "eegprojekt", "--output_dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --encoder: invalid choice: 'eegprojekt'" in err and "'eegproject'" in err


def test_an_unknown_encoder_in_a_preset_is_refused_before_any_data_is_read(tmp_path, capsys, no_data_reading):
    preset = tmp_path / "retrieval.yaml"
    preset.write_text(yaml.safe_dump({"encoder": "eegprojekt", "dataset_root": str(tmp_path)}))
    assert main(["train-retrieval", "--config", str(preset)]) == 1
    assert "'encoder' is 'eegprojekt'; expected one of" in capsys.readouterr().err
