"""Where the THINGS-EEG2 raw inputs of a subject are: subject and session folders, files per partition.

Layout (``raw-npy``): ``<raw_dir>/sub-XX/ses-YY/raw_eeg_{test,training}.npy``, ``raw_dir`` possibly the parent of
``raw_data/`` or ``source_data/``. Layout (``brainvision``): ``sub-XX/ses-YY/eeg/*_task-test_eeg.vhdr`` and
``*_task-train_part-PP_eeg.vhdr``, each with its behavioural ``beh/*_beh.mat``.
"""

import re
from pathlib import Path

from ttdnet.preprocessing.common import PreprocessingError


PARTITIONS = ("test", "training")
SUBJECT_PATTERN = re.compile(r"^sub-?(\d+)$")
_SESSION_PATTERN = re.compile(r"^ses-?(\d+)$")


def numbered_dirs(folder: Path, pattern: re.Pattern) -> dict[int, Path]:
    """Number -> sub-folder of ``folder`` whose name matches ``pattern`` (group 1: the number); empty if absent."""
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
        subjects = numbered_dirs(candidate, SUBJECT_PATTERN)
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
    """Input files per session and partition; raises listing everything missing.

    Parameters
    ----------
    subject_dir : pathlib.Path
        ``sub-XX`` folder.
    sessions : list of int, optional
        Session numbers to use; None: every ``ses-YY`` folder.
    input_format : {"raw-npy", "brainvision"}

    Returns
    -------
    dict
        ``{session: {partition: files}}``; files are ``[npy path]`` for ``raw-npy`` and a list of
        ``(vhdr, beh .mat)`` pairs for ``brainvision``.
    """
    found = numbered_dirs(subject_dir, _SESSION_PATTERN)
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
