"""The outputs of an evaluation appear as a complete set or not at all, and a user's other files are never touched.

A kill is simulated with ``os._exit`` in a subprocess: no ``finally`` runs, as with SIGKILL.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from eval_fixtures import noisy, smooth_image, write_image

from ttdnet.cli import main
from ttdnet.eval import api


SET = ["config.yaml", "metrics.json", "report.html", "report.md"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("set")
    rng = np.random.default_rng(0)
    for i in range(4):
        image = smooth_image(rng, 24)
        write_image(root / "gt" / f"{i}.png", image)
        write_image(root / "rec" / f"{i}.png", noisy(rng, image, 0.1))
    return root


def argv_for(folders, out, *flags):
    return ["evaluate", "--ground_truth", str(folders / "gt"), "--reconstructions", str(folders / "rec"),
            "--output_dir", str(out), "--metrics", "pixcorr", "--device", "cpu", "--no_progress", *flags]  # fmt: skip


def run_killed(argv, patch: str) -> int:
    """Run ``ttdnet.cli.main(argv)`` in a subprocess after ``patch`` (Python run first) and return its exit status."""
    script = "import os, sys\n" + textwrap.dedent(patch)
    script += f"\nfrom ttdnet.cli import main\nsys.exit(main({argv!r}))\n"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300).returncode


def user_files(out):
    """A user's note and a nested evaluation folder, which every run must leave alone."""
    (out / "sub-08").mkdir(parents=True)
    (out / "sub-08" / "metrics.json").write_text('{"kept": true}\n')
    (out / "notes.txt").write_text("mine\n")


def assert_user_files_kept(out):
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "sub-08" / "metrics.json").read_text() == '{"kept": true}\n'


def test_a_run_killed_while_writing_shows_nothing_and_the_rerun_cleans_up(folders, tmp_path, capsys):
    out = tmp_path / "out"
    user_files(out)
    patch = """
    import pathlib
    write_text = pathlib.Path.write_text
    def write_or_die(self, *args, **kwargs):
        if self.name == "report.html":
            os._exit(9)
        return write_text(self, *args, **kwargs)
    pathlib.Path.write_text = write_or_die
    """
    killed = run_killed(argv_for(folders, out), patch)
    assert killed == 9
    # config.yaml, metrics.json and report.md were written, into the hidden staging folder only.
    hidden = [path for path in out.iterdir() if path.name.startswith(".")]
    assert len(hidden) == 1 and hidden[0].name.startswith(".evaluation.ttdnet-")
    assert sorted(path.name for path in hidden[0].iterdir()) == ["config.yaml", "metrics.json", "report.md"]
    assert sorted(path.name for path in out.iterdir() if not path.name.startswith(".")) == ["notes.txt", "sub-08"]
    # What a killed writer of the same (dead) process leaves next to metrics.json, and a hidden file of the user.
    dead = hidden[0].name.removeprefix(".evaluation.")
    (out / f".metrics.json.{dead.split('-partial-')[0]}-x1y2.tmp").write_text("{")
    (out / ".keep").write_text("")

    assert main(argv_for(folders, out)) == 0
    capsys.readouterr()
    assert sorted(path.name for path in out.iterdir()) == sorted([*SET, ".keep", "notes.txt", "sub-08"])
    assert_user_files_kept(out)


def test_a_run_killed_between_the_renames_leaves_no_metrics_json(folders, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(argv_for(folders, out)) == 0
    user_files(out)
    patch = f"""
    replace = os.replace
    def replace_or_die(source, destination):
        if str(destination) == {str(out / "report.html")!r}:
            os._exit(9)
        replace(source, destination)
    os.replace = replace_or_die
    """
    assert run_killed(argv_for(folders, out, "--seed", "1"), patch) == 9
    # The previous metrics.json went first: what is left is visibly not an evaluation.
    assert not (out / "metrics.json").exists()
    assert main(argv_for(folders, out, "--seed", "1")) == 0
    capsys.readouterr()
    assert sorted(path.name for path in out.iterdir()) == sorted([*SET, "notes.txt", "sub-08"])
    assert "seed: 1" in (out / "config.yaml").read_text()
    assert_user_files_kept(out)


def test_a_failed_run_keeps_the_previous_evaluation(folders, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(argv_for(folders, out)) == 0
    before = {name: (out / name).read_bytes() for name in SET}

    def broken(*args, **kwargs):
        raise RuntimeError("render failed")

    monkeypatch.setattr(api, "render_html", broken)
    with pytest.raises(RuntimeError, match="render failed"):
        main(argv_for(folders, out, "--seed", "1"))
    capsys.readouterr()
    assert sorted(path.name for path in out.iterdir()) == SET
    assert {name: (out / name).read_bytes() for name in SET} == before
