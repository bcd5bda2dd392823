"""THINGS-EEG2 on disk: the names of partitions, subjects and files, and finding the EEG and image folders.

The layout, the two EEG file variants and ``image_metadata.npy`` are described in ``docs/data-format.md``.
The EEG folder and the image-set folder can also be given separately, since the official downloads put
them in different places. Subject folders may be named ``sub-01`` or ``sub01``. Reading and validating the
files: :mod:`ttdnet.data.preprocessed_eeg` and :mod:`ttdnet.data.image_metadata`.
"""

import dataclasses
import os
import re
from pathlib import Path
from typing import Literal

from ttdnet.errors import TtdnetError


Partition = Literal["training", "test"]
PARTITIONS: tuple[Partition, ...] = ("training", "test")
IMAGE_FOLDERS: dict[Partition, str] = {"training": "training_images", "test": "test_images"}
_SUBJECT_FOLDER = re.compile(r"^sub-?(\d+)$")


class ThingsEEG2FormatError(TtdnetError):
    """A THINGS-EEG2 file or folder does not have the published format. The message names the file."""


def eeg_file_name(partition: Partition) -> str:
    """File name of a subject's preprocessed EEG for ``partition`` ("training" or "test")."""
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {PARTITIONS}, got {partition!r}")
    return f"preprocessed_eeg_{partition}.npy"


def subject_name(subject: int | str) -> str:
    """Canonical subject name: 1, "1", "sub01" and "sub-01" all give "sub-01"."""
    text = str(subject)
    match = _SUBJECT_FOLDER.match(text)
    number = int(match.group(1)) if match else int(text) if text.isdigit() else None
    if number is None:
        raise ValueError(f"not a subject id: {subject!r} (expected e.g. 1 or 'sub-01')")
    return f"sub-{number:02d}"


def subject_number(subject: int | str) -> int:
    """Subject number: "sub-01" gives 1."""
    return int(subject_name(subject)[4:])


def locate_image_set(root: str | os.PathLike) -> Path:
    """The folder holding ``image_metadata.npy``, ``training_images/`` and ``test_images/``.

    Parameters
    ----------
    root : path-like
        The dataset root (with an ``image_set/`` folder) or the image-set folder itself.

    Raises
    ------
    ThingsEEG2FormatError
        If neither ``root/image_metadata.npy`` nor ``root/image_set/image_metadata.npy`` exists.
    """
    root = Path(root)
    for candidate in (root, root / "image_set"):
        if (candidate / "image_metadata.npy").is_file():
            return candidate
    raise ThingsEEG2FormatError(
        f"{root}: no image_metadata.npy in this folder or in {root / 'image_set'}. Download the THINGS-EEG2 "
        "image set (image_metadata.npy, training_images.zip, test_images.zip) and unpack it there, or pass "
        "the image-set folder explicitly."
    )


def locate_eeg_dir(root: str | os.PathLike) -> Path:
    """The folder holding the ``sub-XX/`` folders of preprocessed EEG.

    Parameters
    ----------
    root : path-like
        The dataset root (with a ``preprocessed_data/`` folder) or the folder of subject folders itself.

    Raises
    ------
    ThingsEEG2FormatError
        If no subject folder is found in either place.
    """
    root = Path(root)
    for candidate in (root / "preprocessed_data", root):
        if candidate.is_dir() and _subject_folders(candidate):
            return candidate
    raise ThingsEEG2FormatError(
        f"{root}: no subject folders (sub-01, sub-02, ...) here or in {root / 'preprocessed_data'}. "
        "Unzip the preprocessed EEG (sub-XX.zip) into one of them, or run `ttdnet simulate` for synthetic data."
    )


def _subject_folders(eeg_dir: Path) -> dict[str, Path]:
    folders = {}
    for entry in sorted(eeg_dir.iterdir()):
        match = _SUBJECT_FOLDER.match(entry.name)
        if entry.is_dir() and match:
            name = f"sub-{int(match.group(1)):02d}"
            if name in folders:
                raise ThingsEEG2FormatError(
                    f"{eeg_dir}: both {folders[name].name} and {entry.name} are subject {name}"
                )
            folders[name] = entry
    return folders


@dataclasses.dataclass(frozen=True)
class ThingsEEG2Layout:
    """Where a THINGS-EEG2 dataset's files are.

    Attributes
    ----------
    eeg_dir : pathlib.Path
        Folder of subject folders.
    image_dir : pathlib.Path or None
        Image-set folder, None when the dataset has EEG only.
    subject_dirs : dict of str to pathlib.Path
        Canonical subject name ("sub-01") to its folder, sorted by subject.
    """

    eeg_dir: Path
    image_dir: Path | None
    subject_dirs: dict[str, Path]

    @classmethod
    def discover(
        cls,
        root: str | os.PathLike | None = None,
        eeg_dir: str | os.PathLike | None = None,
        image_dir: str | os.PathLike | None = None,
        require_images: bool = True,
    ) -> "ThingsEEG2Layout":
        """Find the EEG and image folders under ``root``, or take them as given.

        Parameters
        ----------
        root : path-like, optional
            Dataset root; used for whichever of ``eeg_dir`` and ``image_dir`` is not given.
        eeg_dir, image_dir : path-like, optional
            Explicit folders (see :func:`locate_eeg_dir`, :func:`locate_image_set`).
        require_images : bool
            Raise when no image set is found; otherwise ``image_dir`` is None.
        """
        if root is None and (eeg_dir is None or (image_dir is None and require_images)):
            raise ValueError("give the dataset root, or eeg_dir and image_dir")
        root_path = Path(root) if root is not None else None
        eeg = locate_eeg_dir(eeg_dir if eeg_dir is not None else root_path)
        try:
            images = locate_image_set(image_dir if image_dir is not None else root_path)
        except ThingsEEG2FormatError:
            if require_images or image_dir is not None:
                raise
            images = None
        return cls(eeg_dir=eeg, image_dir=images, subject_dirs=_subject_folders(eeg))

    @property
    def subjects(self) -> list[str]:
        """Subject names, sorted."""
        return list(self.subject_dirs)

    def eeg_file(self, subject: int | str, partition: Partition) -> Path:
        """Path of a subject's preprocessed EEG file (which may not exist)."""
        name = subject_name(subject)
        if name not in self.subject_dirs:
            raise ThingsEEG2FormatError(
                f"{self.eeg_dir}: no folder for subject {name}; available: {', '.join(self.subjects) or 'none'}"
            )
        return self.subject_dirs[name] / eeg_file_name(partition)
