"""A bad value or file given to ``ttdnet evaluate`` is one clear line on stderr and exit status 1, never a traceback.

Each case also checks that nothing was written: the checks run before any work.
"""

import numpy as np
import pytest
import tifffile
import torch
from bad_input import assert_one_line_error
from eval_fixtures import smooth_image, write_image

from ttdnet.cli import main


pytestmark = pytest.mark.bad_input


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Three ground-truth images and a noisy reconstruction of each."""
    root = tmp_path_factory.mktemp("folders")
    rng = np.random.default_rng(0)
    for i in range(3):
        image = smooth_image(rng, 16)
        write_image(root / "gt" / f"{i}.png", image)
        write_image(root / "rec" / f"{i}.png", image)
    return root


def evaluate_args(folders, out, *flags):
    return ["evaluate", "--ground_truth", str(folders / "gt"), "--reconstructions", str(folders / "rec"),
            "--output_dir", str(out), "--metrics", "pixcorr", "--device", "cpu", "--no_progress", *flags]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--batch_size", "0"], "option: 'batch_size' is 0; it must be in [1, inf)"),
        (["--kid_subset_size", "1"], "option: 'kid_subset_size' is 1; it must be in [2, inf)"),
        (["--seed", "-1"], "option: 'seed' is -1; it must be in [0, inf)"),
        (["--eval_size", "6"], "option: 'eval_size' is 6; it must be in [7, inf)"),
        (["--nway_clip_ns", "2", "1"], "option: 'nway_clip_ns' is 1; it must be in [2, inf)"),
        (["--kid_subsets", "0"], "option: 'kid_subsets' is 0; it must be in [1, inf)"),
    ],
)
def test_numeric_option_out_of_range(folders, tmp_path, capsys, flags, expected):
    assert main(evaluate_args(folders, tmp_path / "out", *flags)) == 1
    assert_one_line_error(capsys, "evaluate", expected)
    assert not (tmp_path / "out").exists()


def test_numeric_option_out_of_range_in_a_preset(folders, tmp_path, capsys):
    preset = tmp_path / "evaluate.yaml"
    preset.write_text("nway_n: 1\nbatch_size: 4\n")
    assert main(evaluate_args(folders, tmp_path / "out", "--config", str(preset))) == 1
    assert_one_line_error(capsys, "evaluate", "'nway_n' is 1; it must be in [2, inf)")


def test_empty_metric_list_in_a_preset(folders, tmp_path, capsys):
    preset = tmp_path / "evaluate.yaml"
    preset.write_text("metrics: []\n")
    argv = [arg for arg in evaluate_args(folders, tmp_path / "out") if arg not in ("--metrics", "pixcorr")]
    assert main([*argv, "--config", str(preset)]) == 1
    assert_one_line_error(capsys, "evaluate", "--metrics is empty; name at least one metric or group")
    assert not (tmp_path / "out").exists()


def test_a_cuda_device_the_machine_lacks(folders, tmp_path, capsys):
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count > 7:
        pytest.skip("this machine has a cuda:7")
    assert main(evaluate_args(folders, tmp_path / "out", "--device", "cuda:7")) == 1
    assert_one_line_error(capsys, "evaluate", f"--device cuda:7: this machine has {count} CUDA device(s)")


def test_output_dir_that_is_a_file(folders, tmp_path, capsys):
    target = tmp_path / "results"
    target.write_text("not a folder\n")
    assert main(evaluate_args(folders, target)) == 1
    assert_one_line_error(capsys, "evaluate", f"--output_dir {target} exists and is not a folder")
    assert target.read_text() == "not a folder\n"


@pytest.mark.parametrize("name", ["config.yaml", "report.md", "metrics.json"])
def test_output_dir_whose_file_an_evaluation_would_replace(folders, tmp_path, capsys, name):
    # The user's own file under one of the evaluation's names (a training run's config.yaml, notes, results).
    out = tmp_path / "project"
    out.mkdir()
    mine = {"config.yaml": "# Resolved configuration of `ttdnet generate`\nseed: 1\n", "report.md": "# My notes\n",
            "metrics.json": '{"accuracy": 0.9}\n'}[name]  # fmt: skip
    (out / name).write_text(mine)
    assert main(evaluate_args(folders, out)) == 1
    assert_one_line_error(
        capsys, "evaluate", f"--output_dir {out}: {out / name} was not written by `ttdnet evaluate` and an evaluation"
    )
    assert (out / name).read_text() == mine
    assert sorted(path.name for path in out.iterdir()) == [name]


def test_floating_point_image_is_refused(folders, tmp_path, capsys):
    rec = tmp_path / "rec"
    rec.mkdir()
    for i in range(3):
        tifffile.imwrite(rec / f"{i}.tif", np.full((16, 16), 0.5, dtype=np.float32))
    argv = evaluate_args(folders, tmp_path / "out")
    argv[argv.index("--reconstructions") + 1] = str(rec)
    assert main(argv) == 1
    assert_one_line_error(
        capsys, "evaluate", f"cannot score image {rec / '0.tif'}: its pixels are floating-point (PIL mode F)"
    )
    assert not (tmp_path / "out").exists()


def test_ground_truth_folder_given_as_the_reconstructions(folders, tmp_path, capsys):
    argv = evaluate_args(folders, tmp_path / "out")
    argv[argv.index("--reconstructions") + 1] = str(folders / "gt")
    assert main(argv) == 1
    gt = folders / "gt"
    assert_one_line_error(
        capsys,
        "evaluate",
        f"3 reconstruction(s) are the ground-truth file itself: {gt / '0.png'}, {gt / '1.png'}, {gt / '2.png'}; "
        "pass the folder (or manifest) of the reconstructions",
    )
    assert not (tmp_path / "out").exists()
