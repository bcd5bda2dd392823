"""Shared fixtures. Tests run offline on the CPU; fixtures write THINGS-EEG2 files in the published formats.

``write_things_root`` writes a dataset with plain ``np.save``/``pickle`` and PIL, independently of
``ttdnet.simulate``, so the loader is checked against files it did not produce.
"""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ttdnet.data.channels import NICE_63_CHANNELS, POSTERIOR_17_CHANNELS


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

OFFICIAL_TIMES = np.arange(100) / 100 - 0.2
TRAIN_NAMES = ["aardvark", "aircraft_carrier", "bagel", "camel", "dolphin"]
TEST_NAMES = ["antelope", "backscratcher", "cello", "drum"]


def write_image_set(image_dir: Path, images_per_concept: int = 3, image_size: int = 16) -> dict[str, list[str]]:
    """Write ``image_metadata.npy`` and tiny JPEGs following the official naming rules; return the metadata."""
    metadata: dict[str, list[str]] = {
        key: [] for key in ("train_img_concepts", "train_img_files", "train_img_concepts_THINGS")
    }
    metadata.update({key: [] for key in ("test_img_concepts", "test_img_files", "test_img_concepts_THINGS")})
    everything = sorted(TRAIN_NAMES + TEST_NAMES)
    rng = np.random.default_rng(0)
    for prefix, folder, names, per_concept in (
        ("train", "training_images", TRAIN_NAMES, images_per_concept),
        ("test", "test_images", TEST_NAMES, 1),
    ):
        for k, name in enumerate(sorted(names), start=1):
            concept = f"{k:05d}_{name}"
            for j in range(1, per_concept + 1):
                file_name = f"{name}_{j:02d}{'bsn'[j % 3]}.jpg"
                metadata[f"{prefix}_img_concepts"].append(concept)
                metadata[f"{prefix}_img_files"].append(file_name)
                metadata[f"{prefix}_img_concepts_THINGS"].append(f"{everything.index(name) + 1:05d}_{name}")
                path = image_dir / folder / concept / file_name
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, size=(image_size, image_size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(path)
    np.save(image_dir / "image_metadata.npy", metadata, allow_pickle=True)
    return metadata


def write_eeg_file(
    path: Path, data: np.ndarray, ch_names: list[str], times: np.ndarray, raw_pickle: bool = False
) -> None:
    """Write one preprocessed EEG file: ``np.save`` of the dict (official) or ``pickle.dump`` (NICE)."""
    contents = {"preprocessed_eeg_data": data, "ch_names": list(ch_names), "times": times}
    path.parent.mkdir(parents=True, exist_ok=True)
    if raw_pickle:
        with open(path, "wb") as handle:
            pickle.dump(contents, handle, protocol=4)
    else:
        np.save(path, contents, allow_pickle=True)


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
