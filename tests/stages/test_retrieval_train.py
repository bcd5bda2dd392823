"""``ttdnet train-retrieval`` end to end: accelerate launch, fresh folds, selection without test data, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from retrieval_files import options, write_retrieval_dataset, write_subjects

from ttdnet.cli import available_commands, build_parser
from ttdnet.data.channels import POSTERIOR_17_CHANNELS


ACCELERATE = str(Path(sys.executable).parent / "accelerate")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("things")
    return root, write_retrieval_dataset(root)


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
    fold = report["subjects"][0]
    assert fold["chance"]["top1"] == pytest.approx(0.1)
    assert fold["test"]["top1"] >= 0.6, "the model did not learn the EEG-image relation (chance is 0.1)"
    assert "| sub-01 |" in (out / "results.md").read_text()
    fold_dir = out / "intra" / "sub-01"
    assert {"model", "model-last", "metrics.csv", "fold_results.json"} <= {p.name for p in fold_dir.iterdir()}
    # The saved model reproduces the reported test top-1 when scored again from disk.
    from ttdnet.data import ThingsEEG2Dataset
    from ttdnet.stages.feature_file import read_feature_file
    from ttdnet.stages.retrieval_eval import evaluate_split
    from ttdnet.stages.retrieval_persistence import load_retrieval_model

    model, provenance = load_retrieval_model(fold_dir / "model")
    test = ThingsEEG2Dataset(root, split="test", subjects=[1], cache_dir=tmp_path / "cache")
    scores = evaluate_split(model, test, read_feature_file(features).features["test"], [2], [1], 0, 0, 8, "cpu")
    assert scores[1]["top1"].value == pytest.approx(report["subjects"][0]["test"]["top1"])
    assert provenance["selected"]["epoch"] == report["subjects"][0]["selection"]["epoch"]


def test_every_inter_fold_starts_from_the_same_fresh_weights(dataset, tmp_path):
    from accelerate.utils import set_seed

    from ttdnet.models.fingerprint import state_fingerprint
    from ttdnet.stages.feature_file import read_feature_file
    from ttdnet.stages.retrieval_training import build_model

    root, features = dataset
    report = run_in_process(options(root, features, tmp_path / "inter", protocol="inter", num_train_epochs=2))
    folds = report["subjects"]
    assert [f["subject"] for f in folds] == ["sub-01", "sub-02", "sub-03"]
    assert [f["train_subjects"] for f in folds][0] == ["sub-02", "sub-03"]
    assert all(f["test"]["top1"] >= 0.6 for f in folds), [f["test"]["top1"] for f in folds]  # chance 0.1
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
    import shutil

    root, features = dataset
    kwargs = {"eval_subjects": ["1"], "num_train_epochs": 4, "checkpointing_steps": 2, "checkpoints_total_limit": 100}
    reference = run_in_process(options(root, features, tmp_path / "ref", **kwargs))["subjects"][0]
    out = tmp_path / "resumed"
    run_in_process(options(root, features, out, **kwargs))
    fold = out / "intra" / "sub-01"
    # As if killed just after step 14 (mid-way through epoch 2 of 9 steps each): later outputs never existed.
    for path in [fold / "fold_results.json", fold / "model", fold / "model-last", out / "results.json"]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for step in range(16, 37, 2):
        shutil.rmtree(fold / f"checkpoint-{step}")
    resumed = run_in_process(options(root, features, out, resume_from_checkpoint="latest", **kwargs))["subjects"][0]
    assert resumed["selected_weights_sha256"] == reference["selected_weights_sha256"]
    assert resumed["test"] == reference["test"]
    assert (fold / "metrics.csv").read_text() == (tmp_path / "ref" / "intra" / "sub-01" / "metrics.csv").read_text()


def test_a_frozen_encoder_is_never_trained_nor_put_in_training_mode(dataset, tmp_path):
    """NICE has BatchNorm: a single forward pass in training mode would change its running statistics."""
    from accelerate.utils import set_seed
    from safetensors.torch import load_file

    from ttdnet.stages.feature_file import read_feature_file
    from ttdnet.stages.retrieval_training import _datasets, build_model, feature_statistics

    root, features = dataset
    args = options(root, features, tmp_path / "frozen", encoder="nice", freeze_encoder="true", eval_subjects=["1"],
                   num_train_epochs=3)  # fmt: skip
    run_in_process(args)
    config, _ = build_parser(available_commands()["train-retrieval"]).parse_config(args)
    loaded = read_feature_file(features)
    train_set = _datasets(config, ["sub-01"], "train", True)
    mean, std = feature_statistics(loaded.features["training"], np.unique(train_set.image_indices))
    signal = {"chs_info": [{"ch_name": n} for n in POSTERIOR_17_CHANNELS], "n_times": 100, "sfreq": 100.0}
    set_seed(config.seed)
    fresh = build_model(config, signal, loaded.n_layers, loaded.dim, 3, mean, std, "test").state_dict()
    for saved in ("model", "model-last"):
        weights = load_file(str(tmp_path / "frozen" / "intra" / "sub-01" / saved / "model.safetensors"))
        encoder_keys = [key for key in weights if key.startswith("encoder.")]
        assert any("running_mean" in key for key in encoder_keys)
        for key in encoder_keys:
            assert torch.equal(weights[key], fresh[key]), f"{saved}: {key} changed"
        assert not torch.equal(weights["eeg_projector.weight"], fresh["eeg_projector.weight"])  # the rest trained


def test_resume_request_errors_say_what_to_do(dataset, tmp_path, capsys):
    from ttdnet.cli import main

    root, features = dataset
    out = tmp_path / "run"
    common = options(root, features, out, eval_subjects=["1", "2"], num_train_epochs=1, checkpointing_steps=2)
    assert main(["train-retrieval", *common]) == 0
    capsys.readouterr()
    assert main(["train-retrieval", *common, "--resume_from_checkpoint", "checkpoint-8"]) == 1
    assert "this run has 2 folds; give the path of a fold's checkpoint" in capsys.readouterr().err
    assert main(["train-retrieval", *common, "--resume_from_checkpoint", str(tmp_path / "checkpoint-8")]) == 1
    assert "is not a checkpoint of any fold of this run" in capsys.readouterr().err
    assert main(["train-retrieval", *common]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert main(["train-retrieval", *common, "--resume_from_checkpoint", "latest", "--learning_rate", "0.1"]) == 1
    assert "learning_rate: 0.003 -> 0.1" in capsys.readouterr().err
    # A checkpoint path inside a fold resumes that fold, even a finished one; the other fold is reused.
    checkpoint = out / "intra" / "sub-02" / "checkpoint-8"  # 9 steps, a checkpoint every 2, the newest 2 kept
    assert checkpoint.is_dir()
    assert main(["train-retrieval", *common, "--resume_from_checkpoint", str(checkpoint)]) == 0
    history = (out / "run_history.jsonl").read_text().splitlines()
    assert len(history) == 2 and str(checkpoint) in history[1]


def test_trackers_get_one_row_per_step_and_a_step_that_only_grows_across_folds(dataset, tmp_path, monkeypatch):
    from accelerate import Accelerator

    logged = []
    monkeypatch.setattr(
        Accelerator, "log", lambda self, values, step=None, log_kwargs=None: logged.append((step, values))
    )
    root, features = dataset
    report = run_in_process(options(root, features, tmp_path / "inter", protocol="inter", eval_subjects=["1", "2"],
                                    num_train_epochs=2))  # fmt: skip
    steps = [step for step, _ in logged]
    assert steps == list(range(1, len(steps) + 1))  # one row per optimizer step, never repeated or decreasing
    assert len(steps) == sum(fold["steps"] for fold in report["subjects"])
    second_fold = [values for _, values in logged if any(key.startswith("inter/sub-02/") for key in values)]
    assert len(second_fold) == report["subjects"][1]["steps"] and "inter/sub-02/val/top1" in second_fold[-1]


def test_default_kway_sizes_beyond_the_test_gallery_are_listed_next_to_the_results(dataset, tmp_path):
    from retrieval_files import TEST_CONCEPTS

    root, features = dataset
    out = tmp_path / "run"
    default_kway = [2, 4, 10, 50, 100, 200]  # documented default, given as the flag would be
    report = run_in_process(options(root, features, out, eval_subjects=["1"], num_train_epochs=1, kway=default_kway,
                                    topk=[1, 5]))  # fmt: skip
    assert len(TEST_CONCEPTS) == 10  # the test gallery: one image per test concept
    note = "50, 100, 200: larger than the test gallery of 10 images"
    assert report["protocol"]["kway_not_computed"] == note and "topk_not_computed" not in report["protocol"]
    scores = report["subjects"][0]["test"]
    assert {"top1_10way", "top5_10way"} <= set(scores) and not any("_50way" in key for key in scores)
    assert json.loads((out / "results.json").read_text())["protocol"]["kway_not_computed"] == note
    assert f"- **kway_not_computed**: {note}" in (out / "results.md").read_text()
