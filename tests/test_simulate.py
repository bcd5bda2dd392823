"""Tests of ``ttdnet simulate``: official formats, determinism, safety, and the physiology of the EEG model."""

import dataclasses
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.signal import find_peaks, welch

from ttdnet.cli import main
from ttdnet.commands.simulate import SimulateConfig
from ttdnet.errors import TtdnetError
from ttdnet.simulate import epochs, spectral
from ttdnet.simulate.eeg_model import EegModel
from ttdnet.simulate.features import image_features
from ttdnet.simulate.images import render_image
from ttdnet.simulate.names import concept_names
from ttdnet.simulate.writer import simulate_dataset


# Written out from the published THINGS-EEG2 channel lists, not imported, so the tests check the code.
SPEC_17 = "Pz P3 P7 O1 Oz O2 P4 P8 P1 P5 PO7 PO3 POz PO4 PO8 P6 P2".split()
SPEC_63 = (
    "Fp1 F3 F7 FT9 FC5 FC1 C3 T7 TP9 CP5 CP1 Pz P3 P7 O1 Oz O2 P4 P8 TP10 CP6 CP2 Cz C4 T8 FT10 "
    "FC6 FC2 F4 F8 Fp2 AF7 AF3 AFz F1 F5 FT7 FC3 FCz C1 C5 TP7 CP3 P1 P5 PO7 PO3 POz PO4 PO8 P6 "
    "P2 CPz CP4 TP8 C6 C2 FC4 FT8 F6 F2 AF4 AF8"
).split()
SPEC_TEST_SESSION_01 = [10, 16, 20, 21, 23, 25, 30, 31, 35, 37, 40, 43, 53, 54, 59, 61, 64, 66, 68, 77]
METADATA_KEYS = {
    "train_img_concepts",
    "train_img_files",
    "train_img_concepts_THINGS",
    "test_img_concepts",
    "test_img_files",
    "test_img_concepts_THINGS",
}
SMALL = {
    "n_subjects": 2,
    "n_train_concepts": 6,
    "images_per_concept": 4,
    "n_test_images": 5,
    "train_repetitions": 4,
    "test_repetitions": 8,
    "image_size": 32,
}


def small_config(output_dir: Path, **overrides) -> SimulateConfig:
    return SimulateConfig(output_dir=str(output_dir), **{**SMALL, **overrides})


def load(path: Path) -> dict:
    return np.load(path, allow_pickle=True).item()


def all_files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("simulate") / "small"
    simulate_dataset(small_config(root))
    return root


@pytest.fixture(scope="module")
def model() -> EegModel:
    return EegModel(seed=0)


# ----- on-disk formats -----


@pytest.mark.parametrize("partition, n_rows, n_reps", [("training", 24, 4), ("test", 5, 8)])
def test_eeg_files_have_the_official_container(dataset, partition, n_rows, n_reps):
    for subject in ("sub-01", "sub-02"):
        path = dataset / "preprocessed_data" / subject / f"preprocessed_eeg_{partition}.npy"
        assert path.read_bytes()[:6] == b"\x93NUMPY"
        content = load(path)
        assert list(content) == ["preprocessed_eeg_data", "ch_names", "times"]
        data = content["preprocessed_eeg_data"]
        assert data.dtype == np.float64 and data.flags.c_contiguous
        assert data.shape == (n_rows, n_reps, 17, 100)
        assert np.isfinite(data).all()
        assert type(content["ch_names"]) is list and content["ch_names"] == SPEC_17
        assert content["times"].dtype == np.float64
        np.testing.assert_array_equal(content["times"], np.arange(100) / 100 - 0.2)


def test_63_channels_are_in_raw_order(tmp_path):
    simulate_dataset(small_config(tmp_path / "ds", n_subjects=1, n_chans=63))
    content = load(tmp_path / "ds" / "preprocessed_data" / "sub-01" / "preprocessed_eeg_test.npy")
    assert content["ch_names"] == SPEC_63
    assert content["preprocessed_eeg_data"].shape == (5, 8, 63, 100)


def test_image_metadata_matches_the_image_folders(dataset):
    metadata = load(dataset / "image_set" / "image_metadata.npy")
    assert set(metadata) == METADATA_KEYS
    assert all(type(values) is list and all(type(v) is str for v in values) for values in metadata.values())
    assert len(metadata["train_img_files"]) == 24 and len(metadata["test_img_files"]) == 5

    for partition, folder in (("train", "training_images"), ("test", "test_images")):
        walked = [
            (concept.name, file.name)
            for concept in sorted((dataset / "image_set" / folder).iterdir())
            for file in sorted(concept.iterdir())
        ]
        assert walked == list(zip(metadata[f"{partition}_img_concepts"], metadata[f"{partition}_img_files"]))

    train_names = [folder.split("_", 1)[1] for folder in metadata["train_img_concepts"][::4]]
    test_names = [folder.split("_", 1)[1] for folder in metadata["test_img_concepts"]]
    assert train_names == sorted(train_names) and test_names == sorted(test_names)
    assert not set(train_names) & set(test_names)
    assert any("_" in name for name in train_names + test_names)
    everything = sorted(train_names + test_names)
    for i, (folder, file, things) in enumerate(
        zip(metadata["train_img_concepts"], metadata["train_img_files"], metadata["train_img_concepts_THINGS"])
    ):
        name = train_names[i // 4]
        assert folder == f"{i // 4 + 1:05d}_{name}"
        assert file == f"{name}_{i % 4 + 1:02d}{'b' if i % 4 == 0 else 's'}.jpg"
        assert things == f"{everything.index(name) + 1:05d}_{name}"
    for k, (folder, file, things) in enumerate(
        zip(metadata["test_img_concepts"], metadata["test_img_files"], metadata["test_img_concepts_THINGS"])
    ):
        name = test_names[k]
        assert folder == f"{k + 1:05d}_{name}" and things == f"{everything.index(name) + 1:05d}_{name}"
        assert re.fullmatch(re.escape(name) + r"_\d\d[bs]\.jpg", file)

    image = Image.open(
        dataset / "image_set" / "training_images" / metadata["train_img_concepts"][0] / metadata["train_img_files"][0]
    )
    assert image.format == "JPEG" and image.mode == "RGB" and image.size == (32, 32)


def test_simulation_json_records_the_model_without_paths(dataset):
    record = json.loads((dataset / "simulation.json").read_text())
    assert record["generator"] == "ttdnet.simulate" and record["seed"] == 0
    assert record["scale"]["n_train_concepts"] == 6 and set(record["subjects"]) == {"sub-01", "sub-02"}
    assert str(dataset) not in (dataset / "simulation.json").read_text()
    assert "mne" in record["versions"]


def test_names_and_images_do_not_depend_on_scale():
    small_train, _ = concept_names(3, 10, 2)
    large_train, large_test = concept_names(3, 300, 60)
    assert set(small_train) <= set(large_train)
    assert not set(large_train) & set(large_test) and len(set(large_train)) == 300
    np.testing.assert_array_equal(render_image(3, small_train[0], 2, 48), render_image(3, small_train[0], 2, 48))


# ----- determinism and safety -----


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path, dataset):
    simulate_dataset(small_config(tmp_path / "again"))
    first, second = all_files(dataset), all_files(tmp_path / "again")
    assert first.keys() == second.keys()
    for name in first:
        if name == "config.yaml":  # records output_dir, which differs on purpose
            strip = re.compile(rb"^output_dir:.*$", re.M)
            assert strip.sub(b"", first[name]) == strip.sub(b"", second[name])
        else:
            assert first[name] == second[name], name

    simulate_dataset(small_config(tmp_path / "other", seed=1))
    other = all_files(tmp_path / "other")
    for name in ("preprocessed_data/sub-01/preprocessed_eeg_training.npy", "image_set/image_metadata.npy"):
        assert other[name] != first[name]


def test_refuses_a_folder_that_is_not_a_synthetic_dataset(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(TtdnetError, match="not empty"):
            simulate_dataset(small_config(target, overwrite=overwrite))
    assert [path.name for path in tmp_path.iterdir()] == ["mine"]
    assert (target / "notes.txt").read_text() == "precious"


def test_overwrite_replaces_a_previous_synthetic_dataset(tmp_path):
    target = tmp_path / "ds"
    simulate_dataset(small_config(target, n_subjects=1))
    with pytest.raises(TtdnetError, match="--overwrite"):
        simulate_dataset(small_config(target, n_subjects=1, seed=5))
    simulate_dataset(small_config(target, n_subjects=1, seed=5, overwrite=True))
    assert json.loads((target / "simulation.json").read_text())["seed"] == 5
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ds"]


def test_an_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(epochs, "simulate_partition", fail)
    with pytest.raises(KeyboardInterrupt):
        simulate_dataset(small_config(tmp_path / "ds"))
    assert list(tmp_path.iterdir()) == []


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(tmp_path):
    """SIGKILL runs no cleanup code: the hidden staging folder stays until the next run into that folder."""
    arguments = [f"--{key}={value}" for key, value in SMALL.items()] + ["--n_subjects=2"]
    command = [sys.executable, "-m", "ttdnet", "simulate", "--output_dir", str(tmp_path / "ds"), *arguments]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        staging = list(tmp_path.glob(".ds.ttdnet-*partial-*/preprocessed_data"))
        if staging:
            break
        time.sleep(0.005)
    process.kill()
    assert process.wait() == -signal.SIGKILL, "simulate finished before it could be killed"
    (left,) = (path.name for path in tmp_path.iterdir())
    assert left.startswith(f".ds.ttdnet-{process.pid}-") and "partial-" in left
    (tmp_path / "elsewhere.txt").write_text("a user's file")
    simulate_dataset(small_config(tmp_path / "ds", n_subjects=1))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ds", "elsewhere.txt"]


def test_cli_help_and_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--help"])
    assert exit_info.value.code == 0
    assert "--snr" in capsys.readouterr().out

    arguments = [f"--{key}={value}" for key, value in SMALL.items()] + ["--n_subjects=1"]
    assert main(["simulate", "--output_dir", str(tmp_path / "ds"), *arguments]) == 0
    assert "sub-01" in capsys.readouterr().out
    assert (tmp_path / "ds" / "preprocessed_data" / "sub-01" / "preprocessed_eeg_test.npy").is_file()
    assert main(["simulate", "--output_dir", str(tmp_path / "ds"), *arguments]) == 1
    assert "--overwrite" in capsys.readouterr().err


# ----- repetition design -----


def test_repetitions_follow_the_official_session_permutation():
    merged = epochs.test_sessions(n_images=3, n_repetitions=80)
    stored = epochs.stored_order(merged)
    assert sorted(np.flatnonzero(stored[0] == 0).tolist()) == SPEC_TEST_SESSION_01
    training = epochs.training_sessions(np.random.default_rng(0), n_concepts=10, images_per_concept=2, n_repetitions=4)
    assert training.shape == (20, 4)
    assert np.all(np.isin(training[:, :2], [0, 1])) and np.all(np.isin(training[:, 2:], [2, 3]))
    assert np.all(training[:, 0] == training[:, 1]) and np.bincount(training[::2, 0]).tolist() == [5, 5]


# ----- images -----


def test_images_of_a_concept_look_alike(tmp_path):
    names, _ = concept_names(0, 12, 1)
    thumbnails = np.stack(
        [
            np.asarray(Image.fromarray(render_image(0, name, number, 64)).resize((8, 8)), dtype=float).ravel()
            for name in names
            for number in range(1, 6)
        ]
    )
    correlation = np.corrcoef(thumbnails - thumbnails.mean(0))
    same = np.repeat(np.arange(12), 5)[:, None] == np.repeat(np.arange(12), 5)[None, :]
    within = correlation[same & ~np.eye(60, dtype=bool)].mean()
    between = correlation[~same].mean()
    assert within > between + 0.3


# ----- EEG model -----


def test_snr_is_the_ratio_of_image_driven_signal_to_noise(model):
    subject = model.subject(1)
    names, _ = concept_names(0, 8, 1)
    features = np.stack([image_features(render_image(0, name, n, 32)) for name in names for n in (1, 2)])
    subject.calibrate(features, snr=0.5)
    posterior = [SPEC_63.index(name) for name in SPEC_17]
    post_stimulus = np.arange(80) / 100
    signal = subject.evoked(features, post_stimulus, posterior, include_common=False)
    noise = subject.noise(np.random.default_rng(1), 4000, 100, 100.0, posterior)
    assert np.sqrt(np.mean(signal**2)) / np.sqrt(np.mean(noise**2)) == pytest.approx(0.5, rel=0.05)
    common = subject.evoked(features[:1], post_stimulus, posterior) - signal[:1]
    assert np.sqrt(np.mean(common**2)) / np.sqrt(np.mean(signal**2)) == pytest.approx(1.5, rel=1e-6)


def test_erp_peaks_at_the_component_latencies(model):
    subject = model.subject(2)
    times = np.arange(-200, 800) / 1000
    posterior = [SPEC_63.index(name) for name in SPEC_17]
    erp = subject.evoked(np.zeros((1, image_features(np.zeros((8, 8, 3), np.uint8)).size)), times, posterior)[0]
    global_field_power = erp.std(axis=0)
    peaks, _ = find_peaks(global_field_power)
    peak_times = times[peaks]
    assert np.all(np.abs(erp[:, times < 0.03]) < 1e-3 * np.abs(erp).max())
    assert np.any(np.abs(peak_times - 0.100) < 0.03)
    assert np.any(np.abs(peak_times - 0.170) < 0.03)
    assert np.any((peak_times > 0.25) & (peak_times < 0.4))


def test_noise_spectrum_is_1_over_f_with_an_alpha_peak(model):
    subject = model.subject(1)
    oz = SPEC_63.index("Oz")
    noise = subject.noise(np.random.default_rng(0), 1, 200 * 1000, 1000.0, [oz])[0, 0]
    frequencies, psd = welch(noise, fs=1000.0, nperseg=4000)
    band = (frequencies >= 2) & (frequencies <= 6) | (frequencies >= 15) & (frequencies <= 30)
    slope = np.polyfit(np.log(frequencies[band]), np.log(psd[band]), 1)[0]
    assert -1.3 < slope < -0.6
    alpha = psd[np.argmin(np.abs(frequencies - subject.alpha_frequency_hz))]
    flanks = np.sqrt(psd[np.argmin(np.abs(frequencies - 6))] * psd[np.argmin(np.abs(frequencies - 16))])
    assert alpha > 3 * flanks


def test_spectral_synthesis_has_its_expected_variance():
    def psd(frequencies):
        return 1.0 / frequencies

    samples = spectral.synthesize(np.random.default_rng(0), psd, 20000, 100, 100.0)
    assert samples.var() == pytest.approx(spectral.expected_variance(psd, 100, 100.0), rel=0.03)


def test_whitening_makes_the_noise_white(model):
    subject = model.subject(1)
    channels = [SPEC_63.index(name) for name in SPEC_17]
    whitener = epochs.mvnn_whitener(subject, channels, seed=0)
    noise = epochs.baseline_correct(subject.noise(np.random.default_rng(7), 2000, 100, 100.0, channels))
    covariance = np.cov(np.matmul(whitener, noise).transpose(1, 0, 2).reshape(17, -1))
    np.testing.assert_allclose(np.diag(covariance), 1.0, atol=0.15)
    assert np.abs(covariance - np.diag(np.diag(covariance))).max() < 0.15


def _split_half_reliability(root: Path) -> float:
    data = load(root / "preprocessed_data" / "sub-01" / "preprocessed_eeg_test.npy")["preprocessed_eeg_data"]
    halves = [data[:, half::2, :, 20:].mean(axis=1).reshape(len(data), -1) for half in (0, 1)]
    halves = [half - half.mean(axis=0) for half in halves]
    return float(np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(*halves)]))


def test_higher_snr_gives_more_reliable_image_responses(tmp_path):
    reliability = []
    for snr in (0.1, 1.0):
        simulate_dataset(
            small_config(tmp_path / str(snr), n_subjects=1, n_test_images=8, test_repetitions=40, snr=snr)
        )
        reliability.append(_split_half_reliability(tmp_path / str(snr)))
    assert reliability[0] < reliability[1] and reliability[1] > 0.5


def test_eeg_of_a_concept_is_more_alike_than_across_concepts(tmp_path):
    root = tmp_path / "ds"
    simulate_dataset(small_config(root, n_subjects=1, n_train_concepts=10, images_per_concept=6, snr=1.0))
    data = load(root / "preprocessed_data" / "sub-01" / "preprocessed_eeg_training.npy")["preprocessed_eeg_data"]
    responses = data[..., 20:].mean(axis=1).reshape(60, -1)
    correlation = np.corrcoef(responses - responses.mean(axis=0))
    concept = np.repeat(np.arange(10), 6)
    same = concept[:, None] == concept[None, :]
    assert correlation[same & ~np.eye(60, dtype=bool)].mean() > correlation[~same].mean() + 0.2


@pytest.mark.slow
def test_full_scale_single_subject(tmp_path):
    config = dataclasses.replace(
        SimulateConfig(output_dir=str(tmp_path / "full")), n_subjects=1, n_train_concepts=1654, n_test_images=200
    )
    summary = simulate_dataset(config)
    assert summary.train_shape == (16540, 4, 17, 100) and summary.test_shape == (200, 80, 17, 100)
    metadata = load(tmp_path / "full" / "image_set" / "image_metadata.npy")
    assert len(metadata["train_img_files"]) == 16540 and len(set(metadata["test_img_concepts"])) == 200
