import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ttdnet.cli import available_commands, build_parser, main
from ttdnet.config import load_yaml_overrides


REPO = Path(__file__).resolve().parents[1]


def test_overview_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in available_commands():
        assert f"  {name}" in out


@pytest.mark.parametrize("name", sorted(available_commands()))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*name.split(), "--help"])
    assert exit_info.value.code == 0
    assert f"usage: ttdnet {name}" in capsys.readouterr().out


def test_unknown_command_suggests(capsys):
    assert main(["simulat"]) == 2
    assert "Did you mean 'simulate'" in capsys.readouterr().err


def test_env_json(capsys):
    assert main(["env", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["packages"]) >= {"torch", "diffusers", "accelerate", "peft", "transformers", "mne"}
    assert report["cuda_available"] in (True, False)


def test_config_error_is_reported_without_traceback(tmp_path, capsys):
    preset = tmp_path / "bad.yaml"
    preset.write_text("n_subject: 3\n")
    assert main(["simulate", "--config", str(preset)]) == 1
    err = capsys.readouterr().err
    assert "unknown key 'n_subject'" in err and "Did you mean 'n_subjects'" in err and "Traceback" not in err


PRESET_HEADER = re.compile(r"^# Preset for `ttdnet ([a-z0-9][a-z0-9-]*)(?: ([a-z0-9][a-z0-9-]*))?")


def preset_command(first_line: str, commands) -> str:
    """The command a preset declares on its first line: "# Preset for `ttdnet <command> ...`"."""
    match = PRESET_HEADER.match(first_line)
    assert match, f"first line {first_line!r} does not say which command the preset is for"
    two_words = f"{match.group(1)} {match.group(2)}"
    name = two_words if two_words in commands else match.group(1)
    assert name in commands, f"preset header {first_line!r} names no registered command"
    return name


def test_every_preset_in_configs_parses():
    commands = available_commands()
    presets = sorted((REPO / "configs").glob("*.yaml"))
    assert presets, "configs/ holds no presets"
    for preset in presets:
        command = commands[preset_command(preset.read_text().splitlines()[0], commands)]
        load_yaml_overrides(command.config_class, preset)


def test_preset_headers_map_to_commands():
    commands = dict.fromkeys(("simulate", "pretrain", "preprocess things-eeg2", "preprocess edf"))
    assert preset_command("# Preset for `ttdnet simulate --config x.yaml`", commands) == "simulate"
    assert (
        preset_command("# Preset for `ttdnet preprocess things-eeg2 --config y`:", commands)
        == "preprocess things-eeg2"
    )
    assert preset_command("# Preset for `ttdnet pretrain` (Stage A)", commands) == "pretrain"
    for bad in ("# Preset for `ttdnet preprocess bdf`", "# options for simulate"):
        with pytest.raises(AssertionError):
            preset_command(bad, commands)


def test_two_word_commands_and_their_group(capsys):
    commands = available_commands()
    assert {"preprocess things-eeg2", "preprocess edf"} <= set(commands)
    assert main(["preprocess", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: ttdnet preprocess <subcommand>" in out
    assert "preprocess things-eeg2" in out and "preprocess edf" in out and "simulate" not in out
    assert main(["preprocess"]) == 0
    capsys.readouterr()
    assert main(["preprocess", "thing-eeg2"]) == 2
    assert "Did you mean 'preprocess things-eeg2'" in capsys.readouterr().err
    assert main(["preprocess things-eeg2", "--raw_dir", "/nonexistent/ttdnet-test"]) == 1
    assert "ttdnet preprocess things-eeg2: error:" in capsys.readouterr().err


def test_simulate_preset_matches_dataclass_defaults():
    command = available_commands()["simulate"]
    defaults = vars(build_parser(command).parse_config([])[0])
    assert load_yaml_overrides(command.config_class, REPO / "configs" / "simulate.yaml") == defaults


@pytest.mark.parametrize("entry", [[sys.executable, "-m", "ttdnet"], [str(Path(sys.executable).parent / "ttdnet")]])
def test_console_and_module_entry_points(entry):
    result = subprocess.run([*entry, "--version"], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0 and result.stdout.startswith("ttdnet "), result.stderr
