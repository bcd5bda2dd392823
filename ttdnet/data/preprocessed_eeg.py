"""Reading one THINGS-EEG2 preprocessed EEG file, with every check of its format.

The file holds a dict with the keys ``preprocessed_eeg_data``, ``ch_names`` and ``times``, either saved with
``np.save`` (the official release) or pickled under a ``.npy`` name (the NICE/ATM 250 Hz files, whose
``times`` has 50 surplus leading entries); see ``docs/data-format.md``.
"""

import dataclasses
import functools
import os
from pathlib import Path
from typing import Literal

import numpy as np

from ttdnet.data.channels import make_standard_1005_montage, with_case_hints
from ttdnet.data.safe_pickle import NPY_MAGIC, load_pickled_container
from ttdnet.data.things_eeg2 import ThingsEEG2FormatError


EEG_KEYS = ("preprocessed_eeg_data", "ch_names", "times")
DATA_AXES = ("image conditions", "repetitions", "channels", "time points")
"""The four axes of ``preprocessed_eeg_data``, in order."""
FLOAT32_MAX = float(np.finfo(np.float32).max)
NICE_EXTRA_TIMES = 50
"""The NICE/ATM 250 Hz files keep 300 ``times`` entries (-0.2 ... 0.996 s) for 250 data samples."""


@functools.lru_cache(maxsize=1)
def standard_1005_names() -> frozenset[str]:
    """Channel names of MNE's ``standard_1005`` montage."""
    return frozenset(make_standard_1005_montage().ch_names)


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
    # Within a microsecond counts as even: float32 times (rounding about 6e-8 s near 1 s) are accepted.
    if not np.allclose(steps, step, rtol=1e-6, atol=1e-6):
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


def _check_float32_finite(data: np.ndarray, source: str, block_elements: int = 2**22) -> None:
    """Raise at the first value that is NaN or infinite, or that becomes infinite in float32.

    The cache and every model hold the EEG as float32, so a value beyond its range (about ±3.4e38) would
    turn into ``inf`` there although it is finite in the file's float64.

    Parameters
    ----------
    data : numpy.ndarray, shape (n_conditions, n_repetitions, n_chans, n_times)
    source : str
        File name for the error message.
    block_elements : int
        Values converted per step (bounds the float32 copy held in memory).
    """
    rows = max(1, block_elements // max(1, int(np.prod(data.shape[1:]))))
    for start in range(0, data.shape[0], rows):
        block = data[start : start + rows]
        with np.errstate(over="ignore"):
            finite = np.isfinite(block.astype(np.float32))
        if finite.all():
            continue
        bad = np.argwhere(~finite)[0]
        index = (start + int(bad[0]), *map(int, bad[1:]))
        value = block[tuple(bad)]
        where = f"at index {index} (condition, repetition, channel, time)"
        if np.isfinite(value):
            raise ThingsEEG2FormatError(
                f"{source}: value {value:g} {where} is beyond the float32 range (±{FLOAT32_MAX:.4g}) that the "
                "cache and the models compute in; the file is corrupt"
            )
        raise ThingsEEG2FormatError(
            f"{source}: non-finite value {value} {where}; the file is corrupt or was written from failed processing"
        )


def _read_times(value: object, source: str) -> np.ndarray:
    """``times`` as float64; raises unless it holds real numbers."""
    try:
        times = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise ThingsEEG2FormatError(f"{source}: 'times' is not an array of numbers ({error})") from None
    if times.dtype.kind not in "iuf":
        example = times.ravel()[:1].tolist()
        raise ThingsEEG2FormatError(
            f"{source}: 'times' must be numbers (seconds relative to stimulus onset), got "
            + (f"{type(example[0]).__name__} values such as {example[0]!r}" if example else f"dtype {times.dtype}")
        )
    return times.astype(np.float64)


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
            f"{source}: 'preprocessed_eeg_data' has shape {data.shape}; expected 4 axes ({', '.join(DATA_AXES)})"
        )
    empty = [f"no {name} (axis {axis} is empty)" for axis, name in enumerate(DATA_AXES) if data.shape[axis] == 0]
    if empty:
        raise ThingsEEG2FormatError(
            f"{source}: 'preprocessed_eeg_data' has shape {data.shape}, with {' and '.join(empty)}; a file needs at "
            "least one image condition, repetition, channel and time point"
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
    times = _read_times(contents["times"], source)
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
    _check_float32_finite(data, source)
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
        Missing file, wrong keys, shapes (an empty axis included), channel names or time axis (``times`` not
        numbers included), or values that are NaN, infinite or beyond the float32 range.
    ttdnet.data.safe_pickle.UnsafePickleError
        The file's pickle references code outside numpy array reconstruction.
    """
    path = Path(path)
    if not path.is_file():
        raise ThingsEEG2FormatError(f"{path}: file not found")
    with open(path, "rb") as handle:
        is_npy = handle.read(len(NPY_MAGIC)) == NPY_MAGIC
    return validate_eeg_dict(load_pickled_container(path), str(path), container="npy" if is_npy else "pickle")
