"""Shared fixtures. Tests run offline on the CPU; fixtures write THINGS-EEG2 files in the published formats.

``things_root`` and ``nice_file`` are written with plain ``np.save``/``pickle`` and PIL (``things_files``),
independently of ``ttdnet.simulate``, so the loader is checked against files it did not produce.
"""

import os

import numpy as np
import pytest
from things_files import OFFICIAL_TIMES, write_eeg_file, write_image_set

from ttdnet.data.channels import NICE_63_CHANNELS, POSTERIOR_17_CHANNELS


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture
def things_root(tmp_path):
    """A small official-format dataset: 2 subjects, 5 training concepts x 3 images x 4 reps, 4 test images x 80 reps.

    Returns
    -------
    dict
        ``root`` (Path), ``cache_dir`` (Path), ``metadata`` (dict of lists) and ``eeg``:
        ``{(subject, partition): float64 array}`` as written.
    """
    root = tmp_path / "things"
    metadata = write_image_set(root / "image_set")
    rng = np.random.default_rng(1)
    eeg = {}
    for subject in ("sub-01", "sub-02"):
        for partition, n_rows, n_reps in (("training", 15, 4), ("test", 4, 80)):
            data = rng.standard_normal((n_rows, n_reps, 17, 100))
            write_eeg_file(
                root / "preprocessed_data" / subject / f"preprocessed_eeg_{partition}.npy",
                data,
                list(POSTERIOR_17_CHANNELS),
                OFFICIAL_TIMES,
            )
            eeg[(subject, partition)] = data
    return {"root": root, "cache_dir": tmp_path / "cache", "metadata": metadata, "eeg": eeg}


@pytest.fixture
def nice_file(tmp_path):
    """A NICE/ATM-format file: raw pickle, 63 channels in NICE order, 250 Hz, 300 ``times`` for 250 samples."""
    data = np.random.default_rng(2).standard_normal((6, 4, 63, 250))
    path = tmp_path / "sub-01" / "preprocessed_eeg_training.npy"
    write_eeg_file(path, data, list(NICE_63_CHANNELS), np.arange(300) / 250 - 0.2, raw_pickle=True)
    return path, data
