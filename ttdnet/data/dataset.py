"""A PyTorch dataset over THINGS-EEG2 subjects, splits, channels, time windows and repetitions."""

import os
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ttdnet.data.cache import CachedEEG, check_shared_axes, load_cached_eeg
from ttdnet.data.image_metadata import read_image_metadata
from ttdnet.data.selection import SelectionError, channel_indices, split_training_concepts, time_window
from ttdnet.data.things_eeg2 import (
    PARTITIONS,
    Partition,
    ThingsEEG2FormatError,
    ThingsEEG2Layout,
    subject_name,
    subject_number,
)


Split = Literal["train", "val", "test"]
SPLIT_PARTITION: dict[str, Partition] = {"train": "training", "val": "training", "test": "test"}
AVERAGED = -1
"""``repetition`` value of a sample that is the mean over all repetitions."""


class EEGSample(NamedTuple):
    """One item of :class:`ThingsEEG2Dataset` (collates into a batch of the same fields).

    Attributes
    ----------
    eeg : torch.Tensor of float32, shape (n_chans, n_times)
    image_index : int
        Row of the image in its partition's EEG file and in ``image_metadata.npy``.
    concept_index : int
        Index of the image's concept among its partition's concepts (sorted folder order).
    subject : int
        Subject number (1 for ``sub-01``).
    repetition : int
        Repetition index in the file, or ``AVERAGED`` (-1) for the mean over repetitions.
    """

    eeg: torch.Tensor
    image_index: int
    concept_index: int
    subject: int
    repetition: int


class ThingsEEG2Dataset(Dataset):
    """THINGS-EEG2 preprocessed EEG as ``(eeg, image_index, concept_index, subject, repetition)`` samples.

    Files are read through the float32 memory-mapped cache (:mod:`ttdnet.data.cache`), so a dataset of
    many subjects holds almost nothing in RAM. Both partitions of every selected subject are read (the other
    partition where its file exists) and must share one channel list and time axis
    (:func:`ttdnet.data.cache.check_shared_axes`), so a model trained on one split is never evaluated on
    EEG sampled differently.

    Parameters
    ----------
    root : path-like, optional
        Dataset root (the layout is described in ``docs/data-format.md``).
    split : {"train", "val", "test"}
        "train" and "val" are disjoint sets of *training* concepts (see ``val_fraction``); "test" is the
        test partition. The test partition never takes part in the validation split.
    subjects : list of int or str, optional
        Subjects to include (1, "sub-01", ...); all subjects in the folder when None.
    channels : list of str, optional
        Channel names to pick, in this order; all channels of the files when None.
    tmin, tmax : float, optional
        Time window in seconds, ``tmin`` inclusive and ``tmax`` exclusive (see
        :func:`ttdnet.data.selection.time_window`); e.g. 0.0 and 0.7 give 70 samples at 100 Hz.
    average_repetitions : bool
        True: one sample per image, the mean over its repetitions (4 for training, 80 for test). False: one
        sample per repetition.
    val_fraction : float
        Fraction of training concepts held out as the validation split.
    split_seed : int
        Seed of the validation split.
    eeg_dir, image_dir : path-like, optional
        Explicit folders when they are not under ``root``.
    cache_dir : path-like, optional
        Root of the float32 cache; see :func:`ttdnet.data.cache.default_cache_dir`.

    Attributes
    ----------
    ch_names : list of str
        Channels of every sample, in order.
    times : numpy.ndarray, shape (n_times,)
        Time of every sample point, in seconds.
    sfreq : float
    n_chans, n_times : int
    description : pandas.DataFrame
        One row per sample: subject, split, partition, image_index, concept_index, concept, image_path,
        repetition (in the spirit of braindecode's ``description``).
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        split: Split = "train",
        subjects: list[int | str] | None = None,
        channels: list[str] | None = None,
        tmin: float | None = None,
        tmax: float | None = None,
        average_repetitions: bool = True,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        eeg_dir: str | os.PathLike | None = None,
        image_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        if split not in SPLIT_PARTITION:
            raise SelectionError(f"split must be one of {list(SPLIT_PARTITION)}, got {split!r}")
        self.split = split
        self.partition = SPLIT_PARTITION[split]
        self.average_repetitions = average_repetitions
        layout = ThingsEEG2Layout.discover(root, eeg_dir=eeg_dir, image_dir=image_dir)
        self.metadata = read_image_metadata(layout.image_dir)
        self.image_dir = layout.image_dir
        names = [subject_name(s) for s in subjects] if subjects is not None else layout.subjects
        if not names:
            raise SelectionError(f"{layout.eeg_dir}: no subjects selected")
        files = {}
        for name in names:
            for partition in PARTITIONS:
                path = layout.eeg_file(name, partition)
                if partition == self.partition or path.is_file():
                    files[name, partition] = load_cached_eeg(path, cache_dir)
        check_shared_axes(list(files.values()))
        cached = [files[name, self.partition] for name in names]
        self._check_consistent(cached)

        first = cached[0]
        self.subject_names = names
        self._channel_index = channel_indices(first.ch_names, channels)
        self._time_slice = time_window(first.times, first.sfreq, tmin, tmax)
        self.ch_names = [first.ch_names[i] for i in self._channel_index]
        self.times = first.times[self._time_slice]
        self.sfreq = first.sfreq
        self.n_repetitions = first.data.shape[1]
        self._data_paths = [entry.data_path for entry in cached]
        self._arrays: list[np.ndarray] | None = [entry.data for entry in cached]

        concept_of_row = self.metadata.concept_indices(self.partition)
        if split == "test":
            rows = np.arange(len(concept_of_row))
        else:
            train_concepts, val_concepts = split_training_concepts(
                int(concept_of_row.max()) + 1, val_fraction, split_seed
            )
            keep = train_concepts if split == "train" else val_concepts
            rows = np.flatnonzero(np.isin(concept_of_row, keep))
        repetitions = np.array([AVERAGED]) if average_repetitions else np.arange(self.n_repetitions)
        n_per_subject = len(rows) * len(repetitions)
        self._subject_pos = np.repeat(np.arange(len(names)), n_per_subject)
        self._rows = np.tile(np.repeat(rows, len(repetitions)), len(names))
        self._repetitions = np.tile(repetitions, len(rows) * len(names))
        self._concepts = concept_of_row[self._rows]

    def _check_consistent(self, cached: list[CachedEEG]) -> None:
        """Every subject's file of the partition has one row per listed image and the first's repetitions."""
        expected_rows = self.metadata.n_rows(self.partition)
        first = cached[0]
        for entry in cached:
            if entry.data.shape[0] != expected_rows:
                raise ThingsEEG2FormatError(
                    f"{entry.source}: {entry.data.shape[0]} image conditions, but {self.metadata.path} lists "
                    f"{expected_rows} {self.partition} images; the EEG and the image set do not belong together"
                )
            if entry.data.shape[1] != first.data.shape[1]:
                raise ThingsEEG2FormatError(
                    f"{entry.source}: {entry.data.shape[1]} repetitions vs {first.data.shape[1]} in {first.source}"
                )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_arrays"] = None  # memory maps are re-opened in the receiving process, never copied
        return state

    def _subject_array(self, position: int) -> np.ndarray:
        if self._arrays is None:
            self._arrays = [np.load(path, mmap_mode="r") for path in self._data_paths]
        return self._arrays[position]

    @property
    def image_indices(self) -> np.ndarray:
        """Image row of every sample, shape (n_samples,) int (read-only view)."""
        view = self._rows.view()
        view.flags.writeable = False
        return view

    @property
    def n_chans(self) -> int:
        return len(self.ch_names)

    @property
    def n_times(self) -> int:
        return len(self.times)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> EEGSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples")
        index = int(index) % len(self)
        position, row, repetition = self._subject_pos[index], self._rows[index], int(self._repetitions[index])
        block = self._subject_array(position)[row]  # (n_repetitions, n_chans_file, n_times_file)
        if repetition == AVERAGED:
            eeg = block[:, self._channel_index, self._time_slice].mean(axis=0, dtype=np.float64)
        else:
            eeg = block[repetition, self._channel_index, self._time_slice]
        return EEGSample(
            eeg=torch.from_numpy(np.ascontiguousarray(eeg, dtype=np.float32)),
            image_index=int(row),
            concept_index=int(self._concepts[index]),
            subject=subject_number(self.subject_names[position]),
            repetition=repetition,
        )

    @property
    def description(self):
        """Per-sample metadata as a :class:`pandas.DataFrame` (see the class docstring)."""
        import pandas as pd

        concepts = np.asarray(self.metadata.concepts(self.partition))
        paths = np.asarray(self.metadata.relative_paths(self.partition))
        return pd.DataFrame(
            {
                "subject": np.asarray(self.subject_names)[self._subject_pos],
                "split": self.split,
                "partition": self.partition,
                "image_index": self._rows,
                "concept_index": self._concepts,
                "concept": concepts[self._rows],
                "image_path": paths[self._rows],
                "repetition": self._repetitions,
            }
        )
