"""THINGS-EEG2 raw recordings to the official preprocessed format: the per-subject driver.

The steps, their defaults and the official order are described in ``docs/preprocessing.md`` ("Steps and
defaults"). Per subject, sessions are processed one at a time (``raw_eeg_test.npy`` then
``raw_eeg_training.npy``), so at most one raw file is in memory; epochs are extracted in chunks of
``epoch_chunk`` at the raw rate and resampled straight away. Steps per session and partition, in the official
order:

1. load the raw dict (restricted unpickler) and find the onsets on the ``stim`` row with
   ``mne.find_events`` (official defaults) - :mod:`~ttdnet.preprocessing.things_eeg2_readers`, with the files
   found by :mod:`~ttdnet.preprocessing.things_eeg2_discovery`;
2. pick channels by name (17 occipito-parietal by default);
3. drop target trials (code 99999);
4. choose ``max_rep`` repetitions per image condition with ``sklearn.utils.shuffle(idx, random_state=seed,
   n_samples=max_rep)``, as the official code (it selects after epoching; epochs are independent, so only the
   selected ones are extracted here);
5. ``mne.Epochs(tmin=-0.2, tmax=0.8, baseline=(None, 0))`` and ``Epochs.resample(sfreq)`` - steps 3-5 in
   :mod:`~ttdnet.preprocessing.things_eeg2_epochs`;
6. MVNN: per-session whitening by the inverse square root of the shrinkage noise covariance, fitted on the
   partitions ``mvnn_fit`` names (:mod:`~ttdnet.preprocessing.mvnn`);

then the sessions are merged (test: along repetitions in session order; training: each image's two session
entries in session order) and the repetition axis gets the fixed official permutation
(:mod:`~ttdnet.preprocessing.things_eeg2_merge`).
"""

import datetime
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ttdnet.config import check_option_ranges, config_to_dict, save_config
from ttdnet.data.things_eeg2 import subject_name
from ttdnet.hashing import sha256_file
from ttdnet.io import atomic_np_save, atomic_write_json, remove_stale_temporaries
from ttdnet.preprocessing import mvnn
from ttdnet.preprocessing.common import (
    PreprocessingError,
    describe_file,
    package_versions,
    peak_rss_bytes,
    resolve_channels,
)
from ttdnet.preprocessing.things_eeg2_discovery import PARTITIONS, SUBJECT_PATTERN, locate_subjects, session_inputs
from ttdnet.preprocessing.things_eeg2_epochs import epoch_partition
from ttdnet.preprocessing.things_eeg2_merge import merge_test, merge_training
from ttdnet.preprocessing.things_eeg2_readers import load_brainvision, load_raw_npy
from ttdnet.preprocessing.things_eeg2_resume import PROVENANCE_NAME, finished_subjects


COMMAND_NAME = "preprocess things-eeg2"


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
    subject = subject_name(SUBJECT_PATTERN.match(subject_dir.name).group(1))
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
        whitener, record["mvnn"] = mvnn.fit_whitener(epoched["test"]["data"], epoched["training"]["data"], config)
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
    remove_stale_temporaries(output_dir)  # what a killed earlier run left half-written
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
            "raw_subject_dir": str(subject_dir.resolve()),
            "ch_names": list(ch_names),
            "sfreq": float(config.sfreq),
            "times_first": float(times[0]),
            "n_times": int(times.size),
            "sessions": list(inputs),
            "mvnn": mvnn.describe_mvnn(config),
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
    """Preprocess every selected subject; a finished subject (``provenance.json``) is skipped unless ``overwrite``.

    Parameters
    ----------
    config : PreprocessThingsEEG2Config

    Returns
    -------
    list of dict
        The provenance record of every subject processed in this run.

    Raises
    ------
    PreprocessingError
        Bad options or inputs; a finished subject recorded with options that change the result and differ from
        this run's (see :func:`~ttdnet.preprocessing.things_eeg2_resume.finished_subjects`); checked before
        anything is written.
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
            f"{foreign[0]} exists and was not written by this command, or by a run of it that did not finish (no "
            f"{PROVENANCE_NAME} beside it); choose another --output_dir, or pass --overwrite to replace it"
        )
    finished = finished_subjects(output_root, {number: subjects[number] for number in wanted}, config)
    output_root.mkdir(parents=True, exist_ok=True)
    save_config(config, output_root / "config.yaml", COMMAND_NAME)
    done = []
    for number in wanted:
        target = output_root / subject_name(number)
        if number in finished:
            tqdm.write(f"{subject_name(number)}: already preprocessed ({finished[number]}); skipped")
            continue
        (target / PROVENANCE_NAME).unlink(missing_ok=True)  # an interrupted redo must not look finished
        provenance = preprocess_subject(subjects[number], target, raw_root, config)
        tqdm.write(
            f"{provenance['subject']}: training {provenance['outputs']['training']['shape']}, "
            f"test {provenance['outputs']['test']['shape']} -> {target} ({provenance['wall_time_s']:.0f} s)"
        )
        done.append(provenance)
    return done


def _validate(config) -> None:
    check_option_ranges(config)
    resolve_channels(config.channels)
    if not config.tmin < 0 < config.tmax and config.baseline:
        raise PreprocessingError(
            f"--tmin {config.tmin} / --tmax {config.tmax}: baseline correction needs tmin < 0 < tmax"
        )
    if not config.tmin < config.tmax:
        raise PreprocessingError(f"--tmin {config.tmin} must be below --tmax {config.tmax}")
    if config.crop_tmin is not None and not config.tmin <= config.crop_tmin <= config.tmax:
        raise PreprocessingError(
            f"--crop_tmin {config.crop_tmin:g} is outside the epoch --tmin {config.tmin:g} ... --tmax "
            f"{config.tmax:g} s"
        )
    if config.mvnn_dim == "time" and min(config.max_rep_train, config.max_rep_test) < 2:
        raise PreprocessingError("--mvnn_dim time estimates covariances across repetitions: it needs max_rep >= 2")
