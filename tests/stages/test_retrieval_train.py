"""``ttdnet train-retrieval`` end to end: accelerate launch, fresh folds, selection without test data, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from things_files import OFFICIAL_TIMES, write_eeg_file, write_image_set

from ttdnet.cli import available_commands, build_parser
from ttdnet.data.channels import POSTERIOR_17_CHANNELS
from ttdnet.stages.retrieval_features import run_features


ACCELERATE = str(Path(sys.executable).parent / "accelerate")


def write_subjects(root: Path, seed: int, test_noise_seed: int | None = None) -> None:
    """3 subjects whose EEG carries the image's pixels (so training has something to learn)."""
    from PIL import Image

    from ttdnet.data import read_image_metadata

    metadata = read_image_metadata(root / "image_set")
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((17, 48))
    for subject in ("sub-01", "sub-02", "sub-03"):
        for partition, n_reps in (("training", 4), ("test", 80)):
            thumbs = []
            for relative in metadata.relative_paths(partition):
                pixels = np.asarray(Image.open(root / "image_set" / relative).convert("RGB"), dtype=np.float64) / 255
                thumbs.append(pixels.reshape(4, 4, 4, 4, 3).mean(axis=(1, 3)).reshape(-1))
            signal = np.einsum("cf,nf->nc", mixing, np.array(thumbs))[:, None, :, None] * np.sin(np.arange(100) / 7)
            noise = rng.standard_normal((len(thumbs), n_reps, 17, 100))  # always drawn: training data stays equal
            if partition == "test" and test_noise_seed is not None:  # test EEG without any image information
                signal, noise = 0.0, np.random.default_rng(test_noise_seed).standard_normal(noise.shape)
            data = signal + noise
            write_eeg_file(root / subject / f"preprocessed_eeg_{partition}.npy", data, list(POSTERIOR_17_CHANNELS),
                           OFFICIAL_TIMES)  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("things")
    write_image_set(root / "image_set")
    write_subjects(root, seed=0)
    command = available_commands()["features"]
    config, _ = build_parser(command).parse_config(["--image_dir", str(root), "--output_dir", str(root / "features")])
    features = run_features(config)["output"]
    return root, features


def options(root, features, output_dir, **overrides):
    values = {
        "dataset_root": root,
        "features": features,
        "output_dir": output_dir,
        "cache_dir": Path(output_dir).parent / "cache",
        "encoder_size": "tiny",
        "proj_dim": 8,
        "image_hidden_dim": 16,
        "train_batch_size": 8,
        "num_train_epochs": 3,
        "mmd_epochs": 2,
        "val_fraction": 0.2,
        "selection_metric": "top1",
        "kway": [2],
        "topk": [1],
        "mc_trials": 5,
        "learning_rate": 1e-3,
        "report_to": "none",
        "seed": 3,
    }
    values.update(overrides)
    args = []
    for key, value in values.items():
        args += [f"--{key}", *([str(v) for v in value] if isinstance(value, list) else [str(value)])]
    return args


def run_in_process(args):
    from ttdnet.stages.retrieval_training import train

    config, _ = build_parser(available_commands()["train-retrieval"]).parse_config(args)
    return train(config)


def test_tiny_run_under_accelerate_launch(dataset, tmp_path):
    from accelerate.utils import write_basic_config

    root, features = dataset
    accelerate_config = tmp_path / "accelerate.yaml"
    write_basic_config(mixed_precision="no", save_location=str(accelerate_config))
    out = tmp_path / "run"
    command = [ACCELERATE, "launch", "--config_file", str(accelerate_config), "--cpu", "--num_processes", "1",
               "-m", "ttdnet", "train-retrieval", *options(root, features, out, eval_subjects=["1"])]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "results.json").read_text())
    assert [fold["subject"] for fold in report["subjects"]] == ["sub-01"]
    assert (
        report["protocol"]["protocol"] == "intra-subject"
        and "held-out training concepts" in (report["protocol"]["model_selection"])
    )
    assert (out / "results.csv").read_text().startswith("subject,selected_epoch,top1")
    assert "| sub-01 |" in (out / "results.md").read_text()
    fold_dir = out / "intra" / "sub-01"
    assert {"model", "model-last", "metrics.csv", "fold_results.json"} <= {p.name for p in fold_dir.iterdir()}
    # The saved model reproduces the reported test top-1 when scored again from disk.
    from ttdnet.data import ThingsEEG2Dataset
    from ttdnet.stages.retrieval_features import read_feature_file
    from ttdnet.stages.retrieval_model import load_retrieval_model
    from ttdnet.stages.retrieval_training import evaluate_split

    model, provenance = load_retrieval_model(fold_dir / "model")
    test = ThingsEEG2Dataset(root, split="test", subjects=[1], cache_dir=tmp_path / "cache")
    scores = evaluate_split(model, test, read_feature_file(features).features["test"], [2], [1], 0, 0, 8, "cpu")
    assert scores[1]["top1"].value == pytest.approx(report["subjects"][0]["test"]["top1"])
    assert provenance["selected"]["epoch"] == report["subjects"][0]["selection"]["epoch"]


def test_every_inter_fold_starts_from_the_same_fresh_weights(dataset, tmp_path):
    from accelerate.utils import set_seed

    from ttdnet.stages.retrieval_features import read_feature_file
    from ttdnet.stages.retrieval_training import build_model, state_fingerprint

    root, features = dataset
    report = run_in_process(options(root, features, tmp_path / "inter", protocol="inter", num_train_epochs=2))
    folds = report["subjects"]
    assert [f["subject"] for f in folds] == ["sub-01", "sub-02", "sub-03"]
    assert [f["train_subjects"] for f in folds][0] == ["sub-02", "sub-03"]
    assert len({f["initial_weights_sha256"] for f in folds}) == 1
    assert len({f["selected_weights_sha256"] for f in folds}) == 3
    assert all(f["initial_weights_sha256"] != f["selected_weights_sha256"] for f in folds)
    # And it is the model a fresh build with the seed gives (no state carried over from an earlier fold).
    config, _ = build_parser(available_commands()["train-retrieval"]).parse_config(options(root, features, tmp_path))
    loaded = read_feature_file(features)
    from ttdnet.stages.retrieval_training import _datasets, feature_statistics

    train_set = _datasets(config, ["sub-02", "sub-03"], "train", True)
    mean, std = feature_statistics(loaded.features["training"], np.unique(train_set._rows))
    signal = {"chs_info": [{"ch_name": n} for n in POSTERIOR_17_CHANNELS], "n_times": 100, "sfreq": 100.0}
    set_seed(config.seed)
    fresh = build_model(config, signal, loaded.n_layers, loaded.dim, 3, mean, std, "test")
    assert state_fingerprint(fresh) == folds[0]["initial_weights_sha256"]


def test_model_selection_never_sees_the_test_set(dataset, tmp_path):
    """Two runs that differ only in their test EEG must select the same epoch and the same weights."""
    import shutil

    root, features = dataset
    other = tmp_path / "other-test-data"
    shutil.copytree(root, other, ignore=shutil.ignore_patterns("features"))
    write_subjects(other, seed=0, test_noise_seed=99)  # same training data, test recordings of pure noise
    kwargs = {"eval_subjects": ["2"], "num_train_epochs": 4, "log_test_curves": "true"}
    first = run_in_process(options(root, features, tmp_path / "a", **kwargs))["subjects"][0]
    second = run_in_process(options(other, features, tmp_path / "b", **kwargs))["subjects"][0]
    assert first["selection"] == second["selection"]
    assert first["selected_weights_sha256"] == second["selected_weights_sha256"]
    curves = [row for row in (tmp_path / "a" / "intra" / "sub-02" / "metrics.csv").read_text().splitlines()
              if "test_curve" in row]  # fmt: skip
    assert len(curves) == 4  # logged every epoch, labelled, and still without influence on the selection
    test_eeg_a = np.load(root / "sub-02" / "preprocessed_eeg_test.npy", allow_pickle=True).item()
    test_eeg_b = np.load(other / "sub-02" / "preprocessed_eeg_test.npy", allow_pickle=True).item()
    assert not np.allclose(test_eeg_a["preprocessed_eeg_data"], test_eeg_b["preprocessed_eeg_data"])


def test_resume_matches_an_uninterrupted_run(dataset, tmp_path):
    root, features = dataset
    kwargs = {"eval_subjects": ["1"], "num_train_epochs": 4, "checkpointing_steps": 2}
    reference = run_in_process(options(root, features, tmp_path / "ref", **kwargs))["subjects"][0]
    out = tmp_path / "resumed"
    run_in_process(options(root, features, out, **{**kwargs, "num_train_epochs": 2}))
    (out / "intra" / "sub-01" / "fold_results.json").unlink()  # as if the run had been killed after its checkpoint
    resumed = run_in_process(options(root, features, out, resume_from_checkpoint="latest", **kwargs))["subjects"][0]
    assert resumed["selected_weights_sha256"] == reference["selected_weights_sha256"]
    assert resumed["test"] == reference["test"]
