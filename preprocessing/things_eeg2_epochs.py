"""Epochs of one THINGS-EEG2 recording: drop the targets, choose the repetitions, epoch, baseline, resample.

Steps 3-5 of the pipeline (see :mod:`ttdnet.preprocessing.things_eeg2`). The repetitions are chosen before
epoching, as the official code would after it: epochs are independent, so only the selected ones are extracted.
"""

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ttdnet.preprocessing.common import PreprocessingError
from ttdnet.preprocessing.things_eeg2_readers import Recording


def select_repetitions(codes: np.ndarray, max_rep: int, seed: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The official repetition selection, per condition: ``shuffle(idx, random_state=seed, n_samples=max_rep)``.

    Parameters
    ----------
    codes : numpy.ndarray of int, shape (n_events,)
        Condition code of every (non-target) event.
    max_rep : int
    seed : int
    source : str
        File name for errors.

    Returns
    -------
    conditions : numpy.ndarray of int, shape (n_conditions,)
        Sorted unique codes.
    chosen : numpy.ndarray of int, shape (n_conditions, max_rep)
        Event indices, in the shuffled order the official code keeps.
    """
    from sklearn.utils import shuffle

    conditions = np.unique(codes)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], conditions, side="left")
    ends = np.searchsorted(codes[order], conditions, side="right")
    short = [(int(c), int(e - b)) for c, b, e in zip(conditions, bounds, ends) if e - b < max_rep]
    if short:
        listed = ", ".join(f"{c} ({n}x)" for c, n in short[:10]) + (" ..." if len(short) > 10 else "")
        raise PreprocessingError(
            f"{source}: {len(short)} conditions have fewer than {max_rep} repetitions: {listed}. Lower "
            "--max_rep_train/--max_rep_test, or check the stim channel."
        )
    chosen = np.empty((conditions.size, max_rep), dtype=np.int64)
    for i, (b, e) in enumerate(zip(bounds, ends)):
        chosen[i] = shuffle(order[b:e], random_state=seed, n_samples=max_rep)  # order[b:e] is ascending
    return conditions, chosen


def epoch_selected(
    recording: Recording, events: np.ndarray, chosen: np.ndarray, config, source: str, desc: str
) -> tuple[np.ndarray, np.ndarray]:
    """Epoch, baseline-correct and resample the chosen events with MNE, in chunks.

    Parameters
    ----------
    recording : Recording
    events : numpy.ndarray of int, shape (n_events, 3)
        Non-target events.
    chosen : numpy.ndarray of int, shape (n_conditions, max_rep)
        Rows of ``events`` to epoch.
    config : PreprocessThingsEEG2Config
    source, desc : str
        File name for errors; progress-bar label.

    Returns
    -------
    data : numpy.ndarray of float64, shape (n_conditions, max_rep, n_chans, n_times)
    times : numpy.ndarray of float64, shape (n_times,)
    """
    import mne

    info = mne.create_info(recording.ch_names, recording.sfreq, "eeg")
    raw = mne.io.RawArray(recording.eeg, info, copy="auto", verbose="error")
    flat = chosen.ravel()
    chronological = np.argsort(events[flat, 0], kind="stable")
    data = None
    times = None
    baseline = (None, 0) if config.baseline else None
    resample = config.sfreq < recording.sfreq
    with tqdm(total=flat.size, desc=desc, unit="epoch", leave=False) as bar:
        for start in range(0, flat.size, config.epoch_chunk):
            slots = chronological[start : start + config.epoch_chunk]
            chunk_events = events[flat[slots]]
            epochs = mne.Epochs(
                raw,
                chunk_events,
                event_id=None,
                tmin=config.tmin,
                tmax=config.tmax,
                baseline=baseline,
                preload=True,
                verbose="error",
            )
            if len(epochs) != len(chunk_events):
                kept = set(epochs.selection.tolist())
                lost = [int(chunk_events[i, 0]) for i in range(len(chunk_events)) if i not in kept]
                raise PreprocessingError(
                    f"{source}: MNE dropped {len(lost)} epochs (first at sample {lost[0]}, recording has "
                    f"{recording.eeg.shape[1]} samples); events must lie at least {-config.tmin:g} s after the start "
                    f"and {config.tmax:g} s before the end of the recording"
                )
            if resample:
                epochs.resample(config.sfreq, verbose="error")
            block = epochs.get_data(copy=False)
            if data is None:
                times = epochs.times.copy()
                data = np.empty((chosen.shape[0], chosen.shape[1], block.shape[1], block.shape[2]))
            rows, reps = np.divmod(slots, chosen.shape[1])
            data[rows, reps] = block
            bar.update(len(slots))
            del epochs, block
    return data, times


def epoch_partition(recording: Recording, max_rep: int, config, source: str, desc: str) -> dict[str, Any]:
    """Steps 3-5 for one recording: drop targets, select repetitions, epoch, baseline, resample.

    Parameters
    ----------
    recording : Recording
    max_rep : int
        Repetitions kept per image condition.
    config : PreprocessThingsEEG2Config
    source, desc : str
        File name for errors; progress-bar label.

    Returns
    -------
    dict
        ``data`` (n_conditions, max_rep, n_chans, n_times) float64, ``conditions`` (n_conditions,), ``times``,
        and counts for the provenance.
    """
    if config.sfreq > recording.sfreq:
        raise PreprocessingError(
            f"{source}: recorded at {recording.sfreq:g} Hz, below the requested --sfreq {config.sfreq:g}; choose "
            f"--sfreq <= {recording.sfreq:g}"
        )
    events = recording.events
    is_target = events[:, 2] == config.target_code
    events = events[~is_target]
    if events.size == 0:
        raise PreprocessingError(
            f"{source}: no image events on the stim channel (only {int(is_target.sum())} targets)"
        )
    first = int(np.ceil(-config.tmin * recording.sfreq)) if config.tmin < 0 else 0
    last = recording.eeg.shape[1] - 1 - int(np.ceil(config.tmax * recording.sfreq))
    outside = events[(events[:, 0] < first) | (events[:, 0] > last)]
    if outside.size:
        raise PreprocessingError(
            f"{source}: event at sample {int(outside[0, 0])} (code {int(outside[0, 2])}; {len(outside)} in all) "
            f"is too close to the edge of the {recording.eeg.shape[1]}-sample recording: epochs need "
            f"{-config.tmin:g} s after the start and {config.tmax:g} s before the end. Is the file truncated?"
        )
    conditions, chosen = select_repetitions(events[:, 2], max_rep, config.seed, source)
    data, times = epoch_selected(recording, events, chosen, config, source, desc)
    return {
        "data": data,
        "conditions": conditions,
        "times": times,
        "counts": {
            "events": int(len(recording.events)),
            "targets_removed": int(is_target.sum()),
            "conditions": int(conditions.size),
            "epochs_kept": int(chosen.size),
            "epochs_discarded": int(len(events) - chosen.size),
            "raw_samples": int(recording.eeg.shape[1]),
            "raw_sfreq": recording.sfreq,
        },
    }
