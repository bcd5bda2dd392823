"""Selecting channels by name, time windows by seconds, and the validation split of training concepts."""

import numpy as np

from ttdnet.data.channels import with_case_hints
from ttdnet.errors import TtdnetError


class SelectionError(TtdnetError):
    """A requested channel, time window or split cannot be taken from the data."""


def channel_indices(available: tuple[str, ...] | list[str], wanted: list[str] | tuple[str, ...] | None) -> np.ndarray:
    """Indices of ``wanted`` channels in ``available``, in the order of ``wanted``.

    Parameters
    ----------
    available : sequence of str
        Channel names of the data, in stored order.
    wanted : sequence of str or None
        Names to pick; None keeps every channel in stored order.

    Returns
    -------
    numpy.ndarray of int, shape (n_wanted,)

    Raises
    ------
    SelectionError
        Listing every wanted name that the data lacks, and duplicates.
    """
    available = list(available)
    if wanted is None:
        return np.arange(len(available))
    wanted = list(wanted)
    duplicates = sorted({name for name in wanted if wanted.count(name) > 1})
    if duplicates:
        raise SelectionError(f"channels requested twice: {duplicates}")
    missing = [name for name in wanted if name not in available]
    if missing:
        raise SelectionError(
            f"channels {with_case_hints(missing, available)} are not in the data; it has {len(available)} "
            f"channels: {', '.join(available)}"
        )
    return np.array([available.index(name) for name in wanted], dtype=np.int64)


def time_window(times: np.ndarray, sfreq: float, tmin: float | None, tmax: float | None) -> slice:
    """Index slice of the samples with ``tmin <= t < tmax`` on an evenly sampled time axis.

    Times are converted with ``round((t - times[0]) * sfreq)`` and must lie on the sample grid (within
    1 % of a sample), which avoids the off-by-one of ``searchsorted`` on float grids
    (``times[70] == 0.49999999999999994`` at 100 Hz). ``tmax`` may be one sample past the last time point.

    Parameters
    ----------
    times : numpy.ndarray, shape (n_times,)
        Seconds relative to stimulus onset.
    sfreq : float
        Sampling rate in Hz.
    tmin, tmax : float or None
        Window in seconds, ``tmin`` inclusive, ``tmax`` exclusive. None means the start or the end.

    Returns
    -------
    slice

    Examples
    --------
    On the official 100 Hz axis (-0.2 ... 0.79 s), ``time_window(times, 100, 0.0, 0.7)`` is ``slice(20, 90)``.
    """
    n_times = len(times)

    def to_index(t: float, name: str) -> int:
        position = (t - times[0]) * sfreq
        index = int(round(position))
        if abs(position - index) > 0.01:
            raise SelectionError(
                f"{name}={t} s is not on the {sfreq:g} Hz sample grid starting at {times[0]:.6g} s; "
                f"nearest sample times are {times[0] + np.floor(position) / sfreq:.6g} and "
                f"{times[0] + np.ceil(position) / sfreq:.6g} s"
            )
        return index

    start = 0 if tmin is None else to_index(tmin, "tmin")
    stop = n_times if tmax is None else to_index(tmax, "tmax")
    if not 0 <= start < stop <= n_times:
        raise SelectionError(
            f"time window [{tmin}, {tmax}) s is empty or outside the data, which spans "
            f"{times[0]:.6g} ... {times[-1]:.6g} s (tmax may be at most {times[-1] + 1 / sfreq:.6g})"
        )
    return slice(start, stop)


def split_training_concepts(n_concepts: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of the training concepts into training and validation concepts.

    The validation split holds out whole *concepts*, so selecting a model on it mimics the zero-shot test
    (whose concepts are never trained on). The test set never takes part.

    Parameters
    ----------
    n_concepts : int
        Number of training concepts (1654 in THINGS-EEG2).
    val_fraction : float
        Fraction of concepts held out, in [0, 1). At least one concept is held out when it is > 0.
    seed : int
        Seed of the draw; the same seed gives the same split on every machine.

    Returns
    -------
    train_concepts, val_concepts : numpy.ndarray of int
        Sorted, disjoint concept indices covering ``range(n_concepts)``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise SelectionError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * n_concepts))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    if n_val >= n_concepts:
        raise SelectionError(f"val_fraction={val_fraction} leaves no training concept out of {n_concepts}")
    order = np.random.default_rng(seed).permutation(n_concepts)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
