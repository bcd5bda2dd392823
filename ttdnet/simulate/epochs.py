"""Epoched, whitened single trials in the layout of the official preprocessed files (``docs/data-format.md``).

For one subject and partition, :func:`simulate_partition` returns ``(n_images, n_repetitions, C, 100)``:
evoked response × session gain + noise × session noise level, baseline-corrected over −200 … 0 ms and
whitened by :func:`mvnn_whitener`. The repetition axis follows the official recording design: training
images are seen in two sessions (one of 1/2, one of 3/4, half the repetitions each), test images in all
four, and the merged axis is permuted by :func:`ttdnet.data.channels.repetition_permutation`.

Trials are generated in chunks of :data:`CHUNK_IMAGES` images, each with its own seed, so the output does not
depend on how chunks are scheduled and memory stays bounded by the output array.
"""

from collections.abc import Callable

import numpy as np

from ttdnet.covariance import shrinkage_covariance, whitening_matrix
from ttdnet.data.channels import repetition_permutation
from ttdnet.simulate.eeg_model import REFERENCE_SFREQ, SubjectModel
from ttdnet.simulate.names import stable_seed


SFREQ = REFERENCE_SFREQ
TIMES = np.arange(100) / 100 - 0.2
"""The official time axis: −0.2 … 0.79 s at 100 Hz; index 20 is stimulus onset."""
BASELINE = TIMES < 0
CHUNK_IMAGES = 64
N_WHITENING_TRIALS = 400


def training_sessions(
    rng: np.random.Generator, n_concepts: int, images_per_concept: int, n_repetitions: int
) -> np.ndarray:
    """Session (0 … 3) of each training trial in merged order (earlier session first).

    Sessions 1 and 2 split the concepts in random halves, and so do sessions 3 and 4 with a new split
    (THINGS-EEG2's session design); the first ``ceil(R / 2)`` merged repetitions come from the earlier session.

    Returns
    -------
    numpy.ndarray of int, shape (n_concepts * images_per_concept, n_repetitions)
    """
    early = np.zeros(n_concepts, dtype=int)
    early[rng.permutation(n_concepts)[n_concepts // 2 :]] = 1
    late = np.full(n_concepts, 2)
    late[rng.permutation(n_concepts)[n_concepts // 2 :]] = 3
    n_early = (n_repetitions + 1) // 2
    per_concept = np.where(np.arange(n_repetitions)[None, :] < n_early, early[:, None], late[:, None])
    return np.repeat(per_concept, images_per_concept, axis=0)


def test_sessions(n_images: int, n_repetitions: int, n_sessions: int = 4) -> np.ndarray:
    """Session of each test trial in merged order: equal consecutive blocks, shape (n_images, n_repetitions)."""
    return np.tile(np.arange(n_repetitions) * n_sessions // n_repetitions, (n_images, 1))


def stored_order(merged_sessions: np.ndarray) -> np.ndarray:
    """Apply the official permutation of the merged repetition axis, shape kept ``(n_images, R)``."""
    return merged_sessions[:, repetition_permutation(merged_sessions.shape[1])]


def baseline_correct(trials: np.ndarray) -> np.ndarray:
    """Subtract each channel's mean over −200 … 0 ms; ``(..., C, 100)`` in, same shape out."""
    return trials - trials[..., BASELINE].mean(axis=-1, keepdims=True)


def mvnn_whitener(subject: SubjectModel, channels: list[int], seed: int) -> np.ndarray:
    """Whitening matrix W = Σ^(−1/2), shape (C, C), from simulated noise-only trials.

    Σ is the shrunk covariance of :data:`N_WHITENING_TRIALS` baseline-corrected noise-only epochs, pooled
    over time points: the quantity the official ``mvnn_dim='time'`` estimates from repetitions of the same
    image, whose mean (the evoked response) cancels.
    """
    rng = np.random.default_rng(stable_seed(seed, "whitening-noise", subject.subject_number))
    noise = baseline_correct(subject.noise(rng, N_WHITENING_TRIALS, len(TIMES), SFREQ, channels))
    samples = noise.transpose(0, 2, 1).reshape(-1, len(channels))
    return whitening_matrix(shrinkage_covariance(samples))


def simulate_partition(
    subject: SubjectModel,
    features: np.ndarray,
    sessions: np.ndarray,
    channels: list[int],
    whitener: np.ndarray,
    seed: int,
    partition: str,
    on_chunk: Callable[[], None] | None = None,
) -> np.ndarray:
    """Whitened single trials of one partition.

    Parameters
    ----------
    subject : SubjectModel
        Calibrated subject model.
    features : numpy.ndarray, shape (n_images, N_FEATURES)
        Image features, in row order.
    sessions : numpy.ndarray of int, shape (n_images, n_repetitions)
        Session of each stored trial (after :func:`stored_order`).
    channels : list of int
        Indices into the 63 raw-order channels.
    whitener : numpy.ndarray, shape (C, C)
    seed : int
        Dataset seed; with ``partition``, the subject and the chunk index it seeds each chunk's noise.
    partition : {"training", "test"}
    on_chunk : callable, optional
        Called after each chunk (progress bars).

    Returns
    -------
    numpy.ndarray of float64, C-contiguous, shape (n_images, n_repetitions, C, 100)
    """
    n_images, n_repetitions = sessions.shape
    output = np.empty((n_images, n_repetitions, len(channels), len(TIMES)))
    for chunk, start in enumerate(range(0, n_images, CHUNK_IMAGES)):
        stop = min(start + CHUNK_IMAGES, n_images)
        rng = np.random.default_rng(stable_seed(seed, "trial-noise", subject.subject_number, partition, chunk))
        chunk_sessions = sessions[start:stop]
        evoked = subject.evoked(features[start:stop], TIMES, channels)
        noise = subject.noise(rng, (stop - start) * n_repetitions, len(TIMES), SFREQ, channels)
        noise = noise.reshape(stop - start, n_repetitions, len(channels), len(TIMES))
        trials = evoked[:, None] * subject.session_signal_gains[chunk_sessions][..., None, None]
        trials += noise * subject.session_noise_scales[chunk_sessions][..., None, None]
        output[start:stop] = np.matmul(whitener, baseline_correct(trials))
        if on_chunk is not None:
            on_chunk()
    return output
