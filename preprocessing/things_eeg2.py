"""THINGS-EEG2 raw recordings to the official preprocessed format (``shared/specs/things-eeg2.md`` §7).

Per subject, sessions are processed one at a time (``raw_eeg_test.npy`` then ``raw_eeg_training.npy``), so at
most one raw file is in memory; epochs are extracted in chunks of ``epoch_chunk`` at the raw rate and resampled
straight away. Steps per session and partition, in the official order:

1. load the raw dict (restricted unpickler) and find the onsets on the ``stim`` row with
   ``mne.find_events`` (official defaults);
2. pick channels by name (17 occipito-parietal by default);
3. drop target trials (code 99999);
4. choose ``max_rep`` repetitions per image condition with ``sklearn.utils.shuffle(idx, random_state=seed,
   n_samples=max_rep)``, as the official code (it selects after epoching; epochs are independent, so only the
   selected ones are extracted here);
5. ``mne.Epochs(tmin=-0.2, tmax=0.8, baseline=(None, 0))`` and ``Epochs.resample(sfreq)``;
6. MVNN: per-session whitening by the inverse square root of the shrinkage noise covariance, fitted on the
   partitions ``mvnn_fit`` names;

then the sessions are merged (test: along repetitions in session order; training: each image's two session
entries in session order) and the repetition axis gets the fixed official permutation.
"""

import dataclasses
import datetime
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ttdnet.config import config_to_dict, save_config
from ttdnet.covariance import whitening_matrix
from ttdnet.data.safe_pickle import load_pickled_container
from ttdnet.data.things_eeg2 import subject_name
from ttdnet.io import atomic_np_save, atomic_write_json
from ttdnet.preprocessing import mvnn
from ttdnet.preprocessing.common import (
    PreprocessingError,
    describe_file,
    package_versions,
    peak_rss_bytes,
    pick_by_name,
    resolve_channels,
    sha256_file,
)


COMMAND_NAME = "preprocess things-eeg2"
PROVENANCE_NAME = "provenance.json"
PARTITIONS = ("test", "training")
RAW_KEYS = ("raw_eeg_data", "ch_names", "ch_types", "sfreq", "highpass", "lowpass")
_SUBJECT = re.compile(r"^sub-?(\d+)$")
_SESSION = re.compile(r"^ses-?(\d+)$")


@dataclasses.dataclass
class Recording:
    """One session and partition of raw EEG, channels already picked.

    Attributes
    ----------
    eeg : numpy.ndarray of float64, shape (n_chans, n_samples)
        Volts.
    ch_names : list of str, length n_chans
    sfreq : float
    events : numpy.ndarray of int64, shape (n_events, 3)
        ``mne.find_events`` layout: sample, previous value, code (image condition or the target code).
    files : list of pathlib.Path
        Input files it came from.
    """

    eeg: np.ndarray
    ch_names: list[str]
    sfreq: float
    events: np.ndarray
    files: list[Path]


# --------------------------------------------------------------------------------------------------
# Input discovery and loading
# --------------------------------------------------------------------------------------------------


def _numbered_dirs(folder: Path, pattern: re.Pattern) -> dict[int, Path]:
    found = {}
    if folder.is_dir():
        for entry in sorted(folder.iterdir()):
            match = pattern.match(entry.name)
            if entry.is_dir() and match:
                found[int(match.group(1))] = entry
    return found


def locate_subjects(raw_dir: Path) -> dict[int, Path]:
    """Subject number -> folder under ``raw_dir`` (or ``raw_dir/raw_data``, ``raw_dir/source_data``)."""
    for candidate in (raw_dir, raw_dir / "raw_data", raw_dir / "source_data"):
        subjects = _numbered_dirs(candidate, _SUBJECT)
        if subjects:
            return subjects
    raise PreprocessingError(
        f"{raw_dir}: no subject folders (sub-01, ...) here or in raw_data/ or source_data/. Point --raw_dir at the "
        "unzipped THINGS-EEG2 raw data (sub-XX/ses-YY/raw_eeg_training.npy)."
    )


def _brainvision_files(session_dir: Path, partition: str) -> list[tuple[Path, Path]]:
    """(vhdr, beh .mat) pairs of one session and partition, parts in order."""
    eeg_dir, beh_dir = session_dir / "eeg", session_dir / "beh"
    if partition == "test":
        vhdrs = sorted(eeg_dir.glob("*_task-test_eeg.vhdr"))
    else:
        vhdrs = sorted(eeg_dir.glob("*_task-train_part-*_eeg.vhdr"))
    if not vhdrs:
        raise PreprocessingError(
            f"{eeg_dir}: no BrainVision {partition} recordings "
            f"(*_task-{'test' if partition == 'test' else 'train_part-PP'}_eeg.vhdr)"
        )
    pairs = []
    for vhdr in vhdrs:
        mat = beh_dir / vhdr.name.replace("_eeg.vhdr", "_beh.mat")
        if not mat.is_file():
            raise PreprocessingError(f"{vhdr}: its behavioural file {mat} is missing; it holds the image numbers")
        pairs.append((vhdr, mat))
    return pairs


def session_inputs(subject_dir: Path, sessions: list[int] | None, input_format: str) -> dict[int, dict[str, list]]:
    """Input files per session and partition; raises listing everything missing."""
    found = _numbered_dirs(subject_dir, _SESSION)
    if not found:
        raise PreprocessingError(f"{subject_dir}: no session folders (ses-01, ...)")
    wanted = sorted(found) if sessions is None else sorted(sessions)
    absent = [s for s in wanted if s not in found]
    if absent:
        raise PreprocessingError(
            f"{subject_dir}: sessions {absent} requested but only {sorted(found)} exist; fix --sessions"
        )
    inputs: dict[int, dict[str, list]] = {}
    missing = []
    for number in wanted:
        inputs[number] = {}
        for partition in PARTITIONS:
            if input_format == "raw-npy":
                path = found[number] / f"raw_eeg_{partition}.npy"
                if not path.is_file():
                    missing.append(str(path))
                inputs[number][partition] = [path]
            else:
                inputs[number][partition] = _brainvision_files(found[number], partition)
    if missing:
        raise PreprocessingError(
            "raw files missing: " + ", ".join(missing) + ". Each session needs raw_eeg_training.npy and "
            "raw_eeg_test.npy; re-download or unzip the subject again, or restrict --sessions."
        )
    return inputs


def _find_events(stim: np.ndarray, sfreq: float):
    import mne

    info = mne.create_info(["stim"], sfreq, ["stim"])
    raw = mne.io.RawArray(stim[np.newaxis], info, verbose="error")
    return mne.find_events(raw, stim_channel="stim", verbose="error").astype(np.int64)


def _check_finite(eeg: np.ndarray, ch_names: list[str], sfreq: float, source: str) -> None:
    for row, name in enumerate(ch_names):
        finite = np.isfinite(eeg[row])
        if not finite.all():
            first = int(np.argmin(finite))
            raise PreprocessingError(
                f"{source}: channel {name} has a non-finite value ({eeg[row, first]}) at sample {first} "
                f"({first / sfreq:.3f} s); the recording is corrupt - re-download it or exclude the channel "
                "with --channels"
            )


def load_raw_npy(path: Path, ch_names: tuple[str, ...]) -> Recording:
    """Read one ``raw_eeg_{training,test}.npy`` dict, find its events and keep ``ch_names``.

    Parameters
    ----------
    path : pathlib.Path
    ch_names : tuple of str
        Channels to keep, in output order.

    Returns
    -------
    Recording
        ``eeg`` of shape (len(ch_names), n_samples).

    Raises
    ------
    PreprocessingError
        Wrong keys or shapes, no ``stim`` row, missing channels, non-finite samples.
    ttdnet.data.safe_pickle.ContainerFormatError
        Truncated or corrupt file.
    """
    source = str(path)
    contents = load_pickled_container(path)
    if not isinstance(contents, dict) or not {"raw_eeg_data", "ch_names", "sfreq"} <= set(contents):
        keys = sorted(contents) if isinstance(contents, dict) else type(contents).__name__
        raise PreprocessingError(f"{source}: keys {keys}; a THINGS-EEG2 raw file has {list(RAW_KEYS)}")
    data = contents.pop("raw_eeg_data")
    names = [str(name) for name in contents["ch_names"]]
    sfreq = float(contents["sfreq"])
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[0] != len(names):
        shape = getattr(data, "shape", None)
        raise PreprocessingError(
            f"{source}: 'raw_eeg_data' has shape {shape}; expected ({len(names)}, n_samples), "
            "one row per ch_names entry"
        )
    if "stim" not in names:
        raise PreprocessingError(f"{source}: no 'stim' row in ch_names {names}; the events channel is required")
    if not np.isfinite(sfreq) or sfreq <= 0:
        raise PreprocessingError(f"{source}: sampling rate {contents['sfreq']!r} is not a positive number")
    rows = pick_by_name(names, ch_names, source)
    events = _find_events(np.asarray(data[names.index("stim")], dtype=np.float64), sfreq)
    eeg = np.array(data[rows], dtype=np.float64)  # a copy, so the full array can be freed now
    del data, contents
    _check_finite(eeg, list(ch_names), sfreq, source)
    return Recording(eeg=eeg, ch_names=list(ch_names), sfreq=sfreq, events=events, files=[path])


def _behavioural_numbers(mat_path: Path, target_code: int) -> np.ndarray:
    from scipy.io import loadmat

    try:
        data = loadmat(mat_path, simplify_cells=True)["data"]
        images = data["images"]
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise PreprocessingError(
            f"{mat_path}: not a THINGS-EEG2 behavioural file (struct 'data' with field 'images'): {error}"
        ) from error
    if isinstance(images, dict):
        numbers = np.atleast_1d(images["tot_img_number"])
    else:
        numbers = np.array([entry["tot_img_number"] for entry in images])
    numbers = numbers.astype(np.int64).ravel()
    numbers[numbers == 0] = target_code  # targets are 0 in the behavioural file, 99999 in the raw files
    return numbers


def load_brainvision(pairs: list[tuple[Path, Path]], ch_names: tuple[str, ...], target_code: int) -> Recording:
    """Read BrainVision parts with MNE and label their stimulus markers from the behavioural files.

    The *k*-th ``Stimulus/`` annotation of a part is paired with its *k*-th behavioural trial (design-sources
    D14: no event is dropped as a "New Segment" marker, which current MNE already removes). Parts are spliced
    in order, as ``source_to_raw.py`` does.

    Returns
    -------
    Recording
        ``eeg`` of shape (len(ch_names), total samples), volts.
    """
    import mne

    blocks, events, files, offset, sfreq = [], [], [], 0, None
    for vhdr, mat in pairs:
        try:
            raw = mne.io.read_raw_brainvision(vhdr, preload=False, verbose="error")
        except Exception as error:  # MNE raises many types for broken headers
            raise PreprocessingError(
                f"{vhdr}: cannot be read as BrainVision ({type(error).__name__}: {error})"
            ) from error
        if sfreq is not None and raw.info["sfreq"] != sfreq:
            raise PreprocessingError(
                f"{vhdr}: sampling rate {raw.info['sfreq']} Hz differs from the first part's {sfreq}"
            )
        sfreq = raw.info["sfreq"]
        rows = pick_by_name(raw.ch_names, ch_names, str(vhdr))
        part_events, _ = mne.events_from_annotations(raw, event_id=lambda _: 1, regexp="^Stimulus/", verbose="error")
        numbers = _behavioural_numbers(mat, target_code)
        if len(part_events) != len(numbers):
            raise PreprocessingError(
                f"{vhdr}: {len(part_events)} 'Stimulus/' markers but {mat} lists {len(numbers)} trials; they must "
                "pair 1:1 (is a part missing or truncated?)"
            )
        part_events = part_events.astype(np.int64)
        part_events[:, 0] += offset - raw.first_samp
        part_events[:, 2] = numbers
        try:
            blocks.append(raw.get_data(picks=[raw.ch_names[i] for i in rows]))
        except Exception as error:
            raise PreprocessingError(f"{vhdr}: data unreadable ({type(error).__name__}: {error})") from error
        events.append(part_events)
        files += [vhdr, mat]
        offset += raw.n_times
    eeg = np.concatenate(blocks, axis=1)
    _check_finite(eeg, list(ch_names), float(sfreq), str(pairs[0][0]))
    return Recording(eeg=eeg, ch_names=list(ch_names), sfreq=float(sfreq), events=np.concatenate(events), files=files)


# --------------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------------


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


def _check_contiguous(conditions: np.ndarray, what: str) -> None:
    if not np.array_equal(conditions, np.arange(1, conditions.size + 1)):
        gaps = np.setdiff1d(np.arange(1, int(conditions.max()) + 1), conditions)[:10]
        raise PreprocessingError(
            f"{what}: image condition codes must be 1..{conditions.size} (row n-1 of the output is image n); "
            f"missing codes include {gaps.tolist()}"
        )


def merge_test(sessions: list[dict], permutation: np.ndarray | None, subject: str) -> np.ndarray:
    """Concatenate the sessions' test data along repetitions and permute them.

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


def fit_whitener(test: np.ndarray, training: np.ndarray, config) -> tuple[np.ndarray | None, dict]:
    """The session's whitening matrix and a provenance record.

    Parameters
    ----------
    test, training : numpy.ndarray, shape (n_conditions, max_rep, n_chans, n_times)
    config : PreprocessThingsEEG2Config

    Returns
    -------
    whitener : numpy.ndarray of shape (n_chans, n_chans), or None when ``mvnn_dim`` is "none"
    record : dict
    """
    if config.mvnn_dim == "none":
        return None, {"applied": False}
    parts = {"training": training} if config.mvnn_fit == "train" else {"test": test, "training": training}
    sigmas = {}
    for name, data in parts.items():
        with tqdm(total=data.shape[0], desc=f"MVNN covariance ({name})", unit="cond", leave=False) as bar:
            sigmas[name] = mvnn.condition_covariance(data, config.mvnn_dim, config.mvnn_backend, progress=bar.update)
    sigma = mvnn.combine_partitions(list(sigmas.values()))
    whitener = whitening_matrix(sigma)
    eigenvalues = np.linalg.eigvalsh(sigma)
    return whitener, {
        "applied": True,
        "fit_partitions": list(parts),
        "covariance_condition_number": float(eigenvalues[-1] / eigenvalues[0]),
        "covariance_trace": float(np.trace(sigma)),
    }


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def _mvnn_description(config) -> str:
    if config.mvnn_dim == "none":
        return "no whitening"
    per_condition = (
        "mean over time points of the covariance across repetitions"
        if config.mvnn_dim == "time"
        else "mean over repetitions of the covariance across time points"
    )
    fit = (
        "the training partition only"
        if config.mvnn_fit == "train"
        else "the equal-weight mean of the test and training partitions (official release)"
    )
    return (
        f"per session, Sigma = mean over image conditions of the {per_condition}, each a Ledoit-Wolf shrinkage "
        f"covariance of standardised channels rescaled back (StandardScaler + sklearn.covariance.ledoit_wolf); "
        f"fitted on {fit}; every epoch of both partitions whitened by Sigma^(-1/2) "
        "(scipy.linalg.fractional_matrix_power)"
    )


def preprocess_subject(subject_dir: Path, output_dir: Path, raw_root: Path, config) -> dict[str, Any]:
    """Run the pipeline for one subject and write its two files and ``provenance.json``.

    Parameters
    ----------
    subject_dir : pathlib.Path
        ``<raw_dir>/sub-XX``.
    output_dir : pathlib.Path
        ``<output_dir>/sub-XX``.
    raw_root : pathlib.Path
        Input paths are recorded relative to it.
    config : PreprocessThingsEEG2Config

    Returns
    -------
    dict
        The provenance record written.
    """
    started = time.time()
    subject = subject_name(_SUBJECT.match(subject_dir.name).group(1))
    ch_names = resolve_channels(config.channels)
    inputs = session_inputs(subject_dir, config.sessions, config.input_format)
    max_rep = {"test": config.max_rep_test, "training": config.max_rep_train}
    results: dict[str, list[dict]] = {"test": [], "training": []}
    session_records = []
    input_records = []
    times = None
    for number in tqdm(list(inputs), desc=f"{subject} sessions", unit="session"):
        epoched = {}
        record: dict[str, Any] = {"session": number}
        for partition in PARTITIONS:
            files = inputs[number][partition]
            source = str(files[0][0] if config.input_format == "brainvision" else files[0])
            if config.input_format == "raw-npy":
                recording = load_raw_npy(files[0], ch_names)
            else:
                recording = load_brainvision(files, ch_names, config.target_code)
            for path in recording.files:
                input_records.append(
                    {"session": number, "partition": partition, **describe_file(path, raw_root, config.checksums)}
                )
            epoched[partition] = epoch_partition(
                recording, max_rep[partition], config, source, desc=f"ses-{number:02d} {partition} epochs"
            )
            del recording
            record[partition] = epoched[partition]["counts"]
            if times is None:
                times = epoched[partition]["times"]
            elif not np.allclose(times, epoched[partition]["times"]):
                raise PreprocessingError(f"{source}: epoch time axis differs from the first session's")
        whitener, record["mvnn"] = fit_whitener(epoched["test"]["data"], epoched["training"]["data"], config)
        for partition in PARTITIONS:
            data = epoched[partition]["data"]
            if whitener is not None:
                data = mvnn.whiten(data, whitener)
            if config.crop_tmin is not None:
                data = data[..., _crop_start(times, config.crop_tmin, config.sfreq) :]
            results[partition].append(
                {
                    "session": number,
                    "conditions": epoched[partition]["conditions"],
                    "data": np.ascontiguousarray(data, dtype=config.dtype),
                }
            )
        del epoched, data
        session_records.append(record)
    if config.crop_tmin is not None:
        times = times[_crop_start(times, config.crop_tmin, config.sfreq) :]
    times = np.asarray(times, dtype=np.float64)

    from sklearn.utils import shuffle

    seed = config.seed if config.shuffle_repetitions else None
    output_dir.mkdir(parents=True, exist_ok=True)
    outputs = {}
    n_test_reps = sum(entry["data"].shape[1] for entry in results["test"])
    test_perm = shuffle(np.arange(n_test_reps), random_state=seed) if seed is not None else None
    merged = merge_test(results["test"], test_perm, subject)
    results["test"] = []
    outputs["test"] = _save(output_dir / "preprocessed_eeg_test.npy", merged, ch_names, times, config.checksums)
    del merged
    merged = merge_training(results["training"], seed, subject, config.dtype)
    results["training"] = []
    train_perm = shuffle(np.arange(merged.shape[1]), random_state=seed) if seed is not None else None
    outputs["training"] = _save(
        output_dir / "preprocessed_eeg_training.npy", merged, ch_names, times, config.checksums
    )
    del merged

    provenance = {
        "format": "ttdnet-preprocessing-provenance",
        "version": 1,
        "command": f"ttdnet {COMMAND_NAME}",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "subject": subject,
        "parameters": config_to_dict(config),
        "resolved": {
            "ch_names": list(ch_names),
            "sfreq": float(config.sfreq),
            "times_first": float(times[0]),
            "n_times": int(times.size),
            "sessions": list(inputs),
            "mvnn": _mvnn_description(config),
            "mvnn_fit_partitions": (
                []
                if config.mvnn_dim == "none"
                else (["training"] if config.mvnn_fit == "train" else ["test", "training"])
            ),
            "test_data_seen_by_whitening": config.mvnn_dim != "none" and config.mvnn_fit == "train+test",
            "repetition_selection": f"sklearn.utils.shuffle(indices, random_state={config.seed}, n_samples=max_rep)",
            "repetition_permutation": {
                "test": None if test_perm is None else test_perm.tolist(),
                "training": None if train_perm is None else train_perm.tolist(),
            },
            "baseline": "(None, 0) at the raw rate before resampling" if config.baseline else None,
            "resampling": "mne.Epochs.resample (FFT, npad='auto', window='auto', pad='edge')"
            if config.sfreq < session_records[0]["training"]["raw_sfreq"]
            else None,
        },
        "packages": package_versions(),
        "inputs": input_records,
        "sessions": session_records,
        "outputs": outputs,
        "wall_time_s": round(time.time() - started, 2),
        "peak_rss_bytes": peak_rss_bytes(),
    }
    atomic_write_json(output_dir / PROVENANCE_NAME, provenance)
    return provenance


def _crop_start(times: np.ndarray, crop_tmin: float, sfreq: float) -> int:
    start = int(round((crop_tmin - times[0]) * sfreq))
    if not 0 <= start < times.size or abs(times[start] - crop_tmin) > 0.5 / sfreq:
        raise PreprocessingError(
            f"--crop_tmin {crop_tmin:g} s is outside the epoch {times[0]:g} ... {times[-1]:g} s or off the "
            f"{sfreq:g} Hz grid"
        )
    return start


def _save(path: Path, data: np.ndarray, ch_names, times: np.ndarray, checksum: bool) -> dict[str, Any]:
    contents = {"preprocessed_eeg_data": data, "ch_names": list(ch_names), "times": times}
    atomic_np_save(path, contents, allow_pickle=True)
    return {
        "file": path.name,
        "shape": list(data.shape),
        "dtype": str(data.dtype),
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path) if checksum else None,
    }


def preprocess_things_eeg2(config) -> list[dict[str, Any]]:
    """Preprocess every selected subject; subjects with a ``provenance.json`` are skipped unless ``overwrite``.

    Parameters
    ----------
    config : PreprocessThingsEEG2Config

    Returns
    -------
    list of dict
        The provenance record of every subject processed in this run.
    """
    _validate(config)
    raw_root = Path(config.raw_dir)
    if not raw_root.is_dir():
        raise PreprocessingError(f"--raw_dir {raw_root} does not exist")
    subjects = locate_subjects(raw_root)
    wanted = sorted(subjects) if config.subjects is None else sorted(config.subjects)
    absent = [s for s in wanted if s not in subjects]
    if absent:
        raise PreprocessingError(
            f"{raw_root}: subjects {absent} requested but only {sorted(subjects)} are there; fix --subjects"
        )
    output_root = Path(config.output_dir)
    foreign = [
        path
        for number in wanted
        for path in sorted((output_root / subject_name(number)).glob("preprocessed_eeg_*.npy"))
        if not (path.parent / PROVENANCE_NAME).is_file()
    ]
    if foreign and not config.overwrite:
        raise PreprocessingError(
            f"{foreign[0]} exists and was not written by this command (no {PROVENANCE_NAME} beside it); choose "
            "another --output_dir, or pass --overwrite to replace it"
        )
    output_root.mkdir(parents=True, exist_ok=True)
    save_config(config, output_root / "config.yaml", COMMAND_NAME)
    done = []
    for number in wanted:
        target = output_root / subject_name(number)
        if (target / PROVENANCE_NAME).is_file() and not config.overwrite:
            tqdm.write(f"{subject_name(number)}: already preprocessed ({target / PROVENANCE_NAME}); skipped")
            continue
        provenance = preprocess_subject(subjects[number], target, raw_root, config)
        tqdm.write(
            f"{provenance['subject']}: training {provenance['outputs']['training']['shape']}, "
            f"test {provenance['outputs']['test']['shape']} -> {target} ({provenance['wall_time_s']:.0f} s)"
        )
        done.append(provenance)
    return done


def _validate(config) -> None:
    resolve_channels(config.channels)
    if not config.tmin < 0 < config.tmax and config.baseline:
        raise PreprocessingError(
            f"--tmin {config.tmin} / --tmax {config.tmax}: baseline correction needs tmin < 0 < tmax"
        )
    if not config.tmin < config.tmax:
        raise PreprocessingError(f"--tmin {config.tmin} must be below --tmax {config.tmax}")
    if config.sfreq <= 0:
        raise PreprocessingError(f"--sfreq {config.sfreq} must be positive")
    for name in ("max_rep_train", "max_rep_test", "epoch_chunk"):
        if getattr(config, name) < 1:
            raise PreprocessingError(f"--{name} {getattr(config, name)} must be at least 1")
    if config.mvnn_dim == "time" and min(config.max_rep_train, config.max_rep_test) < 2:
        raise PreprocessingError("--mvnn_dim time estimates covariances across repetitions: it needs max_rep >= 2")
