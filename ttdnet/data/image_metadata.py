"""Reading THINGS-EEG2's ``image_metadata.npy`` (which image each EEG row shows) and checking the images it lists.

The file is a dict of six lists, concept folder, file name and THINGS concept per image, for the training
and the test partition, in the official order (concept folders sorted, files sorted within a folder); see
``docs/data-format.md``.
"""

import dataclasses
import os
import re
from pathlib import Path

import numpy as np

from ttdnet.data.safe_pickle import load_pickled_container
from ttdnet.data.things_eeg2 import IMAGE_FOLDERS, Partition, ThingsEEG2FormatError


METADATA_KEYS = (
    "train_img_concepts",
    "train_img_files",
    "train_img_concepts_THINGS",
    "test_img_concepts",
    "test_img_files",
    "test_img_concepts_THINGS",
)


@dataclasses.dataclass(frozen=True)
class ImageMetadata:
    """The contents of ``image_metadata.npy``, one entry per EEG row.

    Attributes
    ----------
    train_concepts, train_files, train_concepts_things : tuple of str, length n_train_images
        Training row i shows ``training_images/{train_concepts[i]}/{train_files[i]}``.
    test_concepts, test_files, test_concepts_things : tuple of str, length n_test_images
    path : pathlib.Path
    """

    train_concepts: tuple[str, ...]
    train_files: tuple[str, ...]
    train_concepts_things: tuple[str, ...]
    test_concepts: tuple[str, ...]
    test_files: tuple[str, ...]
    test_concepts_things: tuple[str, ...]
    path: Path

    def concepts(self, partition: Partition) -> tuple[str, ...]:
        """Concept folder of every row of ``partition``."""
        return self.train_concepts if partition == "training" else self.test_concepts

    def files(self, partition: Partition) -> tuple[str, ...]:
        """Image file name of every row of ``partition``."""
        return self.train_files if partition == "training" else self.test_files

    def relative_paths(self, partition: Partition) -> list[str]:
        """Image path of every row, relative to the image-set folder (e.g. ``test_images/00001_x/x_01b.jpg``)."""
        folder = IMAGE_FOLDERS[partition]
        return [f"{folder}/{concept}/{name}" for concept, name in zip(self.concepts(partition), self.files(partition))]

    @property
    def train_relative_paths(self) -> list[str]:
        """:meth:`relative_paths` of the training partition."""
        return self.relative_paths("training")

    @property
    def test_relative_paths(self) -> list[str]:
        """:meth:`relative_paths` of the test partition."""
        return self.relative_paths("test")

    def unique_concepts(self, partition: Partition) -> list[str]:
        """Concept folders of ``partition`` in order (sorted, as the official numbering is)."""
        return sorted(set(self.concepts(partition)))

    def concept_indices(self, partition: Partition) -> np.ndarray:
        """Index of every row's concept into :meth:`unique_concepts`, shape (n_rows,)."""
        lookup = {concept: index for index, concept in enumerate(self.unique_concepts(partition))}
        return np.array([lookup[concept] for concept in self.concepts(partition)], dtype=np.int64)

    def n_rows(self, partition: Partition) -> int:
        """Number of images (EEG rows) of ``partition``."""
        return len(self.concepts(partition))


def concept_label(folder: str) -> str:
    """Concept name of a folder: ``"00001_aircraft_carrier"`` gives ``"aircraft_carrier"`` (split on the first '_')."""
    return folder.split("_", 1)[1] if "_" in folder else folder


def read_image_metadata(image_dir: str | os.PathLike) -> ImageMetadata:
    """Read and validate ``image_metadata.npy`` from an image-set folder (or the file itself).

    Checks the six keys, equal lengths per partition, at least one image per partition, ``NNNNN_name`` folder
    names, and that rows follow the official order: concept folders sorted, files sorted within a folder.

    Raises
    ------
    ThingsEEG2FormatError
        Missing file or any failed check; the message names the file and the offending entry.
    """
    path = Path(image_dir)
    if path.is_dir():
        path = path / "image_metadata.npy"
    if not path.is_file():
        raise ThingsEEG2FormatError(f"{path}: file not found")
    contents = load_pickled_container(path)
    source = str(path)
    if not isinstance(contents, dict):
        raise ThingsEEG2FormatError(f"{source}: expected a dict of six lists, got {type(contents).__name__}")
    missing = [key for key in METADATA_KEYS if key not in contents]
    if missing:
        raise ThingsEEG2FormatError(f"{source}: missing keys {missing}; found {sorted(contents, key=str)}")
    lists = {}
    for key in METADATA_KEYS:
        values = contents[key]
        if not isinstance(values, list | tuple | np.ndarray):
            raise ThingsEEG2FormatError(f"{source}: '{key}' must be a list of str, got {type(values).__name__}")
        lists[key] = tuple(str(value) for value in np.asarray(values, dtype=str).tolist())
    for prefix in ("train", "test"):
        lengths = {key: len(lists[key]) for key in METADATA_KEYS if key.startswith(prefix)}
        if len(set(lengths.values())) != 1:
            raise ThingsEEG2FormatError(f"{source}: {prefix} lists differ in length: {lengths}")
        concepts, files = lists[f"{prefix}_img_concepts"], lists[f"{prefix}_img_files"]
        if not concepts:
            raise ThingsEEG2FormatError(
                f"{source}: '{prefix}_img_concepts' is empty; the file lists no {prefix} images"
            )
        for concept in (concepts[0], concepts[-1]):
            if not re.match(r"^\d{5}_.+", concept):
                raise ThingsEEG2FormatError(f"{source}: concept folder {concept!r} is not named NNNNN_name")
        order = list(zip(concepts, files))
        if order != sorted(order):
            first = next(i for i in range(1, len(order)) if order[i] < order[i - 1])
            raise ThingsEEG2FormatError(
                f"{source}: {prefix} rows are not in the official (sorted folder, sorted file) order at row {first}: "
                f"{order[first - 1]} then {order[first]}"
            )
    return ImageMetadata(
        train_concepts=lists["train_img_concepts"],
        train_files=lists["train_img_files"],
        train_concepts_things=lists["train_img_concepts_THINGS"],
        test_concepts=lists["test_img_concepts"],
        test_files=lists["test_img_files"],
        test_concepts_things=lists["test_img_concepts_THINGS"],
        path=path,
    )


def check_image_file(path: str | os.PathLike) -> None:
    """Decode an image file completely (not just its header); raise naming it when PIL cannot.

    Raises
    ------
    ThingsEEG2FormatError
        The file is not an image PIL can identify, or its data is truncated or corrupt.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except UnidentifiedImageError:
        reason = "not an image file PIL can identify"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = f"cannot be decoded: {error}"
    else:
        return
    raise ThingsEEG2FormatError(f"{path}: {reason}; replace it with the file from the THINGS-EEG2 image set")
