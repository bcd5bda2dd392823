"""Bad input to ``ttdnet features`` and ``ttdnet train-retrieval``: one clear line, exit status 1, nothing written.

The bad feature files are written here with ``safetensors`` itself, in the published format (the metadata of
a good file, other tensors), never with ttdnet's writer, whose own checks would refuse them.
"""

import json

import pytest
import torch
from bad_input import assert_one_line_error
from retrieval_files import options, write_retrieval_dataset
from safetensors import safe_open
from safetensors.torch import save_file
from things_files import write_image_set

from ttdnet.cli import main


pytestmark = pytest.mark.bad_input


@pytest.fixture(scope="module")
def retrieval(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrieval")
    return root, write_retrieval_dataset(root)


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_image_set(root / "image_set")  # 15 training images, 4 test images
    return root


def write_like(good, path, change) -> dict:
    """Write ``path`` with the metadata of the feature file ``good`` and its tensors after
    ``change(tensors, metadata)``; return the metadata."""
    with safe_open(str(good), framework="pt") as handle:
        metadata, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}
    change(tensors, metadata)
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(path), metadata=metadata)
    return metadata


def set_row(split, row, value):
    """A change that sets one row to ``value`` over each layer's true width (zero padding after it)."""

    def change(tensors, metadata):
        tensors[split][row] = 0.0
        for layer, width in enumerate(json.loads(metadata["layer_dims"])):
            tensors[split][row, layer, :width] = value

    return change


def cast(split, dtype):
    def change(tensors, metadata):
        tensors[split] = tensors[split].to(dtype)

    return change


def zero_all(tensors, metadata):
    tensors["training"].zero_()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (cast("training", torch.int16), "{file}: the training features are int16; the format stores float16"),
        (cast("test", torch.float32), "{file}: the test features are float32; the format stores float16"),
        (set_row("training", 3, 0.0), "{file}: training row 3 ({training[3]}) is all zeros; every row must hold"),
        (set_row("test", 5, float("nan")), "{file}: test row 5 ({test[5]}) holds NaN or Inf values"),
        (set_row("training", 0, float("inf")), "{file}: training row 0 ({training[0]}) holds NaN or Inf values"),
        (set_row("training", 7, 0.5), "{file}: training row 7 ({training[7]}) is constant (every value is 0.5)"),
        (zero_all, "{file}: training row 0 ({training[0]}) is all zeros"),
    ],
)
def test_train_retrieval_refuses_a_bad_feature_file_before_anything_is_written(retrieval, tmp_path, capsys, change,
                                                                               expected):  # fmt: skip
    root, good = retrieval
    bad = tmp_path / "bad.safetensors"
    metadata = write_like(good, bad, change)
    paths = {split: json.loads(metadata[f"{split}_paths"]) for split in ("training", "test")}
    out = tmp_path / "run"
    assert main(["train-retrieval", *options(root, bad, out, eval_subjects=["1"], num_train_epochs=1)]) == 1
    line = assert_one_line_error(capsys, "train-retrieval", expected.format(file=bad, **paths))
    assert "learning_rate" not in line  # no longer a diverged training run
    assert not out.exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"kway": [2, 500]},
            "--kway 500: larger than the test gallery of 10 images, so never computed; give k-way sizes of at most 10",
        ),  # fmt: skip
        ({"topk": [1, 50]}, "--topk 50: larger than the test gallery of 10 images"),
        ({"selection_metric": "top7"}, "--selection_metric top7 cannot be computed on validation galleries of 6"),
        ({"tmin": "nan"}, "'tmin' is nan; it must be in (-inf, inf)"),
        ({"router_init_logits": [0.0, "inf", 0.0]}, "'router_init_logits' is inf; it must be in (-inf, inf)"),
    ],
)
def test_train_retrieval_options_are_refused_before_any_training_step(retrieval, tmp_path, capsys, overrides,
                                                                      expected):  # fmt: skip
    root, features = retrieval
    out = tmp_path / "run"
    args = options(root, features, out, eval_subjects=["1"], num_train_epochs=1, **overrides)
    assert main(["train-retrieval", *args]) == 1
    assert_one_line_error(capsys, "train-retrieval", expected)
    assert not out.exists()  # no run folder, so no metrics.csv or checkpoint of a first epoch either


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--batch_size", "0"], "option: 'batch_size' is 0; it must be in [1, inf)"),
        (["--chunk_size", "0"], "option: 'chunk_size' is 0; it must be in [1, inf)"),
        (["--dataloader_num_workers", "-1"], "option: 'dataloader_num_workers' is -1; it must be in [0, inf)"),
        (["--grid_size", "0", "--pooling", "grid"], "option: 'grid_size' is 0; it must be in [1, inf)"),
        (["--image_size", "0"], "option: 'image_size' is 0; it must be in [1, inf)"),
        (["--seed", "-1"], "option: 'seed' is -1; it must be in [0, 4294967295]"),
        (["--device", "cuda:7"], "--device cuda:7: this machine has {cuda} CUDA device(s)"),
    ],
)
def test_features_options(image_set, tmp_path, capsys, flags, expected):
    out = tmp_path / "features"
    assert main(["features", "--image_dir", str(image_set), "--output_dir", str(out), *flags]) == 1
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0  # 0 on a machine without GPUs
    assert_one_line_error(capsys, "features", expected.format(cuda=cuda))
    assert not out.exists()


def test_a_resume_with_another_chunk_size_says_how_to_proceed(image_set, tmp_path, capsys, monkeypatch):
    from ttdnet.cli import available_commands, build_parser
    from ttdnet.stages import retrieval_features
    from ttdnet.stages.feature_file import read_feature_file

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt

    def interrupted(out):
        """The partial folder of a run with --chunk_size 4 killed just before its final write."""
        args = ["--image_dir", str(image_set), "--output_dir", str(out), "--layers", "rgb2", "--chunk_size", "4"]
        config, _ = build_parser(available_commands()["features"]).parse_config(args)
        with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
            patch.setattr(retrieval_features, "write_feature_file", crash)
            retrieval_features.run_features(config)
        return out / ".pixels.safetensors.partial"

    def features(out, *flags):
        return main(["features", "--image_dir", str(image_set), "--output_dir", str(out), "--layers", "rgb2", *flags])

    out = tmp_path / "a"
    partial = interrupted(out)
    saved = sorted(p.name for p in partial.iterdir())
    capsys.readouterr()  # the progress bars of the interrupted run
    assert features(out, "--chunk_size", "5") == 1
    fix = "rerun with --chunk_size 4 to resume it, or add --overwrite to start again"
    made = "holds the training chunks of an interrupted run made 4 images at a time, not 5"
    assert_one_line_error(capsys, "features", f"{partial} {made}: {fix}")
    assert sorted(p.name for p in partial.iterdir()) == saved and not (out / "pixels.safetensors").exists()
    assert features(out, "--chunk_size", "20") == 1  # one chunk for all 15 images: the same misalignment
    assert_one_line_error(capsys, "features", f"{partial} {made.replace('not 5', 'not 20')}: {fix}")
    # Both ways out work, and give the features of an uninterrupted run.
    assert features(out, "--chunk_size", "4") == 0
    assert features(tmp_path / "b", "--chunk_size", "5") == 0
    other = interrupted(tmp_path / "c")
    assert features(tmp_path / "c", "--chunk_size", "5", "--overwrite") == 0 and not other.exists()
    reference = read_feature_file(tmp_path / "b" / "pixels.safetensors").features
    for folder in ("a", "c"):
        got = read_feature_file(tmp_path / folder / "pixels.safetensors").features
        assert all(torch.equal(got[split], reference[split]) for split in ("training", "test")), folder
