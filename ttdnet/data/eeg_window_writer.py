"""Writing a window corpus (the format is described in :mod:`ttdnet.data.eeg_windows`), crash-safe.

Each shard is written to a temporary file and renamed into place, then the index is rewritten atomically with
that shard added, so a reader or a resumed run never sees a shard the index does not describe, nor an index
entry without its shard. Sources recorded in the index are skipped on a rerun.
"""

import datetime
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ttdnet import __version__
from ttdnet.data.eeg_windows import (
    CONTRACT_KEYS,
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_NAME,
    SHARD_PATTERN,
    WindowCorpusError,
    read_index,
)
from ttdnet.io import atomic_open, atomic_write_json


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class EEGWindowWriter:
    """Append shards of windows to a corpus folder, keeping ``index.json`` consistent after every shard.

    Parameters
    ----------
    root : path-like
        Output folder (created).
    ch_names : sequence of str
    sfreq : float
    n_times : int
    window_seconds : float
    normalisation : dict
        ``{"method": ..., "description": ..., ...}``; part of the contract.
    filter : dict
        Filter settings; part of the contract.
    extra : dict, optional
        More fields for the index (e.g. ``config``); not part of the contract.

    Raises
    ------
    WindowCorpusError
        The folder already holds a corpus built with a different contract.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        ch_names: Sequence[str],
        sfreq: float,
        n_times: int,
        window_seconds: float,
        normalisation: dict[str, Any],
        filter: dict[str, Any],  # noqa: A002 - the index field name
        extra: dict[str, Any] | None = None,
    ):
        self.root = Path(root)
        contract = {
            "ch_names": list(ch_names),
            "sfreq": float(sfreq),
            "n_times": int(n_times),
            "window_seconds": float(window_seconds),
            "normalisation": normalisation,
            "filter": filter,
        }
        contract = json.loads(json.dumps(contract))  # the form it takes in the file, for comparison
        if (self.root / INDEX_NAME).is_file():
            index = read_index(self.root)
            differ = [key for key in CONTRACT_KEYS if index[key] != contract[key]]
            if differ:
                details = "; ".join(f"{key}: existing {index[key]!r}, requested {contract[key]!r}" for key in differ)
                raise WindowCorpusError(
                    f"{self.root / INDEX_NAME}: this folder holds a corpus built with other settings ({details}). "
                    "Use another --output_dir, or --overwrite to rebuild it from scratch."
                )
            self.index = index
        else:
            self.index = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                **contract,
                "dtype": "float32",
                "layout": "(n_windows, n_chans, n_times)",
                "created": _now(),
                "shards": [],
                "failed": [],
                "skipped": [],
            }
        self.index.update(extra or {})
        self.index["ttdnet_version"] = __version__

    @property
    def done_sources(self) -> set[str]:
        """Source keys already written to a shard."""
        return {source["path"] for shard in self.index["shards"] for source in shard["sources"]}

    @property
    def n_windows(self) -> int:
        return sum(int(shard["n_windows"]) for shard in self.index["shards"])

    def _next_shard_name(self) -> str:
        taken = {shard["file"] for shard in self.index["shards"]}
        numbers = [int(m.group(1)) for name in taken if (m := re.match(r"shard-(\d+)\.npy$", name))]
        k = max(numbers, default=-1) + 1
        while SHARD_PATTERN.format(k) in taken:  # pragma: no cover - defensive
            k += 1
        return SHARD_PATTERN.format(k)

    def write_shard(self, windows: np.ndarray, sources: list[dict[str, Any]]) -> str:
        """Write one shard and record it with its sources in the index (both atomically).

        Parameters
        ----------
        windows : numpy.ndarray, shape (n_windows, n_chans, n_times)
            Cast to float32.
        sources : list of dict
            One per input recording in the shard, in row order: ``{"path", "n_windows", ...}``; their
            ``n_windows`` must add up to the shard's. ``first_window`` (row in the shard) is filled in.

        Returns
        -------
        str
            The shard's file name.
        """
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        expected = (len(self.index["ch_names"]), int(self.index["n_times"]))
        if windows.ndim != 3 or windows.shape[1:] != expected:
            raise ValueError(f"windows have shape {windows.shape}; expected (n_windows, {expected[0]}, {expected[1]})")
        if sum(int(source["n_windows"]) for source in sources) != windows.shape[0]:
            raise ValueError("the sources' n_windows do not add up to the shard's window count")
        if not np.isfinite(windows).all():
            raise ValueError("refusing to write a shard with non-finite values")
        name = self._next_shard_name()
        with atomic_open(self.root / name, "wb") as handle:
            np.save(handle, windows, allow_pickle=False)
        first = 0
        recorded = []
        for source in sources:
            recorded.append({**source, "first_window": first})
            first += int(source["n_windows"])
        self.index["shards"].append({"file": name, "n_windows": int(windows.shape[0]), "sources": recorded})
        done = {source["path"] for source in sources}
        self.index["failed"] = [entry for entry in self.index["failed"] if entry["path"] not in done]
        self.index["skipped"] = [entry for entry in self.index["skipped"] if entry["path"] not in done]
        self.save_index()
        return name

    def record_problem(self, kind: str, path: str, reason: str) -> None:
        """Record an input as ``"failed"`` (unreadable) or ``"skipped"`` (unusable) and save the index."""
        if kind not in ("failed", "skipped"):
            raise ValueError(f"kind must be 'failed' or 'skipped', got {kind!r}")
        for key in ("failed", "skipped"):
            self.index[key] = [entry for entry in self.index[key] if entry["path"] != path]
        self.index[kind].append({"path": path, "reason": reason})
        self.save_index()

    def save_index(self) -> None:
        """Rewrite ``index.json`` atomically."""
        self.index["updated"] = _now()
        self.index["n_windows"] = self.n_windows
        atomic_write_json(self.root / INDEX_NAME, self.index)
