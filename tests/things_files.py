"""Writers of THINGS-EEG2 files in the published formats, independent of ``ttdnet.simulate``.

Tests import them as ``from things_files import ...`` (``tests/`` is on pytest's ``pythonpath``).
"""

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from ttdnet.data.channels import POSTERIOR_17_CHANNELS


OFFICIAL_TIMES = np.arange(100) / 100 - 0.2
TRAIN_NAMES = ["aardvark", "aircraft_carrier", "bagel", "camel", "dolphin"]
TEST_NAMES = ["antelope", "backscratcher", "cello", "drum"]
MORE_NAMES = """anchor apron banjo barrel beaver bison blimp bucket cactus canoe carrot cobra comet cymbal dagger
    donkey easel falcon ferret gazelle goblet harp hornet igloo jaguar kettle ladle lemur lobster mango marimba
    mitten narwhal oboe otter parrot peacock quilt raccoon saddle""".split()
"""Forty more concept names for fixtures that need more concepts than the five above."""


def write_image_set(
    image_dir: Path,
    images_per_concept: int = 3,
    image_size: int = 16,
    train_names: list[str] = TRAIN_NAMES,
    test_names: list[str] = TEST_NAMES,
    blocks: int | None = None,
) -> dict[str, list[str]]:
    """Write ``image_metadata.npy`` and tiny JPEGs following the official naming rules; return the metadata.

    Pixels are uniform noise, or with ``blocks`` a random ``blocks x blocks`` colour layout (images that differ
    in their coarse structure, as a learnable image-to-EEG relation needs).
    """
    metadata: dict[str, list[str]] = {
        key: [] for key in ("train_img_concepts", "train_img_files", "train_img_concepts_THINGS")
    }
    metadata.update({key: [] for key in ("test_img_concepts", "test_img_files", "test_img_concepts_THINGS")})
    everything = sorted(train_names + test_names)
    rng = np.random.default_rng(0)
    for prefix, folder, names, per_concept in (
        ("train", "training_images", train_names, images_per_concept),
        ("test", "test_images", test_names, 1),
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
                if blocks is not None:
                    layout = rng.integers(0, 256, size=(blocks, blocks, 3), dtype=np.uint8)
                    pixels = np.kron(layout, np.ones((image_size // blocks, image_size // blocks, 1), np.uint8))
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


def write_one_subject(root: Path, seed: int = 0) -> Path:
    """A small official-format dataset: the image set plus sub-01 with 15 training images x 4 repetitions and
    4 test images x 80, each trial a 6 Hz sine of random phase per channel plus 10% noise; returns ``root``."""
    write_image_set(root / "image_set")
    rng = np.random.default_rng(seed)
    t = np.arange(100) / 100
    for partition, n_rows, n_reps in (("training", 15, 4), ("test", 4, 80)):
        phases = rng.uniform(0, 2 * np.pi, size=(n_rows, n_reps, 17, 1))
        data = np.sin(2 * np.pi * 6 * t + phases) + 0.1 * rng.standard_normal((n_rows, n_reps, 17, 100))
        write_eeg_file(
            root / "sub-01" / f"preprocessed_eeg_{partition}.npy", data, list(POSTERIOR_17_CHANNELS), OFFICIAL_TIMES
        )
    return root
