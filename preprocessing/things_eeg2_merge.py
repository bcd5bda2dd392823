"""Merging the sessions of one THINGS-EEG2 subject into the official preprocessed arrays.

Test: the sessions' repetitions concatenated in session order. Training: each image's entries from the sessions
that showed it, in session order. Then the repetition axis gets the fixed official permutation.
"""

import numpy as np

from ttdnet.preprocessing.common import PreprocessingError


def _check_contiguous(conditions: np.ndarray, what: str) -> None:
    if not np.array_equal(conditions, np.arange(1, conditions.size + 1)):
        gaps = np.setdiff1d(np.arange(1, int(conditions.max()) + 1), conditions)[:10]
        raise PreprocessingError(
            f"{what}: image condition codes must be 1..{conditions.size} (row n-1 of the output is image n); "
            f"missing codes include {gaps.tolist()}"
        )


def merge_test(sessions: list[dict], permutation: np.ndarray | None, subject: str) -> np.ndarray:
    """Concatenate the sessions' test data along repetitions and permute them.

    Parameters
    ----------
    sessions : list of dict
        Per session, in session order: ``session`` (number), ``conditions`` (n_conditions,) and ``data``
        (n_conditions, max_rep, n_chans, n_times).
    permutation : numpy.ndarray of int, shape (n_sessions * max_rep,), optional
        Applied to the merged repetition axis; None keeps session order.
    subject : str
        Subject name for errors.

    Returns
    -------
    numpy.ndarray, shape (n_conditions, n_sessions * max_rep, n_chans, n_times)
    """
    first = sessions[0]["conditions"]
    for entry in sessions[1:]:
        if not np.array_equal(entry["conditions"], first):
            raise PreprocessingError(
                f"{subject}: test conditions differ between sessions (session {entry['session']} has "
                f"{entry['conditions'].size}, the first {first.size}); every test image must be in every session"
            )
    _check_contiguous(first, f"{subject} test")
    merged = np.concatenate([entry["data"] for entry in sessions], axis=1)
    if permutation is not None:
        merged = merged[:, permutation]
    return merged


def merge_training(sessions: list[dict], permutation_seed: int | None, subject: str, dtype) -> np.ndarray:
    """Gather each training image's session entries in session order, then permute the repetitions.

    Every image must appear in the same number *k* of sessions (2 in THINGS-EEG2), giving
    ``k * max_rep`` repetitions. Session arrays are released as they are copied.

    Parameters
    ----------
    sessions : list of dict
        Per session, in session order: ``conditions`` (n_session_conditions,) and ``data``
        (n_session_conditions, max_rep, n_chans, n_times); ``data`` is set to None once copied.
    permutation_seed : int, optional
        ``random_state`` of the permutation of the merged repetition axis; None keeps session order.
    subject : str
        Subject name for errors.
    dtype : numpy dtype or str
        Dtype of the merged array.

    Returns
    -------
    numpy.ndarray, shape (n_conditions, k * max_rep, n_chans, n_times)
    """
    every = np.concatenate([entry["conditions"] for entry in sessions])
    conditions, counts = np.unique(every, return_counts=True)
    _check_contiguous(conditions, f"{subject} training")
    if counts.min() != counts.max():
        odd = conditions[counts != np.bincount(counts).argmax()][:10]
        raise PreprocessingError(
            f"{subject} training: images appear in different numbers of sessions ({counts.min()} to {counts.max()}); "
            f"e.g. conditions {odd.tolist()}. THINGS-EEG2 shows every training image in exactly 2 sessions."
        )
    per_session = counts[0]
    max_rep, n_chans, n_times = sessions[0]["data"].shape[1:]
    merged = np.empty((conditions.size, per_session * max_rep, n_chans, n_times), dtype=dtype)
    filled = np.zeros(conditions.size, dtype=np.int64)
    for entry in sessions:
        rows = entry["conditions"] - 1
        slot = filled[rows]
        for r in range(max_rep):
            merged[rows, slot * max_rep + r] = entry["data"][:, r]
        filled[rows] += 1
        entry["data"] = None  # release the session array
    if permutation_seed is not None:
        from sklearn.utils import shuffle

        permutation = shuffle(np.arange(merged.shape[1]), random_state=permutation_seed)
        for start in range(0, merged.shape[0], 1024):
            merged[start : start + 1024] = merged[start : start + 1024][:, permutation]
    return merged
