"""``ttdnet simulate-ceiling`` and the linear baselines on its files."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ttdnet.data import ThingsEEG2Dataset
from ttdnet.simulate.linear_gaussian import LinearGaussianModel, ceiling_scores
from ttdnet.stages.feature_file import read_feature_file
from ttdnet.stages.retrieval_baselines import encoding_baseline, protocol_arrays, ridge_baseline
from ttdnet.stages.simulate_ceiling import FEATURE_FILE, CeilingDataConfig, parameters_of, write_ceiling_dataset


def small(tmp_path, **changes) -> CeilingDataConfig:
    return CeilingDataConfig(
        output_dir=str(tmp_path / "ceiling"), n_train_concepts=60, images_per_concept=10, n_test_images=20,
        test_repetitions=40, ceiling_draws=2, snr=1.0, n_latent=8, n_unexplained=8, n_nuisance=8, feature_dim=32,
        **changes,
    )  # fmt: skip


@pytest.fixture(scope="module")
def linear_dataset(tmp_path_factory):
    """Linear features (gain 0): the Gaussian encoding model is then the right model."""
    config = small(tmp_path_factory.mktemp("linear"), nonlinearity_gain=0.0)
    return config, write_ceiling_dataset(config)


def test_files_read_back_and_the_ceiling_is_that_of_the_written_test_eeg(linear_dataset, tmp_path):
    config, record = linear_dataset
    root = config.output_dir
    test = ThingsEEG2Dataset(root, split="test", cache_dir=tmp_path / "cache")
    train = ThingsEEG2Dataset(root, split="train", cache_dir=tmp_path / "cache")
    assert len(test) == 20 and len(train) == 540 and test.n_repetitions == 40
    features = read_feature_file(f"{root}/{FEATURE_FILE}")
    features.check_paths("test", test.metadata.relative_paths("test"))
    assert features.features["training"].shape == (600, 4, 32)

    truth = np.load(f"{root}/latents.npz")
    subject = LinearGaussianModel(config.seed, parameters_of(config)).subject(1)
    raw = np.load(f"{root}/preprocessed_data/sub-01/preprocessed_eeg_test.npy", allow_pickle=True).item()
    queries = raw["preprocessed_eeg_data"].mean(axis=1)
    expected = ceiling_scores(subject.ranking_scores(queries, truth["test_latents"], 40))
    assert record["subjects"]["sub-01"]["on_these_files"] == expected
    stored = json.loads(open(f"{root}/ceiling.json").read())
    assert stored["subjects"] == record["subjects"] and stored["parameters"]["nonlinearity_gain"] == 0.0


def test_linear_baselines_learn_and_select_on_validation(linear_dataset, tmp_path):
    config, record = linear_dataset
    arrays = protocol_arrays(config.output_dir, f"{config.output_dir}/{FEATURE_FILE}", "sub-01", cache_dir=tmp_path)
    assert len(arrays.val_galleries) == 10 and all(len(g) == 6 for g in arrays.val_galleries)  # 6 held-out concepts
    ceiling = record["subjects"]["sub-01"]["on_these_files"]["top1"]
    for result in (ridge_baseline(arrays), encoding_baseline(arrays)):
        assert result.test["top1"] >= 0.3, result  # chance 0.05
        assert result.test["top1"] <= ceiling + 0.15
        best = max(entry["val_top1"] for entry in result.validation)
        assert best >= 0.4 and result.selected["alpha"] in [entry["alpha"] for entry in result.validation]


def test_a_bad_knob_is_one_line_and_exit_status_1(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "ttdnet", "simulate-ceiling", "--output_dir", str(tmp_path / "x"), "--snr", "-1"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "snr" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()
