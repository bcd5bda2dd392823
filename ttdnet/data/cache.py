"""A float32, memory-mappable cache of THINGS-EEG2's pickled EEG files.

A pickled file cannot be memory-mapped, and ten official subjects hold about 11 GB of float64. Each file
is therefore converted once to a plain float32 ``.npy`` that later loads with ``mmap_mode='r'``, so the
operating system pages in only what a batch touches.

A cache entry is a folder ``<cache_dir>/<key>/`` holding ``data.npy`` and ``meta.json``; ``key`` is a hash
of the source's absolute path. ``meta.json`` records the source's size and modification time and is written
last: an entry whose ``meta.json`` is missing or no longer matches the source is rebuilt. Both files are
written atomically, so an interrupted conversion never leaves an entry that looks valid.
"""

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ttdnet.data.preprocessed_eeg import read_preprocessed_eeg
from ttdnet.data.things_eeg2 import ThingsEEG2FormatError
from ttdnet.io import atomic_open, atomic_write_json


CACHE_FORMAT_VERSION = 2
"""Raised whenever the checks applied at conversion change, so that older entries are validated again."""
CONVERSION_CHUNK = 512
"""Image conditions converted per step (bounds the float32 copy held in memory on top of the loaded file)."""


def default_cache_dir() -> Path:
    """``$TTDNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/ttdnet``, else ``~/.cache/ttdnet``."""
    if os.environ.get("TTDNET_CACHE_DIR"):
        return Path(os.environ["TTDNET_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ttdnet"


@dataclasses.dataclass(frozen=True)
class CachedEEG:
    """A memory-mapped cached EEG file.

    Attributes
    ----------
    data : numpy.memmap of float32, shape (n_conditions, n_repetitions, n_chans, n_times)
        Read-only.
    ch_names : tuple of str
    times : numpy.ndarray of float64, shape (n_times,)
    sfreq : float
    variant : {"official", "nice"}
    container : {"npy", "pickle"}
    source : pathlib.Path
        The original file.
    data_path : pathlib.Path
        The cached ``data.npy`` (re-open it with ``np.load(data_path, mmap_mode="r")`` in another process).
    """

    data: np.ndarray
    ch_names: tuple[str, ...]
    times: np.ndarray
    sfreq: float
    variant: str
    container: str
    source: Path
    data_path: Path


def _source_stamp(source: Path) -> dict[str, int]:
    stat = source.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cache_entry_dir(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the cache entry for ``source`` (it may not exist yet)."""
    resolved = str(Path(source).resolve())
    key = hashlib.sha256(resolved.encode("utf-8")).hexdigest()[:24]
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "things-eeg2" / key


def _read_entry(entry: Path, source: Path) -> CachedEEG | None:
    """The cached file if its entry is complete and matches ``source``'s current size and mtime, else None."""
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if meta.get("format_version") != CACHE_FORMAT_VERSION or meta.get("source_stamp") != _source_stamp(source):
        return None
    try:
        data = np.load(entry / "data.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    if list(data.shape) != meta["shape"] or data.dtype != np.float32:
        return None
    return CachedEEG(
        data=data,
        ch_names=tuple(meta["ch_names"]),
        times=np.asarray(meta["times"], dtype=np.float64),
        sfreq=float(meta["sfreq"]),
        variant=meta["variant"],
        container=meta["container"],
        source=source,
        data_path=entry / "data.npy",
    )


def load_cached_eeg(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> CachedEEG:
    """Memory-map the float32 cache of a preprocessed EEG file, converting it first if needed.

    The source is read and validated with :func:`ttdnet.data.preprocessed_eeg.read_preprocessed_eeg` whenever
    the cache is built or rebuilt (missing entry, or the source's size or modification time changed).

    Parameters
    ----------
    source : path-like
        ``preprocessed_eeg_{training,test}.npy``.
    cache_dir : path-like, optional
        Cache root; :func:`default_cache_dir` when None.

    Returns
    -------
    CachedEEG
    """
    source = Path(source)
    entry = cache_entry_dir(source, cache_dir)
    if source.is_file():
        cached = _read_entry(entry, source)
        if cached is not None:
            return cached
    contents = read_preprocessed_eeg(source)
    stamp = _source_stamp(source)
    entry.mkdir(parents=True, exist_ok=True)
    (entry / "meta.json").unlink(missing_ok=True)
    with atomic_open(entry / "data.npy", "wb") as handle:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
        np.lib.format.write_array_header_2_0(handle, {**header, "shape": contents.data.shape})
        for start in range(0, contents.data.shape[0], CONVERSION_CHUNK):
            block = np.ascontiguousarray(contents.data[start : start + CONVERSION_CHUNK], dtype=np.float32)
            handle.write(block.tobytes())
    atomic_write_json(
        entry / "meta.json",
        {
            "format_version": CACHE_FORMAT_VERSION,
            "source": str(source.resolve()),
            "source_stamp": stamp,
            "shape": list(contents.data.shape),
            "ch_names": list(contents.ch_names),
            "times": contents.times.tolist(),
            "sfreq": contents.sfreq,
            "variant": contents.variant,
            "container": contents.container,
        },
    )
    del contents
    cached = _read_entry(entry, source)
    if cached is None:
        raise RuntimeError(f"cache entry {entry} for {source} could not be read back after writing it")
    return cached


def _describe_times(entry: CachedEEG) -> str:
    return f"{entry.sfreq:g} Hz from {entry.times[0]:g} s ({len(entry.times)} samples)"


def check_shared_axes(files: Sequence[CachedEEG]) -> None:
    """Raise unless every file has the channels (names and order) and the time axis of the first.

    Every split and subject of one dataset must share them: a model trained on one partition and tested on
    another, or on several subjects at once, reads sample ``t`` of channel ``c`` as the same thing everywhere.

    Parameters
    ----------
    files : sequence of CachedEEG
        The first is the reference the error messages compare with.

    Raises
    ------
    ThingsEEG2FormatError
        Naming both files and the difference.
    """
    reference = files[0]
    rule = "every split and subject must share"
    for entry in files[1:]:
        if entry.ch_names != reference.ch_names:
            if sorted(entry.ch_names) == sorted(reference.ch_names):
                i = next(i for i, pair in enumerate(zip(entry.ch_names, reference.ch_names)) if pair[0] != pair[1])
                difference = (
                    f"has the channels of {reference.source} in another order (channel {i} is "
                    f"{entry.ch_names[i]}, there {reference.ch_names[i]})"
                )
            else:
                only_here = [name for name in entry.ch_names if name not in reference.ch_names]
                only_there = [name for name in reference.ch_names if name not in entry.ch_names]
                difference = (
                    f"has {len(entry.ch_names)} channels, {reference.source} {len(reference.ch_names)} "
                    f"(only in the first: {only_here or 'none'}; only in the second: {only_there or 'none'})"
                )
            raise ThingsEEG2FormatError(f"{entry.source} {difference}; {rule} the same channels in the same order")
        step = 1.0 / reference.sfreq
        if len(entry.times) != len(reference.times) or not np.allclose(
            entry.times, reference.times, rtol=0.0, atol=1e-3 * step
        ):
            raise ThingsEEG2FormatError(
                f"{entry.source} has times at {_describe_times(entry)}, {reference.source} at "
                f"{_describe_times(reference)}; {rule} one time axis"
            )
