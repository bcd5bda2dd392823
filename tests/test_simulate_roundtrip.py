"""``ttdnet simulate`` output read back through the data layer and ``ttdnet info``."""

import json

import numpy as np
import pytest

from ttdnet.cli import main
from ttdnet.data import ThingsEEG2Dataset, ThingsEEG2Layout, read_image_metadata
from ttdnet.data.channels import POSTERIOR_17_CHANNELS, RAW_63_CHANNELS


SCALE = [
    "--n_subjects", "2", "--n_train_concepts", "4", "--images_per_concept", "3", "--n_test_images", "3",
    "--train_repetitions", "4", "--test_repetitions", "8", "--image_size", "16",
]  # fmt: skip


@pytest.fixture(scope="module", params=[17, 63])
def simulated(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"sim{request.param}") / "data"
    assert main(["simulate", "--output_dir", str(root), "--n_chans", str(request.param), *SCALE]) == 0
    return root, request.param


def test_dataset_reads_what_simulate_wrote(simulated, tmp_path):
    root, n_chans = simulated
    layout = ThingsEEG2Layout.discover(root)
    assert layout.subjects == ["sub-01", "sub-02"]
    # Read the file independently of the data layer: the official container is np.save of a dict.
    raw = np.load(layout.eeg_file(2, "test"), allow_pickle=True).item()
    expected_names = POSTERIOR_17_CHANNELS if n_chans == 17 else RAW_63_CHANNELS
    assert raw["ch_names"] == list(expected_names) and raw["preprocessed_eeg_data"].shape == (3, 8, n_chans, 100)
    test = ThingsEEG2Dataset(root, split="test", subjects=[2], cache_dir=tmp_path)
    np.testing.assert_allclose(test[1].eeg.numpy(), raw["preprocessed_eeg_data"][1].mean(axis=0), rtol=1e-5, atol=1e-5)
    train = ThingsEEG2Dataset(root, split="train", val_fraction=0.25, average_repetitions=False, cache_dir=tmp_path)
    val = ThingsEEG2Dataset(root, split="val", val_fraction=0.25, average_repetitions=False, cache_dir=tmp_path)
    assert len(train) == 2 * 3 * 3 * 4 and len(val) == 2 * 1 * 3 * 4 and train.n_chans == n_chans
    metadata = read_image_metadata(layout.image_dir)
    for path in metadata.train_relative_paths + metadata.test_relative_paths:
        assert (layout.image_dir / path).is_file()


def test_info_on_simulated_dataset(simulated, tmp_path, capsys):
    root, n_chans = simulated
    assert main(["info", str(root), "--json", "--eeg_cache_dir", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["subjects"]["sub-01"]["training"]["shape"] == [12, 4, n_chans, 100]
    assert summary["times"] == {"first_s": -0.2, "last_s": 0.79, "n_times": 100, "sfreq_hz": 100.0, "onset_index": 20}
    assert summary["images"]["training"] == {"rows": 12, "concepts": 4, "files_present": 12, "files_missing": []}
