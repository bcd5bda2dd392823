"""A bad value given to a training command is one clear line on stderr and exit status 1, never a traceback."""

import pytest
from bad_input import assert_one_line_error
from retrieval_files import options, write_retrieval_dataset
from things_files import write_one_subject

from ttdnet.cli import main


pytestmark = pytest.mark.bad_input


@pytest.fixture(scope="module")
def things(tmp_path_factory):
    """One small official-format subject."""
    return write_one_subject(tmp_path_factory.mktemp("things"))


@pytest.fixture(scope="module")
def retrieval(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrieval")
    return root, write_retrieval_dataset(root)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--mask_ratio", "1.0"], "'mask_ratio' is 1.0; it must be in (0, 1)"),
        (["--mask_ratio", "0"], "'mask_ratio' is 0.0; it must be in (0, 1)"),
        (["--mask_ratio", "1.5"], "it must be in (0, 1)"),
        (["--train_batch_size", "0"], "'train_batch_size' is 0; it must be in [1, inf)"),
        (["--gradient_accumulation_steps", "0"], "'gradient_accumulation_steps' is 0"),
        (["--learning_rate", "-1"], "'learning_rate' is -1.0; it must be in (0, inf)"),
        (["--val_fraction", "1"], "'val_fraction' is 1.0; it must be in [0, 1)"),
        (["--decoder_dim", "15"], "a transformer width of 15 does not divide into 2 attention heads"),
        (["--mask_ratio", "0.001"], "mask_ratio=0.001 masks 0 of 100 samples"),
        (["--resume_from_checkpoint", "checkpoint-3"], "checkpoint 'checkpoint-3' not found"),
        (["--report_to", "mlflo"], "unknown tracker(s) ['mlflo']"),
    ],
)
def test_pretrain(things, tmp_path, capsys, flags, expected):
    args = ["--dataset_root", str(things), "--output_dir", str(tmp_path / "run"),
            "--eeg_cache_dir", str(tmp_path / "c"), "--encoder_preset", "tiny", "--decoder_heads", "2",
            "--max_train_steps", "2", "--report_to", "none"]  # fmt: skip
    assert main(["pretrain", *args, *flags]) == 1
    assert_one_line_error(capsys, "pretrain", expected)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"router_init_logits": [1.0, 2.0]}, "router_init_logits has 2 values for 3 feature layers"),
        ({"layer_mode": "single", "single_layer": 7}, "single_layer=7 is out of range for 3 feature layers"),
        ({"smooth_kernel": 4}, "the smoothing kernel size (smooth_kernel) must be odd and positive, got 4"),
        ({"selection_metric": "top7"}, "--selection_metric top7 cannot be computed on validation galleries of 6"),
        ({"kway": [1]}, "'kway' is 1; it must be in [2, inf)"),
        ({"train_batch_size": 0}, "'train_batch_size' is 0"),
        ({"val_fraction": 0.0}, "the validation split holds 0 concept(s)"),
        ({"proj_dim": -3}, "'proj_dim' is -3"),
    ],
)
def test_train_retrieval(retrieval, tmp_path, capsys, overrides, expected):
    root, features = retrieval
    args = options(root, features, tmp_path / "run", eval_subjects=["1"], num_train_epochs=1, **overrides)
    assert main(["train-retrieval", *args]) == 1
    assert_one_line_error(capsys, "train-retrieval", expected)


def test_a_start_that_failed_on_bad_input_can_be_run_again_without_overwrite(retrieval, tmp_path, capsys):
    root, features = retrieval
    out = tmp_path / "run"
    assert main(["train-retrieval", *options(root, features, out, eval_subjects=["1"], num_train_epochs=1,
                                             router_init_logits=[1.0])]) == 1  # fmt: skip
    assert (out / "config.yaml").is_file()  # the failure came after the run folder was recorded
    assert main(["train-retrieval", *options(root, features, out, eval_subjects=["1"], num_train_epochs=1)]) == 0


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--window_seconds", "0"], "option: 'window_seconds' is 0.0; it must be in (0, inf)"),
        (["--stride_seconds", "-1"], "option: 'stride_seconds' is -1.0; it must be in (0, inf)"),
    ],
)
def test_preprocess_edf_window_options(tmp_path, capsys, flags, expected):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.edf").write_bytes(b"0")
    args = ["--input_dir", str(tmp_path / "in"), "--output_dir", str(tmp_path / "out"), *flags]
    assert main(["preprocess", "edf", *args]) == 1
    assert_one_line_error(capsys, "preprocess edf", expected)


def test_the_error_line_reaches_a_multi_process_launchers_report(things, tmp_path, capsys, monkeypatch):
    """torch elastic shows a worker's TORCHELASTIC_ERROR_FILE message as the failure's traceback line."""
    import json

    error_file = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    assert main(["pretrain", "--dataset_root", str(things), "--mask_ratio", "2", "--output_dir", str(tmp_path)]) == 1
    assert_one_line_error(capsys, "pretrain", "'mask_ratio' is 2.0")
    assert json.loads(error_file.read_text())["message"].startswith("ttdnet pretrain: error: option: 'mask_ratio'")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["simulate-ceiling", "--n_test_images", "3"], "option: 'n_test_images' is 3; it must be in [5, inf)"),
        (["simulate-ceiling", "--images_per_concept", "100"], "'images_per_concept' is 100; it must be in [1, 99]"),
        (["simulate-ceiling", "--train_repetitions", "1"], "'train_repetitions' is 1; it must be in [2, inf)"),
        (["generate", "--seed", "-1"], "option: 'seed' is -1; it must be in [0, 4294967295]"),
        (["tiny-base", "--seed", "-3"], "option: 'seed' is -3; it must be in [0, 4294967295]"),
        (["pretrain", "--split_seed", "-1"], "option: 'split_seed' is -1"),
        (["generate", "--device", "cuda:7"], "--device cuda:7: this machine has"),
        (["tiny-base", "--device", "tpu"], "--device 'tpu' is not a device name"),
    ],
)
def test_values_are_checked_before_anything_is_written(tmp_path, capsys, argv, expected):
    out = tmp_path / "out"
    assert main([*argv, "--output_dir", str(out)]) == 1
    assert_one_line_error(capsys, argv[0], expected)
    assert not out.exists()


def test_pretraining_on_a_corpus_where_every_recording_failed(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for name in ("a.edf", "b.edf"):
        (tmp_path / "in" / name).write_bytes(b"not an EDF file")
    corpus = tmp_path / "windows"
    assert main(["preprocess", "edf", "--input_dir", str(tmp_path / "in"), "--output_dir", str(corpus)]) == 1
    capsys.readouterr()
    args = ["--edf_windows", str(corpus), "--output_dir", str(tmp_path / "run"), "--encoder_preset", "tiny",
            "--max_train_steps", "1", "--report_to", "none"]  # fmt: skip
    assert main(["pretrain", *args]) == 1
    assert_one_line_error(capsys, "pretrain", f"{corpus / 'index.json'}: the corpus holds no windows")
