"""``ttdnet simulate --raw``: the published raw format, and the pipeline raw -> preprocessed -> dataset."""

from pathlib import Path

import numpy as np
import pytest

from ttdnet.cli import main
from ttdnet.data import ThingsEEG2Dataset, read_preprocessed_eeg
from ttdnet.data.channels import RAW_63_CHANNELS


SCALE = [
    "--n_subjects", "1", "--n_train_concepts", "4", "--images_per_concept", "2", "--n_test_images", "3",
    "--train_repetitions", "4", "--test_repetitions", "80", "--image_size", "16",
]  # fmt: skip
"""20 test repetitions per session, as the real data and the shipped presets' max_rep_test."""
PRESETS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("preprocess_things_eeg2*.yaml"))


@pytest.fixture(scope="module")
def simulated_raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("rawsim") / "data"
    # A high SNR so the evoked response must show up at the right place after preprocessing.
    assert main(["simulate", "--output_dir", str(root), "--raw", "--snr", "3", *SCALE]) == 0
    return root


def load(path):
    return np.load(path, allow_pickle=True).item()  # independent of the data layer (our own test file)


def test_raw_files_follow_the_published_format(simulated_raw):
    folder = simulated_raw / "raw_data" / "sub-01"
    assert sorted(p.name for p in folder.iterdir()) == ["ses-01", "ses-02", "ses-03", "ses-04"]
    seen = {"training": np.zeros((4, 8), dtype=int), "test": np.zeros((4, 3), dtype=int)}
    for session in range(4):
        for partition, n_images in (("training", 8), ("test", 3)):
            raw = load(folder / f"ses-{session + 1:02d}" / f"raw_eeg_{partition}.npy")
            assert list(raw) == ["raw_eeg_data", "ch_names", "ch_types", "sfreq", "highpass", "lowpass"]
            assert raw["ch_names"] == [*RAW_63_CHANNELS, "stim"] and raw["ch_types"][-1] == "stim"
            assert (raw["sfreq"], raw["highpass"], raw["lowpass"]) == (1000, 0.01, 100)
            data = raw["raw_eeg_data"]
            assert data.shape[0] == 64 and data.dtype == np.float64
            onsets = np.flatnonzero(data[-1])
            assert np.all(np.diff(onsets) == 200) and onsets[0] == 2000 and data.shape[1] - 1 - onsets[-1] == 2000
            codes = data[-1, onsets].astype(int)
            assert (codes == 99999).any()
            images = codes[codes != 99999]
            assert images.min() >= 1 and images.max() <= n_images
            seen[partition][session] = np.bincount(images - 1, minlength=n_images) >= (
                2 if partition == "training" else 2
            )
            assert 1e-7 < data[:-1].std() < 1e-3  # volts, EEG-sized
    # Every training image is shown in exactly two sessions, one of 1/2 and one of 3/4; test images in all four.
    training = seen["training"]
    assert (training.sum(axis=0) == 2).all() and (training[:2].sum(axis=0) == 1).all()
    assert seen["test"].all()


def test_preprocessing_the_simulated_raw_data(simulated_raw, tmp_path, capsys):
    out = tmp_path / "preprocessed"
    raw_dir = str(simulated_raw / "raw_data")
    assert main(["preprocess", "things-eeg2", "--raw_dir", raw_dir, "--output_dir", str(out)]) == 0
    capsys.readouterr()
    training = read_preprocessed_eeg(out / "sub-01" / "preprocessed_eeg_training.npy")
    test = read_preprocessed_eeg(out / "sub-01" / "preprocessed_eeg_test.npy")
    assert training.data.shape == (8, 4, 17, 100) and test.data.shape == (3, 80, 17, 100)
    dataset = ThingsEEG2Dataset(
        eeg_dir=out, image_dir=simulated_raw / "image_set", split="test", cache_dir=tmp_path / "cache"
    )
    assert len(dataset) == 3 and dataset[0].eeg.shape == (17, 100)
    # Each presentation's response was added at its own onset with its own code: split-half averages of the same
    # test image agree better than those of different images, once the response common to all images is removed.
    halves = np.stack([test.data[:, 0::2].mean(axis=1), test.data[:, 1::2].mean(axis=1)])[..., 20:]
    halves = (halves - halves.mean(axis=1, keepdims=True)).reshape(2, 3, -1)
    agreement = np.corrcoef(halves[0], halves[1])[:3, 3:]
    assert np.all(np.diag(agreement) > agreement.max(axis=1, where=~np.eye(3, dtype=bool), initial=-1))


# (channels, samples) each preset's epochs give: -0.2 ... 0.8 s at 100 Hz; -0.2 ... 1.0 s at 250 Hz from 0.0 s on
PRESET_SHAPES = {"preprocess_things_eeg2.yaml": (17, 100), "preprocess_things_eeg2_nice250.yaml": (63, 250)}


def test_every_shipped_preset_knows_its_expected_shape():
    assert sorted(path.name for path in PRESETS) == sorted(PRESET_SHAPES)


@pytest.mark.parametrize("preset", PRESETS, ids=lambda path: path.stem)
def test_every_shipped_preset_preprocesses_the_simulated_raw_data(simulated_raw, tmp_path, capsys, preset):
    """The simulator's raw recordings leave room before the first and after the last onset for every preset."""
    out = tmp_path / "out"
    argv = ["--config", str(preset), "--raw_dir", str(simulated_raw / "raw_data"), "--output_dir", str(out)]
    assert main(["preprocess", "things-eeg2", *argv, "--no_checksums"]) == 0, capsys.readouterr().err
    n_chans, n_times = PRESET_SHAPES[preset.name]
    training = read_preprocessed_eeg(out / "sub-01" / "preprocessed_eeg_training.npy")
    test = read_preprocessed_eeg(out / "sub-01" / "preprocessed_eeg_test.npy")
    assert training.data.shape == (8, 4, n_chans, n_times) and test.data.shape == (3, 80, n_chans, n_times)
    assert np.isfinite(training.data).all() and np.isfinite(test.data).all()


def test_raw_needs_repetitions_that_split_over_sessions(tmp_path, capsys):
    assert main(["simulate", "--output_dir", str(tmp_path / "x"), "--raw", "--test_repetitions", "10"]) == 1
    assert "test_repetitions by 4 (got 10)" in capsys.readouterr().err
