"""THINGS-EEG2 image-set naming: concept folders, image files and ``image_metadata.npy`` (``docs/data-format.md``)."""

import dataclasses

import numpy as np

from ttdnet.simulate.names import stable_seed


MAX_TEST_IMAGE_NUMBER = 12
"""Test images keep a THINGS-like file number in 1 … 12 (e.g. ``aircraft_carrier_06s.jpg``)."""


@dataclasses.dataclass(frozen=True)
class ImageEntry:
    """One stimulus: its concept, folder, file and position in the partition.

    Attributes
    ----------
    concept : str
        Concept name, e.g. ``"brailun_tosk"``.
    folder : str
        ``f"{k:05d}_{concept}"``, k the 1-based index within the partition in alphabetical order.
    folder_things : str
        Same name, k the 1-based index among all (training + test) concepts in alphabetical order.
    file : str
        ``f"{concept}_{j:02d}{letter}.jpg"``.
    number : int
        The file number j: 1 … images_per_concept for training images.
    """

    concept: str
    folder: str
    folder_things: str
    file: str
    number: int


def image_file_name(concept: str, number: int) -> str:
    """THINGS file name: ``b`` marks the first exemplar, ``s`` the others."""
    if not 1 <= number <= 99:
        raise ValueError(f"image number {number} of concept {concept!r} must be in 1 … 99")
    return f"{concept}_{number:02d}{'b' if number == 1 else 's'}.jpg"


def test_image_number(seed: int, concept: str) -> int:
    """The file number of a test concept's single image, drawn from (seed, concept)."""
    return int(
        np.random.default_rng(stable_seed(seed, "test-image-number", concept)).integers(1, MAX_TEST_IMAGE_NUMBER + 1)
    )


def build_entries(
    train_names: list[str], test_names: list[str], images_per_concept: int, seed: int
) -> tuple[list[ImageEntry], list[ImageEntry]]:
    """Every training and test image in row order (concepts alphabetical, then file number).

    Parameters
    ----------
    train_names, test_names : list of str
        Disjoint concept names of each partition, any order.
    images_per_concept : int
        Training images per concept (1 … 99).
    seed : int
        Dataset seed (chooses the test file numbers).

    Returns
    -------
    train_entries : list of ImageEntry, length len(train_names) * images_per_concept
    test_entries : list of ImageEntry, length len(test_names)
    """
    if set(train_names) & set(test_names):
        raise ValueError("training and test concept names must be disjoint")
    things_index = {name: k for k, name in enumerate(sorted([*train_names, *test_names]), start=1)}
    train_entries = [
        ImageEntry(name, f"{k:05d}_{name}", f"{things_index[name]:05d}_{name}", image_file_name(name, j), j)
        for k, name in enumerate(sorted(train_names), start=1)
        for j in range(1, images_per_concept + 1)
    ]
    test_entries = []
    for k, name in enumerate(sorted(test_names), start=1):
        number = test_image_number(seed, name)
        test_entries.append(
            ImageEntry(
                name, f"{k:05d}_{name}", f"{things_index[name]:05d}_{name}", image_file_name(name, number), number
            )
        )
    return train_entries, test_entries


def image_metadata(train_entries: list[ImageEntry], test_entries: list[ImageEntry]) -> dict[str, list[str]]:
    """The ``image_metadata.npy`` dict: six lists of str, row *i* of the EEG ↔ entry *i*."""
    return {
        "train_img_concepts": [entry.folder for entry in train_entries],
        "train_img_files": [entry.file for entry in train_entries],
        "train_img_concepts_THINGS": [entry.folder_things for entry in train_entries],
        "test_img_concepts": [entry.folder for entry in test_entries],
        "test_img_files": [entry.file for entry in test_entries],
        "test_img_concepts_THINGS": [entry.folder_things for entry in test_entries],
    }
