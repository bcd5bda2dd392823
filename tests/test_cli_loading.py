"""How the command line finds its commands: entry points, a command that fails to import, no import cycle."""

import ast
import importlib.util
import json
import subprocess
import sys
from importlib import metadata

import pytest

from ttdnet.cli import ENTRY_POINT_GROUP, command_sources, load_commands, main


def broken_source(name: str) -> metadata.EntryPoint:
    """An entry point whose module does not exist, as after a stage module was renamed without reinstalling."""
    return metadata.EntryPoint(name=name, value="ttdnet_no_such_module:COMMAND", group=ENTRY_POINT_GROUP)


def sources_with(broken: metadata.EntryPoint) -> list[metadata.EntryPoint]:
    return [*(source for source in command_sources() if source.name != broken.name), broken]


def test_a_command_that_fails_to_import_breaks_only_itself(capsys):
    sources = sources_with(broken_source("pretrain"))

    assert main(["env", "--json"], sources=sources) == 0
    assert "torch" in json.loads(capsys.readouterr().out)["packages"]

    assert main(["--help"], sources=sources) == 0
    out = capsys.readouterr().out
    assert "  env " in out and "  simulate " in out and "  evaluate " in out
    assert "unavailable commands" in out and "ModuleNotFoundError" in out.split("unavailable commands")[1]

    assert main(["pretrain", "--help"], sources=sources) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert err.startswith("ttdnet: command 'pretrain' is unavailable: ttdnet_no_such_module:COMMAND raised ")
    assert "No module named 'ttdnet_no_such_module'" in err and "reinstall ttdnet" in err
    assert "Traceback" not in err


def test_an_unavailable_two_word_command_is_found_by_its_words(capsys):
    sources = sources_with(broken_source("preprocess-things-eeg2"))
    assert main(["preprocess", "things-eeg2", "--raw_dir", "x"], sources=sources) == 1
    assert capsys.readouterr().err.startswith("ttdnet: command 'preprocess things-eeg2' is unavailable: ")
    assert main(["preprocess things-eeg2"], sources=sources) == 1
    assert "'preprocess things-eeg2' is unavailable" in capsys.readouterr().err
    assert main(["preprocess"], sources=sources) == 0
    assert "preprocess edf" in capsys.readouterr().out


def test_an_entry_point_that_is_not_a_command_is_unavailable():
    table = load_commands([metadata.EntryPoint(name="odd", value="ttdnet.cli:ENTRY_POINT_GROUP", group="x")])
    assert table.commands == {}
    assert table.unavailable == {"odd": "ttdnet.cli:ENTRY_POINT_GROUP is not a ttdnet Command"}


def test_every_entry_point_is_named_after_its_command():
    sources = command_sources()
    table = load_commands(sources)
    assert table.unavailable == {}
    assert sorted(name.replace(" ", "-") for name in table.commands) == sorted(source.name for source in sources)


def imported_modules(module: str) -> set[str]:
    """The absolute module names ``module``'s source imports when it is imported (its module-level imports).

    An import inside a function runs only when the function is called (``ttdnet demo`` runs the other
    commands through the CLI), so it cannot make an import cycle.
    """
    tree = ast.parse(open(importlib.util.find_spec(module).origin, encoding="utf-8").read())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("source", command_sources(), ids=lambda source: source.name)
def test_command_modules_do_not_import_the_cli(source):
    module = source.value.split(":")[0]
    assert not {name for name in imported_modules(module) if name.startswith("ttdnet.cli")}, module


def test_the_cli_imports_no_command_module():
    assert not {name for name in imported_modules("ttdnet.cli") if name.startswith("ttdnet.commands")}
    script = "import sys, ttdnet.cli; print(sorted(m for m in sys.modules if m.startswith('ttdnet.commands.')))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
