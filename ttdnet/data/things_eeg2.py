"""THINGS-EEG2 on disk: where the files are, and reading them with every check of the spec's checklist.

Layout accepted (``shared/specs/things-eeg2.md`` §3 and §5)::

    <root>/preprocessed_data/sub-01/preprocessed_eeg_training.npy   (or <root>/sub-01/... directly)
    <root>/preprocessed_data/sub-01/preprocessed_eeg_test.npy
    <root>/image_set/image_metadata.npy                             (or <root>/image_metadata.npy)
    <root>/image_set/training_images/00001_aardvark/aardvark_01b.jpg
    <root>/image_set/test_images/00001_aircraft_carrier/aircraft_carrier_06s.jpg

The EEG folder and the image-set folder can also be given separately, since the official downloads put
them in different places. Subject folders may be named ``sub-01`` or ``sub01``.
"""

import dataclasses
import functools
import os
import re
from pathlib import Path
from typing import Literal

import numpy as np

from ttdnet.data.channels import make_standard_1005_montage, with_case_hints
from ttdnet.data.safe_pickle import NPY_MAGIC, load_pickled_container
from ttdnet.errors import TtdnetError


Partition = Literal["training", "test"]
PARTITIONS: tuple[Partition, ...] = ("training", "test")
EEG_KEYS = ("preprocessed_eeg_data", "ch_names", "times")
METADATA_KEYS = (
    "train_img_concepts",
    "train_img_files",
    "train_img_concepts_THINGS",
    "test_img_concepts",
    "test_img_files",
    "test_img_concepts_THINGS",
)
IMAGE_FOLDERS: dict[Partition, str] = {"training": "training_images", "test": "test_images"}
NICE_EXTRA_TIMES = 50
"""The NICE/ATM 250 Hz files keep 300 ``times`` entries (-0.2 ... 0.996 s) for 250 data samples."""
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


@functools.lru_cache(maxsize=1)
def standard_1005_names() -> frozenset[str]:
    """Channel names of MNE's ``standard_1005`` montage."""
    return frozenset(make_standard_1005_montage().ch_names)


# --------------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Preprocessed EEG files
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PreprocessedEEG:
    """The validated contents of one ``preprocessed_eeg_{training,test}.npy`` file.

    Attributes
    ----------
    data : numpy.ndarray, shape (n_conditions, n_repetitions, n_chans, n_times)
        EEG as stored (float64 in the official files).
    ch_names : tuple of str, length n_chans
    times : numpy.ndarray of float64, shape (n_times,)
        Seconds relative to stimulus onset. For the NICE variant, the 50 surplus leading entries are dropped.
    sfreq : float
        Sampling rate, ``1 / (times[1] - times[0])``.
    variant : {"official", "nice"}
        "nice" when ``times`` has the NICE/ATM 50 surplus entries.
    container : {"npy", "pickle"}
        ``np.save`` of a dict (official) or a raw pickle under a ``.npy`` name (NICE/ATM).
    path : pathlib.Path
    """

    data: np.ndarray
    ch_names: tuple[str, ...]
    times: np.ndarray
    sfreq: float
    variant: Literal["official", "nice"]
    container: Literal["npy", "pickle"]
    path: Path


def sampling_rate_from_times(times: np.ndarray, source: str) -> float:
    """Sampling rate of an evenly spaced, strictly increasing time axis; raises otherwise."""
    if times.ndim != 1 or times.size < 2:
        raise ThingsEEG2FormatError(f"{source}: 'times' must be 1-D with at least 2 entries, got shape {times.shape}")
    steps = np.diff(times)
    if not np.all(steps > 0):
        raise ThingsEEG2FormatError(f"{source}: 'times' is not strictly increasing")
    step = float(np.median(steps))
    if not np.allclose(steps, step, rtol=1e-6, atol=1e-9):
        raise ThingsEEG2FormatError(
            f"{source}: 'times' is not evenly spaced (steps from {steps.min():.6g} to {steps.max():.6g} s)"
        )
    sfreq = 1.0 / step
    return float(round(sfreq)) if abs(sfreq - round(sfreq)) < 1e-6 * sfreq else sfreq


def check_channel_names(ch_names: list[str] | tuple[str, ...], source: str) -> tuple[str, ...]:
    """Check that channel names are unique strings known to MNE's ``standard_1005`` montage."""
    if not all(isinstance(name, str) for name in ch_names):
        raise ThingsEEG2FormatError(f"{source}: 'ch_names' must be strings, got {list(ch_names)[:5]}...")
    duplicates = sorted({name for name in ch_names if list(ch_names).count(name) > 1})
    if duplicates:
        raise ThingsEEG2FormatError(f"{source}: duplicate channel names {duplicates}")
    known = standard_1005_names()
    unknown = [name for name in ch_names if name not in known]
    if unknown:
        raise ThingsEEG2FormatError(
            f"{source}: channel names not in the standard 10-05 system: {', '.join(with_case_hints(unknown, known))}. "
            "THINGS-EEG2 uses standard_1005 names such as 'Pz', 'PO7', 'Oz'."
        )
    return tuple(ch_names)


def _check_finite(data: np.ndarray, source: str, chunk: int = 256) -> None:
    for start in range(0, data.shape[0], chunk):
        block = data[start : start + chunk]
        finite = np.isfinite(block)
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            index = (start + int(bad[0]), *map(int, bad[1:]))
            raise ThingsEEG2FormatError(
                f"{source}: non-finite value {block[tuple(bad)]} at index {index} "
                f"(condition, repetition, channel, time); the file is corrupt or was written from failed processing"
            )


def validate_eeg_dict(contents: object, source: str, container: Literal["npy", "pickle"]) -> PreprocessedEEG:
    """Check a loaded preprocessed-EEG dict against the format and return it typed.

    Parameters
    ----------
    contents : object
        What the container held.
    source : str
        File name for error messages.
    container : {"npy", "pickle"}
        The container the dict came from, recorded in the result.
    """
    if not isinstance(contents, dict):
        raise ThingsEEG2FormatError(
            f"{source}: expected a dict with keys {list(EEG_KEYS)}, got {type(contents).__name__}"
        )
    missing = [key for key in EEG_KEYS if key not in contents]
    extra = [key for key in contents if key not in EEG_KEYS]
    if missing or extra:
        raise ThingsEEG2FormatError(
            f"{source}: keys {sorted(contents, key=str)}; expected exactly {list(EEG_KEYS)}"
            + (f" (missing {missing})" if missing else "")
            + (f" (unexpected {extra})" if extra else "")
        )
    data = contents["preprocessed_eeg_data"]
    if not isinstance(data, np.ndarray) or not np.issubdtype(data.dtype, np.floating):
        raise ThingsEEG2FormatError(
            f"{source}: 'preprocessed_eeg_data' must be a float array, got {type(data).__name__}"
        )
    if data.ndim != 4:
        raise ThingsEEG2FormatError(
            f"{source}: 'preprocessed_eeg_data' has shape {data.shape}; expected 4 axes "
            "(image conditions, repetitions, channels, time points)"
        )
    ch_names = list(contents["ch_names"]) if isinstance(contents["ch_names"], list | tuple | np.ndarray) else None
    if ch_names is None:
        raise ThingsEEG2FormatError(f"{source}: 'ch_names' must be a list of str")
    ch_names = [str(name) if isinstance(name, np.str_) else name for name in ch_names]
    if len(ch_names) != data.shape[2]:
        raise ThingsEEG2FormatError(
            f"{source}: {len(ch_names)} channel names but the channel axis (axis 2) of data {data.shape} "
            f"has {data.shape[2]}"
        )
    check_channel_names(ch_names, source)
    times = np.asarray(contents["times"], dtype=np.float64)
    n_times = data.shape[3]
    variant: Literal["official", "nice"] = "official"
    if times.ndim == 1 and times.size == n_times + NICE_EXTRA_TIMES:
        times = times[NICE_EXTRA_TIMES:]
        variant = "nice"
    elif times.ndim != 1 or times.size != n_times:
        raise ThingsEEG2FormatError(
            f"{source}: 'times' has {times.size} entries but the time axis (axis 3) of data {data.shape} has {n_times}"
            f" (the NICE format has exactly {NICE_EXTRA_TIMES} more)"
        )
    sfreq = sampling_rate_from_times(times, source)
    _check_finite(data, source)
    return PreprocessedEEG(
        data=data,
        ch_names=tuple(ch_names),
        times=times,
        sfreq=sfreq,
        variant=variant,
        container=container,
        path=Path(source),
    )


def read_preprocessed_eeg(path: str | os.PathLike) -> PreprocessedEEG:
    """Read and validate one preprocessed EEG file (official ``np.save(dict)`` or NICE raw pickle).

    Parameters
    ----------
    path : path-like
        ``.../sub-XX/preprocessed_eeg_{training,test}.npy``.

    Returns
    -------
    PreprocessedEEG

    Raises
    ------
    ThingsEEG2FormatError
        Missing file, wrong keys, shapes, channel names or time axis, or non-finite values.
    ttdnet.data.safe_pickle.UnsafePickleError
        The file's pickle references code outside numpy array reconstruction.
    """
    path = Path(path)
    if not path.is_file():
        raise ThingsEEG2FormatError(f"{path}: file not found")
    with open(path, "rb") as handle:
        is_npy = handle.read(len(NPY_MAGIC)) == NPY_MAGIC
    return validate_eeg_dict(load_pickled_container(path), str(path), container="npy" if is_npy else "pickle")


# --------------------------------------------------------------------------------------------------
# Image metadata
# --------------------------------------------------------------------------------------------------


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
        return self.relative_paths("training")

    @property
    def test_relative_paths(self) -> list[str]:
        return self.relative_paths("test")

    def unique_concepts(self, partition: Partition) -> list[str]:
        """Concept folders of ``partition`` in order (sorted, as the official numbering is)."""
        return sorted(set(self.concepts(partition)))

    def concept_indices(self, partition: Partition) -> np.ndarray:
        """Index of every row's concept into :meth:`unique_concepts`, shape (n_rows,)."""
        lookup = {concept: index for index, concept in enumerate(self.unique_concepts(partition))}
        return np.array([lookup[concept] for concept in self.concepts(partition)], dtype=np.int64)

    def n_rows(self, partition: Partition) -> int:
        return len(self.concepts(partition))


def concept_label(folder: str) -> str:
    """Concept name of a folder: ``"00001_aircraft_carrier"`` gives ``"aircraft_carrier"`` (split on the first '_')."""
    return folder.split("_", 1)[1] if "_" in folder else folder


def read_image_metadata(image_dir: str | os.PathLike) -> ImageMetadata:
    """Read and validate ``image_metadata.npy`` from an image-set folder (or the file itself).

    Checks the six keys, equal lengths per partition, ``NNNNN_name`` folder names, and that rows follow
    the official order: concept folders sorted, files sorted within a folder.

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
        for concept in (concepts[0], concepts[-1]) if concepts else ():
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
