"""The README's command examples run in the order they are written: no example writes over an earlier one."""

import re
import shlex
from pathlib import Path

import yaml

from ttdnet.commands.simulate import SimulateConfig


ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[list[str]]:
    """Every command line of the README's bash blocks, continuation lines joined, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def flag(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words else None


def test_every_simulate_example_writes_its_own_folder_or_says_overwrite():
    default = SimulateConfig().output_dir
    written = {}
    for words in readme_commands():
        if words[:2] != ["ttdnet", "simulate"]:
            continue
        config = flag(words, "--config")
        preset = yaml.safe_load((ROOT / config).read_text()) if config else {}
        output = flag(words, "--output_dir") or preset.get("output_dir", default)
        if output in written:
            assert "--overwrite" in words, f"{' '.join(words)} writes {output}, which {written[output]} wrote"
        written[output] = " ".join(words)
    assert len(written) >= 5


def test_every_config_a_readme_example_names_exists():
    named = {flag(words, "--config") for words in readme_commands()} - {None}
    assert named and all((ROOT / path).is_file() for path in named), sorted(named)
