import json
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
        main([name, "--help"])
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


def test_every_preset_in_configs_parses():
    commands = available_commands()
    presets = sorted((REPO / "configs").glob("*.yaml"))
    assert presets, "configs/ holds no presets"
    for preset in presets:
        command = commands[preset.stem.split(".")[0].replace("_", "-")]
        load_yaml_overrides(command.config_class, preset)


def test_simulate_preset_matches_dataclass_defaults():
    command = available_commands()["simulate"]
    defaults = vars(build_parser(command).parse_config([])[0])
    assert load_yaml_overrides(command.config_class, REPO / "configs" / "simulate.yaml") == defaults


@pytest.mark.parametrize("entry", [[sys.executable, "-m", "ttdnet"], [str(Path(sys.executable).parent / "ttdnet")]])
def test_console_and_module_entry_points(entry):
    result = subprocess.run([*entry, "--version"], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0 and result.stdout.startswith("ttdnet "), result.stderr
