"""Fixed-length EEG windows on disk: the pretraining corpus format written by ``ttdnet preprocess edf``.

A corpus is a folder::

    <root>/index.json          format name and version, the input contract, the shard list, failed inputs
    <root>/shard-00000.npy     float32, shape (n_windows, n_chans, n_times), plain NPY (memory-mappable)
    <root>/shard-00001.npy
    ...

The index records the **input contract**: ``ch_names`` (order included), ``sfreq``,
``n_times`` and the normalisation. A model pretrained on the corpus stores the same three values; a later
stage calls :meth:`EEGWindowCorpus.check_compatible` with its own and gets a :class:`WindowContractError`
that names every mismatch instead of a silently misaligned model.

This module reads corpora; :mod:`ttdnet.data.eeg_window_writer` writes them.
"""

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ttdnet.errors import ConfigError, TtdnetError


FORMAT_NAME = "ttdnet-eeg-windows"
FORMAT_VERSION = 1
INDEX_NAME = "index.json"
SHARD_PATTERN = "shard-{:05d}.npy"
CONTRACT_KEYS = ("ch_names", "sfreq", "n_times", "window_seconds", "normalisation", "filter")
"""Index fields that must agree between a corpus and a run that appends to it."""


class WindowCorpusError(TtdnetError):
    """A window corpus on disk is missing, corrupt or inconsistent with its index. The message names the file."""


class WindowContractError(TtdnetError):
    """A consumer's channels, sampling rate or window length differ from the corpus it reads."""


def contract_mismatches(expected: dict[str, Any], ch_names: Sequence[str], sfreq: float, n_times: int) -> list[str]:
    """Human-readable differences between a recorded contract and a consumer's values (empty when they agree).

    Parameters
    ----------
    expected : dict
        Holds ``ch_names`` (list of str), ``sfreq`` (float) and ``n_times`` (int), e.g. a corpus index.
    ch_names : sequence of str
        The consumer's channels, in its input order.
    sfreq : float
        The consumer's sampling rate in Hz.
    n_times : int
        The consumer's window length in samples.
    """
    problems = []
    have = list(expected["ch_names"])
    want = list(ch_names)
    if have != want:
        missing = [name for name in want if name not in have]
        extra = [name for name in have if name not in want]
        if not missing and not extra:
            problems.append(f"channel order differs: corpus {have}, model {want}")
        else:
            detail = []
            if missing:
                detail.append(f"absent from the corpus: {missing}")
            if extra:
                detail.append(f"in the corpus but not the model: {extra}")
            problems.append(
                f"channels differ ({len(have)} in the corpus, {len(want)} in the model; {'; '.join(detail)})"
            )
    if abs(float(expected["sfreq"]) - float(sfreq)) > 1e-6 * max(1.0, float(sfreq)):
        problems.append(f"sampling rate differs: corpus {float(expected['sfreq']):g} Hz, model {float(sfreq):g} Hz")
    if int(expected["n_times"]) != int(n_times):
        problems.append(f"window length differs: corpus {int(expected['n_times'])} samples, model {int(n_times)}")
    return problems


class EEGWindowCorpus:
    """Read a window corpus: its index, memory-mapped shards, and the input contract.

    Parameters
    ----------
    root : path-like
        Folder holding ``index.json`` and the shards.

    Attributes
    ----------
    root : pathlib.Path
    index : dict
        The parsed ``index.json``.
    ch_names : tuple of str, length n_chans
    sfreq : float
    n_times : int
    shards : list of dict
        ``{"file", "n_windows", "sources"}`` per shard, in order.

    Raises
    ------
    WindowCorpusError
        Missing or unreadable index, another format or version, no windows, a shard missing or of the wrong shape.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.index = read_index(self.root)
        self.ch_names = tuple(self.index["ch_names"])
        self.sfreq = float(self.index["sfreq"])
        self.n_times = int(self.index["n_times"])
        self.shards = list(self.index["shards"])
        counts = np.array([int(shard["n_windows"]) for shard in self.shards], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(counts)])
        self._arrays: dict[int, np.ndarray] = {}
        if len(self) == 0:
            raise WindowCorpusError(
                f"{self.root / 'index.json'}: the corpus holds no windows (every recording failed or was skipped; "
                "the reasons are listed under 'failed' and 'skipped' there); fix the recordings or the options "
                "and rerun `ttdnet preprocess edf`"
            )

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __repr__(self) -> str:
        return (
            f"EEGWindowCorpus({str(self.root)!r}: {len(self)} windows of {len(self.ch_names)} channels x "
            f"{self.n_times} samples at {self.sfreq:g} Hz in {len(self.shards)} shards)"
        )

    def shard(self, k: int) -> np.ndarray:
        """Shard ``k`` as a read-only memory map, float32, shape (n_windows, n_chans, n_times)."""
        if k not in self._arrays:
            entry = self.shards[k]
            path = self.root / entry["file"]
            if not path.is_file():
                raise WindowCorpusError(
                    f"{path}: shard listed in {self.root / INDEX_NAME} is missing; rerun `ttdnet preprocess edf` "
                    "with the same output_dir to rebuild it"
                )
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except ValueError as error:
                raise WindowCorpusError(f"{path}: not a readable NPY shard ({error})") from error
            expected = (int(entry["n_windows"]), len(self.ch_names), self.n_times)
            if array.shape != expected or array.dtype != np.float32:
                raise WindowCorpusError(
                    f"{path}: shape {array.shape} dtype {array.dtype}; the index says {expected} float32"
                )
            self._arrays[k] = array
        return self._arrays[k]

    def first_window(self, k: int) -> int:
        """Corpus index of the first window of shard ``k``."""
        return int(self._offsets[k])

    def locate(self, i: int) -> tuple[int, int]:
        """``(shard, row)`` of window ``i`` (negative indices count from the end)."""
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"window {i} out of range for a corpus of {n} windows")
        k = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return k, int(i - self._offsets[k])

    def __getitem__(self, i: int) -> np.ndarray:
        """Window ``i`` as a float32 array of shape (n_chans, n_times) (a copy, safe to modify)."""
        k, row = self.locate(i)
        return np.array(self.shard(k)[row], dtype=np.float32)

    def __iter__(self) -> Iterator[np.ndarray]:
        for k in range(len(self.shards)):
            yield from (np.array(window) for window in self.shard(k))

    def sources(self) -> list[dict[str, Any]]:
        """Every input recording in the corpus with its shard and window range."""
        out = []
        for k, shard in enumerate(self.shards):
            for source in shard["sources"]:
                out.append({"shard": k, **source})
        return out

    def check_compatible(self, ch_names: Sequence[str], sfreq: float, n_times: int) -> None:
        """Refuse a consumer whose input contract (channels, rate, window) differs from this corpus.

        Parameters
        ----------
        ch_names : sequence of str
            The consumer's channels in input order.
        sfreq : float
            The consumer's sampling rate in Hz.
        n_times : int
            The consumer's window length in samples.

        Raises
        ------
        WindowContractError
            Naming every mismatch (channels, order, rate, length) and how to fix it.
        """
        problems = contract_mismatches(self.index, ch_names, sfreq, n_times)
        if problems:
            raise WindowContractError(
                f"{self.root / INDEX_NAME}: the window corpus does not fit the model's input: "
                + "; ".join(problems)
                + ". Rebuild the corpus with `ttdnet preprocess edf --channels ... --sfreq ... --window_seconds ...` "
                "matching the model, or configure the model for the corpus."
            )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_arrays"] = {}  # memory maps are re-opened in the receiving process (DataLoader workers), never copied
        return state


class EEGWindowDataset(Dataset):
    """A :class:`torch.utils.data.Dataset` over the windows of a corpus.

    Parameters
    ----------
    corpus : EEGWindowCorpus or path-like
    windows : sequence of int, optional
        Indices of the windows to use (for a split); all windows when None.
    transform : callable, optional
        Applied to each float32 tensor of shape (n_chans, n_times).

    Notes
    -----
    ``dataset[i]`` is a float32 tensor of shape (n_chans, n_times); ``dataset.corpus`` is the corpus.
    """

    def __init__(
        self,
        corpus: "EEGWindowCorpus | str | os.PathLike",
        windows: Sequence[int] | None = None,
        transform=None,
    ):
        self.corpus = corpus if isinstance(corpus, EEGWindowCorpus) else EEGWindowCorpus(corpus)
        self.windows = np.arange(len(self.corpus)) if windows is None else np.asarray(windows, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> torch.Tensor:
        window = torch.from_numpy(self.corpus[int(self.windows[i])])
        return self.transform(window) if self.transform is not None else window


def split_by_recording(corpus: EEGWindowCorpus, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Window indices of a deterministic train/validation split that holds out whole recordings.

    Windows cut from one recording are correlated, so a validation set must not share recordings with the
    training set.

    Parameters
    ----------
    corpus : EEGWindowCorpus
    val_fraction : float
        Fraction of recordings held out, in [0, 1); at least one when > 0 and there are two or more.
    seed : int

    Returns
    -------
    train_windows, val_windows : numpy.ndarray of int
        Sorted, disjoint window indices covering the corpus.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    sources = corpus.sources()
    n_val = int(round(val_fraction * len(sources)))
    if val_fraction > 0 and len(sources) > 1:
        n_val = max(n_val, 1)
    held_out = set(np.random.default_rng(seed).permutation(len(sources))[:n_val].tolist())
    train, val = [], []
    for position, source in enumerate(sources):
        start = corpus.first_window(source["shard"]) + int(source["first_window"])
        indices = range(start, start + int(source["n_windows"]))
        (val if position in held_out else train).extend(indices)
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(val), dtype=np.int64)


def read_index(root: str | os.PathLike) -> dict[str, Any]:
    """Parse and check ``root/index.json``.

    Raises
    ------
    WindowCorpusError
        Missing, not JSON, another format or version, or missing fields.
    """
    path = Path(root) / INDEX_NAME
    if not path.is_file():
        raise WindowCorpusError(
            f"{path}: no window-corpus index here; build one with `ttdnet preprocess edf --output_dir {Path(root)}`"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WindowCorpusError(f"{path}: not valid JSON ({error}); delete the folder and rebuild it") from error
    if not isinstance(index, dict) or index.get("format") != FORMAT_NAME:
        raise WindowCorpusError(f"{path}: not a {FORMAT_NAME} index (format {index.get('format')!r})")
    if index.get("version") != FORMAT_VERSION:
        raise WindowCorpusError(
            f"{path}: format version {index.get('version')!r}; this ttdnet reads version {FORMAT_VERSION}"
        )
    missing = [key for key in (*CONTRACT_KEYS, "shards") if key not in index]
    if missing:
        raise WindowCorpusError(f"{path}: index lacks {missing}")
    return index
